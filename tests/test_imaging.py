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


def test_blank_box_zeroes_exactly_its_box_on_numpy_and_jax():
    """[ours] The identity and motion masks: rows 0.25-0.5 and columns 0.5-1 of an 8 x 12 image
    are rows 2..3 and columns 6..11; everything else is left as it was, in every leading axis."""
    import jax.numpy as jnp

    images = np.random.default_rng(2).uniform(0.1, 1.0, (2, 3, 8, 12, 3)).astype(np.float32)
    for backend in (np.asarray, jnp.asarray):
        out = np.asarray(imaging.blank_box(backend(images), (0.25, 0.5, 0.5, 1.0)))
        assert out.shape == images.shape and out.dtype == np.float32
        np.testing.assert_array_equal(out[..., 2:4, 6:12, :], 0.0)
        kept = np.ones((8, 12), bool)
        kept[2:4, 6:12] = False
        np.testing.assert_array_equal(out[..., kept, :], images[..., kept, :])


def test_flatten_box_fills_its_box_with_the_box_mean_colour_of_each_image():
    """[ours] The identity mask: the box of each image (rows 2..3, columns 6..11) becomes that
    box's mean colour, per image and channel; everything else is left as it was."""
    import jax.numpy as jnp

    images = np.random.default_rng(3).uniform(-1.0, 1.0, (2, 3, 8, 12, 3)).astype(np.float32)
    mean = images[..., 2:4, 6:12, :].mean(axis=(-3, -2))  # [2, 3, 3]
    for backend in (np.asarray, jnp.asarray):
        out = np.asarray(imaging.flatten_box(backend(images), (0.25, 0.5, 0.5, 1.0)))
        assert out.shape == images.shape and out.dtype == np.float32
        np.testing.assert_allclose(
            out[..., 2:4, 6:12, :], np.broadcast_to(mean[..., None, None, :], (2, 3, 2, 6, 3)), atol=1e-6
        )
        kept = np.ones((8, 12), bool)
        kept[2:4, 6:12] = False
        np.testing.assert_array_equal(out[..., kept, :], images[..., kept, :])


@pytest.mark.parametrize("box", [(0.5, 0.5, 0.0, 1.0), (0.0, 1.2, 0.0, 1.0), (0.1, 0.2, 0.3)])
def test_blank_box_names_the_option_of_a_bad_box(box):
    for fn in (imaging.blank_box, imaging.flatten_box):
        with pytest.raises(ValueError, match="identity_mask"):
            fn(np.zeros((8, 8, 3), np.float32), box, "identity_mask")
