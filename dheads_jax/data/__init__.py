"""Data preparation: decoding, face alignment, audio embeddings and the TFDS builder.

Light modules are imported here; the TensorFlow-dependent ones are imported explicitly:
``dheads_jax.data.builder`` (TalkingFaces, prepare_dataset) and ``dheads_jax.data.reader``
(load_clips).
"""

from dheads_jax.data.align import NoFaceError, align_face, align_image
from dheads_jax.data.audio import MelParams, encode_waveform
from dheads_jax.data.sources import ClipError
from dheads_jax.media import MediaError, read_audio, read_video

__all__ = [
    "ClipError",
    "MediaError",
    "MelParams",
    "NoFaceError",
    "align_face",
    "align_image",
    "encode_waveform",
    "read_audio",
    "read_video",
]
