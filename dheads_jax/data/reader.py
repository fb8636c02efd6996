"""Reading a prepared dataset back: its folder, its metadata and whole clips."""

from __future__ import annotations

import dataclasses
import glob
import os

import numpy as np
import tensorflow_datasets as tfds

from dheads_jax.data.builder import BUILDER_NAME


def resolve_dataset_dir(path: str) -> str:
    """The TFDS version folder for ``path``: that folder itself or a prepare.py output dir.

    Raises:
      FileNotFoundError: no dataset below ``path``; ValueError: more than one.
    """
    if os.path.exists(os.path.join(path, "dataset_info.json")):
        return path
    found = sorted(glob.glob(os.path.join(path, BUILDER_NAME, "*", "dataset_info.json")))
    if not found:
        raise FileNotFoundError(f"no prepared dataset in {path} (expected {BUILDER_NAME}/<version>/)")
    if len(found) > 1:
        raise ValueError(f"several dataset versions in {path}: {[os.path.dirname(f) for f in found]}")
    return os.path.dirname(found[0])


def load_builder(dataset_dir: str) -> tfds.core.DatasetBuilder:
    """A read-only TFDS builder of the dataset (no builder code needed)."""
    return tfds.builder_from_directory(resolve_dataset_dir(dataset_dir))


def dataset_metadata(builder: tfds.core.DatasetBuilder) -> dict:
    """The preparation settings stored with the dataset (see builder.dataset_metadata)."""
    return dict(builder.info.metadata["dheads"])


@dataclasses.dataclass
class Clip:
    """One whole clip as stored.

    Attributes:
      frames: uint8 [T, S, S, 3] aligned RGB frames.
      audio: float32 [T, D] per-frame audio embeddings.
      waveform: float32 [T * 640] 16 kHz mono.
      landmarks: float32 [T, 68, 2] (x, y) in crop pixels.
      mouth_boxes: int32 [T, 4] (top, bottom, left, right), half-open.
      clip_id: relative path without extension.
      speaker_id: speaker label.
      clip_index: position in the split's candidate list.
      fps: 25.
      sample_rate: 16000.
    """

    frames: np.ndarray
    audio: np.ndarray
    waveform: np.ndarray
    landmarks: np.ndarray
    mouth_boxes: np.ndarray
    clip_id: str
    speaker_id: str
    clip_index: int
    fps: float
    sample_rate: int


def _to_clip(ex: dict) -> Clip:
    return Clip(
        frames=ex["frames"],
        audio=ex["audio_embeddings"],
        waveform=ex["waveform"],
        landmarks=ex["landmarks"],
        mouth_boxes=ex["mouth_boxes"],
        clip_id=ex["clip_id"].decode(),
        speaker_id=ex["speaker_id"].decode(),
        clip_index=int(ex["clip_index"]),
        fps=float(ex["fps"]),
        sample_rate=int(ex["sample_rate"]),
    )


def load_clips(dataset_dir: str, split: str = "train", clip_ids=None, limit: int | None = None) -> list[Clip]:
    """Whole clips of a split, for evaluation and sampling, ordered by ``clip_id``.

    Args:
      dataset_dir: a prepare.py output folder or the TFDS version folder in it.
      split: split name (a TFDS split expression such as "test[:10]" works too).
      clip_ids: optional collection of clip ids to keep.
      limit: optional maximum number of clips (after filtering, in clip_id order).

    Returns:
      list of Clip.
    """
    builder = load_builder(dataset_dir)
    wanted = None if clip_ids is None else set(clip_ids)
    clips = []
    for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
        if wanted is None or ex["clip_id"].decode() in wanted:
            clips.append(_to_clip(ex))
    clips.sort(key=lambda c: c.clip_id)
    return clips[:limit] if limit is not None else clips


def clip_lengths(dataset_dir: str, split: str = "train") -> dict[str, int]:
    """{clip_id: number of frames} of a split, without decoding any frame image."""
    builder = load_builder(dataset_dir)
    decoders = {"frames": tfds.decode.SkipDecoding()}
    ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
    ds = ds.map(lambda ex: (ex["clip_id"], ex["num_frames"]))
    return {cid.decode(): int(n) for cid, n in tfds.as_numpy(ds)}
