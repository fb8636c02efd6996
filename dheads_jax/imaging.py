"""Small image helpers shared by the input pipeline, the sampler, the media writers and the metrics."""

from __future__ import annotations

import numpy as np

LUMA_WEIGHTS = (0.2989, 0.587, 0.114)

# OpenCV flags by name; cv2 itself is imported on first use (it takes ~0.3 s to import).
INTERPOLATIONS = ("nearest", "linear", "cubic", "area")


def rgb_to_luma(x):
    """Grayscale motion frames as the official code makes them (docs/method.md, section 4).

    Works on numpy and jax arrays alike.

    Args:
      x: [..., 3] RGB in [-1, 1].

    Returns:
      [..., 1] luma 0.2989 R + 0.587 G + 0.114 B, same dtype.
    """
    r, g, b = LUMA_WEIGHTS
    return r * x[..., 0:1] + g * x[..., 1:2] + b * x[..., 2:3]


def motion_transform(x, grayscale: bool):
    """The frame as it enters the motion buffer: luma if ``grayscale``, else unchanged."""
    return rgb_to_luma(x) if grayscale else x


def to_uint8(x) -> np.ndarray:
    """[-1, 1] floats -> uint8 [0, 255] (rounded, clipped); the inverse of ``from_uint8``."""
    return np.clip(np.round((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def from_uint8(x) -> np.ndarray:
    """uint8 [0, 255] -> float32 in [-1, 1]: x / 127.5 - 1."""
    return np.asarray(x).astype(np.float32) / 127.5 - 1.0


def resize(frames, size, interpolation: str = "cubic") -> np.ndarray:
    """Frames resized with OpenCV (``cv2.resize``): the project's one resize.

    Used by the media writers' upscale, the landmark metric and the evaluation. Not used by
    ``metrics/smoothness.py``, which reproduces the official OFM script and its own
    ``cv2.resize`` call (default interpolation) on BGR frames.

    Args:
      frames: one frame [H, W] or [H, W, C], or a stack [N, H, W, C] (uint8; any dtype
        ``cv2.resize`` takes).
      size: S for S x S, or (height, width).
      interpolation: "cubic" (cv2.INTER_CUBIC), "area" (cv2.INTER_AREA, for shrinking),
        "linear" or "nearest".

    Returns:
      [..., height, width, C] of the input's dtype; the input itself when it already has
      that size.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    height, width = (size, size) if np.isscalar(size) else size
    height, width = int(height), int(width)
    frames = np.asarray(frames)
    if frames.ndim not in (2, 3, 4):
        raise ValueError(f"expected [H, W], [H, W, C] or [N, H, W, C] frames, got shape {frames.shape}")
    batched = frames.ndim == 4
    hw = frames.shape[1:3] if batched else frames.shape[:2]
    if tuple(hw) == (height, width):
        return frames

    import cv2

    flag = {
        "nearest": cv2.INTER_NEAREST,
        "linear": cv2.INTER_LINEAR,
        "cubic": cv2.INTER_CUBIC,
        "area": cv2.INTER_AREA,
    }[interpolation]

    def one(frame):
        out = cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=flag)
        return out[..., None] if frame.ndim == 3 and out.ndim == 2 else out  # cv2 drops C = 1

    if batched:
        return (
            np.stack([one(f) for f in frames])
            if len(frames)
            else np.zeros((0, height, width, frames.shape[-1]), frames.dtype)
        )
    return one(frames)


def box_pixels(fractions, size: int, name: str = "box") -> tuple[int, int, int, int]:
    """Pixel box (top, bottom, left, right), half-open, of ``fractions`` of a ``size`` image.

    Raises:
      ValueError: not four fractions, or not a box inside the image (``name`` says which option).
    """
    if len(fractions) != 4:
        raise ValueError(f"{name} must be (top, bottom, left, right) fractions, got {tuple(fractions)}")
    top, bottom, left, right = (int(round(f * size)) for f in fractions)
    if not (0 <= top < bottom <= size and 0 <= left < right <= size):
        raise ValueError(f"{name} {tuple(fractions)} is not a box inside the image")
    return top, bottom, left, right


def box_inside(images, fractions, name: str = "box") -> tuple[np.ndarray, tuple[slice, slice]]:
    """The [H, W] mask of the box ``fractions`` of ``images`` [..., H, W, C] and its (rows,
    columns) slices."""
    height, width = images.shape[-3], images.shape[-2]
    top, bottom, _, _ = box_pixels(fractions, height, name)
    _, _, left, right = box_pixels(fractions, width, name)
    inside = np.zeros((height, width), bool)
    inside[top:bottom, left:right] = True
    return inside, (slice(top, bottom), slice(left, right))


def blank_box(images, fractions, name: str = "box"):
    """``images`` [..., H, W, C] (numpy or jax) with the box ``fractions`` of each image set to 0."""
    inside, _ = box_inside(images, fractions, name)
    return images * (~inside)[:, :, None].astype(images.dtype)


def flatten_box(images, fractions, name: str = "box"):
    """``images`` [..., H, W, C] (numpy or jax) with the box ``fractions`` of each image filled
    with that box's mean colour: its average tone stays, its shapes (a mouth) go."""
    inside, (rows, cols) = box_inside(images, fractions, name)
    mean = images[..., rows, cols, :].mean(axis=(-3, -2), keepdims=True)
    inside = inside[:, :, None].astype(images.dtype)
    return images * (1 - inside) + mean * inside
