"""The authors' released PyTorch model in JAX: checkpoint conversion and the SDA audio encoder.

  python -m dheads_jax.convert --torch_checkpoint=crema_script.pt --output=EXPORT_DIR

PyTorch is optional (``pip install -e .[torch]``) and imported only when a file is read.
See docs/crema_model.md.
"""

from dheads_jax.convert.converter import ConvertError, convert_checkpoint, main

__all__ = ["ConvertError", "convert_checkpoint", "main"]
