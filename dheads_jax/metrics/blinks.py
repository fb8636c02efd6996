"""Blinks per second and mean blink duration from the eye landmarks.

Eye aspect ratio (Soukupova and Cech 2016), per eye with points p1..p6 of the 68-point
convention (right eye 36..41, left eye 42..47):
  EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|),
averaged over both eyes. Eyes are open most of the time, so the open level of a video is its
median EAR; a blink is a maximal run of frames with EAR below ``THRESHOLD`` times that level,
lasting at most ``MAX_FRAMES`` frames (longer runs are closed eyes, not blinks). The ratio is
scale free, so the same rule works at any resolution; a still video has no blinks.
"""

from __future__ import annotations

import numpy as np

from dheads_jax.media import FPS

RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
THRESHOLD = 0.75
MAX_FRAMES = 15  # 0.6 s at 25 fps


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """Mean EAR of both eyes.

    Args:
      landmarks: [T, 68, 2].

    Returns:
      float64 [T] (NaN where landmarks are NaN).
    """
    lm = np.asarray(landmarks, np.float64)
    ears = []
    for eye in (RIGHT_EYE, LEFT_EYE):
        p = lm[:, eye]
        dist = lambda i, j, p=p: np.linalg.norm(p[:, i] - p[:, j], axis=-1)  # noqa: E731
        ears.append((dist(1, 5) + dist(2, 4)) / (2.0 * np.maximum(dist(0, 3), 1e-6)))
    return (ears[0] + ears[1]) / 2.0


def blink_runs(ear: np.ndarray) -> list[tuple[int, int]]:
    """Blinks as half-open frame ranges [start, end).

    Args:
      ear: [T] eye aspect ratio (NaN frames are treated as open).

    Returns:
      list of (start, end).
    """
    ear = np.asarray(ear, np.float64)
    if not np.isfinite(ear).any():
        return []
    closed = np.nan_to_num(ear, nan=np.inf) < THRESHOLD * np.nanmedian(ear)
    runs, start = [], None
    for t, c in enumerate(np.append(closed, False)):
        if c and start is None:
            start = t
        elif not c and start is not None:
            if t - start <= MAX_FRAMES:
                runs.append((start, t))
            start = None
    return runs


def blink_stats(landmarks: np.ndarray, fps: float = FPS) -> dict:
    """Blink statistics of a video.

    Args:
      landmarks: [T, 68, 2].
      fps: frame rate.

    Returns:
      dict with blinks_per_s, blink_duration_s (mean, None without blinks) and num_blinks.
    """
    runs = blink_runs(eye_aspect_ratio(landmarks))
    seconds = len(landmarks) / fps
    return dict(
        num_blinks=len(runs),
        blinks_per_s=len(runs) / seconds if seconds else None,
        blink_duration_s=float(np.mean([(e - s) / fps for s, e in runs])) if runs else None,
    )
