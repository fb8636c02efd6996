"""Data preparation: decoding, face alignment, audio embeddings and the TFDS builder.

The names below are imported on first use (PEP 562), so that the light modules
(``plan``, ``arrays``, ``audio``'s encoder spec) import where dlib, OpenCV, PyAV or
TensorFlow are not installed. The TensorFlow-dependent modules are imported explicitly:
``dheads_jax.data.builder`` (TalkingFaces, prepare_dataset), ``dheads_jax.data.reader``
(load_clips) and ``dheads_jax.data.records`` (tf.data training batches).
"""

import importlib

_EXPORTS = {
    "NoFaceError": "dheads_jax.data.align",
    "align_face": "dheads_jax.data.align",
    "align_image": "dheads_jax.data.align",
    "MelParams": "dheads_jax.data.audio",
    "encode_waveform": "dheads_jax.data.audio",
    "ClipError": "dheads_jax.data.sources",
    "MediaError": "dheads_jax.media",
    "read_audio": "dheads_jax.media",
    "read_video": "dheads_jax.media",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
