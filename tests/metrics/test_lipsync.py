"""Landmark lip sync: offsets and lagged correlation."""

import numpy as np
import pytest

from dheads_jax.metrics import landmarks, lipsync
from tests import helpers


def test_shifted_copy_gives_the_known_lipsync_offset():
    frames, waveform = helpers.grid_clip("swwp2s")
    real = landmarks.video_landmarks(frames)
    env = lipsync.audio_envelope(waveform, len(frames))
    base = lipsync.sync_stats(lipsync.mouth_opening(real), env)
    assert base["offset"] in (0, 1) and base["confidence"] > 1.5
    for s in (3, -2):
        late = landmarks.video_landmarks(helpers.shifted(frames, s))
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
