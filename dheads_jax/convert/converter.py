"""Converts the authors' PyTorch U-Net (TorchScript or Lightning checkpoint) to a dheads_jax export.

  python -m dheads_jax.convert --torch_checkpoint=crema_script.pt --output=EXPORT_DIR [--config=crema]

Reads the file with PyTorch (the optional extra ``pip install -e .[torch]``), checks every
tensor name and shape against the released model's table (``official_unet_state_dict.txt``;
for ``--config=lrw`` the grayscale variant with 8 input channels), maps each tensor to the
Flax layout (see ``mapping``) and writes a standard export (``dheads_jax.export``) that
``run_sample.py --export=EXPORT_DIR`` loads. Accepted files:

- a TorchScript module (``torch.jit.save``), e.g. the released ``crema_script.pt``;
- a Lightning ``.ckpt`` of the authors' training branch: ``state_dict`` keys prefixed
  ``unet.`` and duplicated under ``diffusion.nn_backbone.``; the ``unet.`` copy is taken;
- a plain ``torch.save``d state dict (optionally under ``state_dict``).

Errors (a file that is no checkpoint, tensors of another shape, PyTorch missing) are one
line on stderr with exit status 1, and nothing is left at ``--output``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import sys
import warnings
import zipfile
from collections.abc import Mapping

import ml_collections
import numpy as np
from absl import flags

from dheads_jax.convert import command, mapping

KNOWN_CONFIGS = {
    "crema": "colour-motion U-Net (12 input channels, the released CREMA model)",
    "lrw": "grayscale-motion U-Net (8 input channels)",
}
# Where the U-Net sits inside the checkpoints we know, in order of preference.
PREFIXES = ("", "unet.", "diffusion.nn_backbone.", "nn_backbone.", "model.", "module.")
PROBE = "time_embed.fc.0.weight"
INSTALL_HINT = "pip install -e .[torch]"


class ConvertError(ValueError):
    """A checkpoint that cannot be converted; the message is one line naming the problem."""


def import_torch():
    """The ``torch`` module, or a ConvertError saying how to install the optional extra."""
    try:
        import torch
    except ImportError as e:
        raise ConvertError(
            f"PyTorch is not installed ({e}); install the optional extra: {INSTALL_HINT}"
        ) from None
    return torch


def resolve_config(config) -> ml_collections.ConfigDict:
    """A ConfigDict from a ConfigDict, a config name (``crema``, ``lrw``) or a ``.py`` path."""
    if isinstance(config, ml_collections.ConfigDict):
        return config
    if config.endswith(".py"):
        if not os.path.isfile(config):
            raise ConvertError(f"{config}: no such config file")
        spec = importlib.util.spec_from_file_location(f"_dheads_config_{os.getpid()}", config)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.get_config()
    if not config.isidentifier():
        raise ConvertError(f"unknown config {config!r}; use one of {', '.join(KNOWN_CONFIGS)} or a .py path")
    try:
        module = importlib.import_module(f"configs.{config}")
    except ModuleNotFoundError as e:
        # Only the config itself missing is the caller's error; a module that a config
        # imports and cannot find is a broken install, reported as it is.
        if e.name != f"configs.{config}":
            raise
        raise ConvertError(
            f"unknown config {config!r}; use one of {', '.join(KNOWN_CONFIGS)} or a .py path"
        ) from None
    return module.get_config()


def _abstract_params(config: ml_collections.ConfigDict):
    from dheads_jax.models import factory

    return factory.param_shapes(config)


def expected_table(config: ml_collections.ConfigDict, abstract_params=None) -> tuple[dict, bool]:
    """({PyTorch name: shape} a checkpoint for ``config`` must have, whether it is the official table).

    For ``crema`` and ``lrw`` it is the released model's table (the grayscale variant for
    lrw); the Flax model of the config must then have exactly those tensors too. Any other
    config (tests, custom sizes) gets the table derived from its Flax parameters.
    """
    from dheads_jax.models import factory

    abstract = _abstract_params(config) if abstract_params is None else abstract_params
    derived = mapping.table_from_flax(abstract)
    if config.name not in KNOWN_CONFIGS:
        return derived, False
    official = mapping.official_table(factory.input_channels(config))
    problem = mapping.describe_mismatch(derived, official)
    if problem:
        raise ConvertError(
            f"config {config.name!r} no longer builds the official architecture ({problem}); "
            "restore configs/" + config.name + ".py"
        )
    return official, True


def check_shapes(
    shapes: Mapping[str, tuple], config: ml_collections.ConfigDict, abstract_params=None
) -> bool:
    """Raises ConvertError (one line) unless ``shapes`` is exactly the table of ``config``.

    The message lists the differing tensors and, when the checkpoint is the other known
    U-Net (colour vs grayscale motion), which ``--config`` fits it.

    Returns:
      Whether the official table was used.
    """
    table, official = expected_table(config, abstract_params)
    problem = mapping.describe_mismatch(shapes, table)
    if not problem:
        return official
    hint = ""
    for name, what in KNOWN_CONFIGS.items():
        channels = 8 if name == "lrw" else 12
        if name != config.name and not mapping.describe_mismatch(shapes, mapping.official_table(channels)):
            hint = f"; this is the {what}: use --config={name}"
    raise ConvertError(f"does not fit config {config.name!r}: {problem}{hint}")


def _file_kind(path: str) -> str:
    """ "torchscript" for a TorchScript archive, else "pickle" (torch.save files, Lightning .ckpt)."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return "pickle"
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
    return "pickle"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def load_state_dict(path: str, allow_pickle: bool = False) -> tuple[dict, dict]:
    """The U-Net tensors of a checkpoint file, names without any wrapper prefix.

    Args:
      path: a TorchScript file, a Lightning .ckpt or a torch.save'd state dict.
      allow_pickle: let ``torch.load`` run arbitrary pickled Python (only for trusted
        files whose extra contents, e.g. hyper-parameters, need it).

    Returns:
      ({name: torch.Tensor}, facts about the source: format, prefix, dtype).
    """
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    torch = import_torch()
    kind = _file_kind(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's deprecation notices
            if kind == "torchscript":
                state = dict(torch.jit.load(path, map_location="cpu").state_dict())
                source_format = "torchscript"
            else:
                obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
                state, source_format = _state_from_object(obj, torch)
    except ConvertError as e:
        raise ConvertError(f"{path}: {e}") from None
    except Exception as e:  # torch raises many types for files it cannot read
        if "Unsupported global" in str(e):  # a pickle that is more than tensors and plain containers
            raise ConvertError(
                f"{path}: the checkpoint holds Python objects besides tensors; if you trust the file, "
                "rerun with --allow_pickle"
            ) from None
        detail = (
            "neither a zip archive nor a pickle" if "Weights only load failed" in str(e) else _first_line(e)
        )
        raise ConvertError(f"{path}: not a TorchScript file or PyTorch checkpoint ({detail})") from None
    prefix = next((p for p in PREFIXES if p + PROBE in state), "")
    tensors = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in tensors.values()})
    return tensors, dict(source_format=source_format, source_prefix=prefix, source_dtypes=dtypes)


def _state_from_object(obj, torch) -> tuple[dict, str]:
    if isinstance(obj, torch.nn.Module):
        return dict(obj.state_dict()), "pickled module"
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        state = dict(obj["state_dict"])
        lightning = "pytorch-lightning_version" in obj or any(k.startswith("unet.") for k in state)
        return state, "lightning" if lightning else "state_dict"
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), "state_dict"
    raise ConvertError(f"no state dict found (a {type(obj).__name__})")


def to_flax_params(tensors: Mapping, abstract_params) -> dict:
    """The Flax parameter tree (float32 numpy) from checked PyTorch tensors."""
    flat = {}
    for path, leaf in mapping.flatten(abstract_params).items():
        value = tensors[mapping.torch_name(path)].detach().cpu().float().numpy()
        value = np.ascontiguousarray(mapping.to_flax(value, path))
        if value.shape != tuple(leaf.shape):
            raise ConvertError(
                f"{mapping.torch_name(path)} maps to {value.shape}, the model needs {leaf.shape}"
            )
        flat[path] = value
    return mapping.unflatten(flat)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _check_output(out_dir: str) -> None:
    from dheads_jax import export

    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise ConvertError(f"{out_dir}: exists and is not a folder; not replacing it")
    if os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, export.META_NAME)):
        raise ConvertError(f"{out_dir}: exists and is not an export; not replacing it")


def convert_checkpoint(
    torch_checkpoint: str, output: str, config="crema", allow_pickle: bool = False
) -> dict:
    """Converts a PyTorch U-Net checkpoint to the export folder ``output``.

    Args:
      torch_checkpoint: TorchScript file, Lightning .ckpt or state-dict file.
      output: the export folder to write (replaced if it is an export already).
      config: a config name (``crema``, ``lrw``), a ``.py`` config path or a ConfigDict.
        The official table check applies to ``crema`` and ``lrw``; other configs are
        checked against the tensors their Flax model has.
      allow_pickle: see ``load_state_dict``.

    Returns:
      The provenance facts written into the export.

    Raises:
      ConvertError: with a one-line message; nothing is written at ``output`` then.
    """
    from dheads_jax import export

    config = resolve_config(config)
    out_dir = os.path.abspath(output)
    _check_output(out_dir)
    tensors, source = load_state_dict(torch_checkpoint, allow_pickle=allow_pickle)
    abstract = _abstract_params(config)
    try:
        official = check_shapes({k: tuple(v.shape) for k, v in tensors.items()}, config, abstract)
    except ConvertError as e:
        raise ConvertError(f"{torch_checkpoint}: {e}") from None
    params = to_flax_params(tensors, abstract)
    del tensors
    torch = import_torch()
    provenance = dict(
        converted_from=os.path.abspath(torch_checkpoint),
        source_sha256=_sha256(torch_checkpoint),
        **source,
        official_table=official,
        num_tensors=len(mapping.flatten(params)),
        num_params=int(sum(v.size for v in mapping.flatten(params).values())),
        torch_version=torch.__version__,
        converter="dheads_jax.convert",
    )
    staging = f"{out_dir}.converting-{os.getpid()}"
    try:
        export.write_export(staging, params, config, weights="raw", dtype="float32", provenance=provenance)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except Exception as e:  # OSError, or orbax's errors for an unwritable place
        raise ConvertError(f"{out_dir}: cannot write the export ({_first_line(e)})") from None
    finally:
        for leftover in (staging, f"{staging}.tmp-{os.getpid()}"):
            shutil.rmtree(leftover, ignore_errors=True)
    return provenance


def define_flags(values: flags.FlagValues) -> None:
    """The flags of ``python -m dheads_jax.convert``, on ``values``."""
    flags.DEFINE_string(
        "torch_checkpoint", None, "crema_script.pt, a Lightning .ckpt, ...", required=True, flag_values=values
    )
    flags.DEFINE_string("output", None, "The export folder to write.", required=True, flag_values=values)
    flags.DEFINE_string(
        "config", "crema", "crema (default), lrw, or a path to a config .py", flag_values=values
    )
    flags.DEFINE_bool(
        "allow_pickle",
        False,
        "Let torch.load unpickle arbitrary Python objects (trusted files only).",
        flag_values=values,
    )


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (errors are one line on stderr)."""
    args = command.parse(
        "python -m dheads_jax.convert",
        "Convert the authors' PyTorch Diffused Heads U-Net to a dheads_jax export.",
        argv,
        define_flags,
    )
    try:
        facts = convert_checkpoint(args.torch_checkpoint, args.output, args.config, args.allow_pickle)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"wrote {os.path.abspath(args.output)}: {facts['num_tensors']} tensors, {facts['num_params']:,} "
        f"parameters from {args.torch_checkpoint} ({facts['source_format']})"
    )
    return 0
