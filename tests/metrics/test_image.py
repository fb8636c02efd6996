"""Paired image metrics: PSNR, SSIM, LPIPS and landmark distance."""

import numpy as np
import pytest

from dheads_jax.metrics import image, landmarks, perceptual, smoothness
from tests import helpers


def test_identical_videos_give_perfect_scores():
    frames, _ = helpers.grid_clip("bbaf2n")
    frames = frames[:20]
    psnr, ssim = image.psnr_ssim(frames, frames.copy())
    np.testing.assert_array_equal(psnr, image.PSNR_CAP_DB)
    np.testing.assert_allclose(ssim, 1.0, atol=1e-5)
    np.testing.assert_allclose(perceptual.lpips(frames, frames.copy()), 0.0, atol=1e-6)
    lm = landmarks.video_landmarks(frames)
    assert np.isfinite(lm).all() and lm.shape == (20, 68, 2)
    np.testing.assert_array_equal(landmarks.mouth_distance(lm, landmarks.video_landmarks(frames.copy())), 0.0)
    still = smoothness.smoothness_rgb(np.repeat(frames[:1], 5, 0))
    assert still["fmse"] == 0.0 and still["fmse_clean"] == 0.0


def test_paired_metrics_get_worse_with_noise():
    frames, _ = helpers.grid_clip("bbaf2n")
    frames = frames[:16]
    small, large = helpers.noisy(frames, 4), helpers.noisy(frames, 20)
    p_small, s_small = image.psnr_ssim(small, frames)
    p_large, s_large = image.psnr_ssim(large, frames)
    assert 30 < p_small.mean() < 40 and 15 < p_large.mean() < p_small.mean()
    assert s_large.mean() < s_small.mean() < 1.0
    # PSNR against a hand computation: 10 log10(1 / MSE) on [0, 1].
    mse = ((small[0] / 255.0 - frames[0] / 255.0) ** 2).mean()
    assert p_small[0] == pytest.approx(-10 * np.log10(mse), abs=1e-3)
    assert 0 < perceptual.lpips(small, frames).mean() < perceptual.lpips(large, frames).mean()
