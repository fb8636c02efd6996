"""Face alignment: similarity transforms, smoothing, warping and frame resampling."""

import numpy as np

from dheads_jax import media
from dheads_jax.data import align


def test_video_resampling_picks_the_nearest_frame():
    # 50 fps source, 0.2 s -> 5 frames at 25 fps: every other source frame.
    np.testing.assert_array_equal(media.resample_times(np.arange(10) / 50, 0.2), [0, 2, 4, 6, 8])
    # 30 fps source, 1 s -> 25 frames, nearest in time.
    idx = media.resample_times(np.arange(30) / 30, 1.0)
    assert len(idx) == 25
    np.testing.assert_array_equal(idx, np.round(np.arange(25) / 25 * 30 + 1e-9).astype(int))


def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(21, 2)) * 30 + 100
    angle, scale, shift = 0.3, 0.7, np.array([5.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = align.similarity_transform(src, src @ rot.T + shift)
    np.testing.assert_allclose(matrix, np.concatenate([rot, shift[:, None]], 1), atol=1e-9)


def test_smoothing_keeps_similarities_and_removes_jitter():
    rng = np.random.default_rng(1)
    base = align.similarity_transform(align.TEMPLATE * 100, align.TEMPLATE * 128)
    noisy = np.stack([base + np.array([[0, 0, 1], [0, 0, 1]]) * rng.normal(size=(2, 1)) for _ in range(50)])
    smooth = align.smooth_transforms(noisy, 2.0)
    np.testing.assert_allclose(smooth[:, 0, 0], smooth[:, 1, 1])
    np.testing.assert_allclose(smooth[:, 0, 1], -smooth[:, 1, 0])
    assert np.diff(smooth[:, :, 2], axis=0).std() < 0.3 * np.diff(noisy[:, :, 2], axis=0).std()
    np.testing.assert_array_equal(align.smooth_transforms(noisy, 0.0), noisy)


def test_warp_image_sampling_convention():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(align.warp_image(image, np.array([[1.0, 0, 0], [0, 1, 0]]), 64), image)
    shifted = align.warp_image(image, np.array([[1.0, 0, -3], [0, 1, -5]]), 32)
    np.testing.assert_array_equal(shifted, image[5:37, 3:35])
    half = align.warp_image(image, np.array([[0.5, 0, -0.25], [0, 0.5, -0.25]]), 32)
    np.testing.assert_allclose(half, image.reshape(32, 2, 32, 2, 3).mean((1, 3)), atol=0.51)
    # Outside the source, edge pixels are repeated instead of black.
    out = align.warp_image(image, np.array([[1.0, 0, 10], [0, 1, 10]]), 64)
    np.testing.assert_array_equal(out[:10, :10], np.broadcast_to(image[0, 0], (10, 10, 3)))
