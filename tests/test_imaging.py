"""imaging.py: the one resize and the uint8 conversions."""

import os

import cv2
import numpy as np
import pytest

from dheads_jax import imaging

GRID_CLIP = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "samples", "grid", "bbaf2n.mpg"
)


def test_resize_is_cv2_and_keeps_shapes():
    frames = np.random.default_rng(1).integers(0, 256, (3, 20, 30, 3), np.uint8)
    out = imaging.resize(frames, (40, 50), "cubic")
    assert out.shape == (3, 40, 50, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1], cv2.resize(frames[1], (50, 40), interpolation=cv2.INTER_CUBIC))
    np.testing.assert_array_equal(
        imaging.resize(frames[0], 10, "area"), cv2.resize(frames[0], (10, 10), interpolation=cv2.INTER_AREA)
    )
    assert imaging.resize(frames, (20, 30)) is frames
    assert imaging.resize(frames[0, :, :, :1], 8).shape == (8, 8, 1)
    assert imaging.resize(frames[0, :, :, 0], 8).shape == (8, 8)
    with pytest.raises(ValueError, match="interpolation"):
        imaging.resize(frames, 8, "bicubic")


def test_uint8_conversions():
    x = np.array([-1.5, -1.0, -0.0039, 0.0, 0.5, 1.0, 2.0], np.float32)
    u = imaging.to_uint8(x)
    np.testing.assert_array_equal(u, [0, 0, 127, 128, 191, 255, 255])
    assert u.dtype == np.uint8
    y = imaging.from_uint8(np.array([0, 128, 255], np.uint8))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.array([0, 128, 255], np.float32) / 127.5 - 1.0)
    np.testing.assert_array_equal(
        imaging.to_uint8(imaging.from_uint8(np.arange(256, dtype=np.uint8))), np.arange(256)
    )
