"""Blinks from the eye aspect ratio."""

import numpy as np
import pytest

from dheads_jax.metrics import blinks, landmarks
from tests import helpers


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
    frames, _ = helpers.grid_clip("swwp2s")
    stats = blinks.blink_stats(landmarks.video_landmarks(np.repeat(frames[:1], 25, 0)))
    assert stats["num_blinks"] == 0 and stats["blinks_per_s"] == 0.0
