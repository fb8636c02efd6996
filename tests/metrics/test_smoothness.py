"""OFM and F-MSE, official and clean."""

import cv2
import numpy as np
import pytest

from dheads_jax.metrics import smoothness


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
