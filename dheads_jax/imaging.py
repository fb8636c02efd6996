"""Small image helpers shared by the input pipeline and the sampler."""

from __future__ import annotations

LUMA_WEIGHTS = (0.2989, 0.587, 0.114)


def rgb_to_luma(x):
    """Grayscale motion frames as the official code makes them (SPEC section 4).

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
