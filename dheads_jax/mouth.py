"""The mouth box of the lip-sync loss (docs/method.md, section 3)."""

from __future__ import annotations

import numpy as np

MOUTH_POINTS = slice(48, 68)  # iBUG 68-point convention


def mouth_box(landmarks: np.ndarray, image_size: int, margin: int = 5) -> np.ndarray:
    """Half-open box around the mouth landmarks, as the official lip loss crops it.

    box = [floor(min) - margin, ceil(max) + margin) on each axis, clipped to the image.

    Args:
      landmarks: [68, 2] (x, y) in pixels of the training resolution, or [20, 2]
        mouth points only.
      image_size: the (square) image side.
      margin: pixels added on every side.

    Returns:
      int32 [4] = (top, bottom, left, right).
    """
    pts = np.asarray(landmarks, np.float64)
    if pts.shape == (68, 2):
        pts = pts[MOUTH_POINTS]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"landmarks must be [68, 2] or [20, 2], got {pts.shape}")
    (x0, y0), (x1, y1) = np.floor(pts.min(0)), np.ceil(pts.max(0))
    top, bottom = max(0, int(y0) - margin), min(image_size, int(y1) + margin)
    left, right = max(0, int(x0) - margin), min(image_size, int(x1) + margin)
    return np.array([top, bottom, left, right], np.int32)
