"""The lip-loss box from 68 landmarks."""

import numpy as np
import pytest

from dheads_jax import diffusion as dd
from dheads_jax.mouth import mouth_box

S = dd.build_schedule("cosine", 1000)


def test_mouth_box_matches_hand_computed_boxes():
    pts = np.zeros((68, 2))
    pts[48:68] = [[40.2, 80.7], [60.9, 95.1]] * 10  # x in [40.2, 60.9], y in [80.7, 95.1]
    # rows [floor(80.7) - 5, ceil(95.1) + 5) = [75, 101); cols [40 - 5, 61 + 5) = [35, 66)
    np.testing.assert_array_equal(mouth_box(pts, 128), [75, 101, 35, 66])
    # Clipped to the image; the mouth points alone are accepted too.
    edge = np.array([[1.5, 2.0], [127.2, 125.9]] * 10)
    np.testing.assert_array_equal(mouth_box(edge, 128), [0, 128, 0, 128])
    np.testing.assert_array_equal(mouth_box(edge, 128, margin=0), [2, 126, 1, 128])
    with pytest.raises(ValueError, match="landmarks"):
        mouth_box(np.zeros((5, 3)), 128)
