"""Schedules and respacing against independent float64 computations (docs/method.md, sections 3, 6)."""

import math

import numpy as np
import pytest

from dheads_jax.diffusion import schedule as sch


def reference_cosine_betas(T):
    """The official loop, written out with math.cos."""
    abar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)])


def test_cosine_schedule_matches_reference_loop():
    betas = sch.cosine_betas(1000)
    np.testing.assert_allclose(betas, reference_cosine_betas(1000), rtol=1e-12, atol=0)
    abar = np.cumprod(1 - betas)
    assert betas[0] == pytest.approx(4.1284e-5, rel=1e-4)
    assert betas[999] == 0.999
    assert abar[499] == pytest.approx(0.49384, rel=1e-4)


def test_schedule_coefficients_match_float64():
    betas = reference_cosine_betas(1000)
    s = sch.make_schedule(betas)
    abar = np.cumprod(1 - betas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    beta_tilde = betas * (1 - abar_prev) / (1 - abar)
    np.testing.assert_allclose(s.alphas_cumprod, abar, rtol=1e-6)
    np.testing.assert_allclose(s.sqrt_recipm1_alphas_cumprod, np.sqrt(1 / abar - 1), rtol=1e-6)
    np.testing.assert_allclose(s.posterior_variance, beta_tilde, rtol=1e-5, atol=1e-30)
    # log(beta~) with entry 0 replaced by entry 1.
    expected_log = np.log(np.concatenate([[beta_tilde[1]], beta_tilde[1:]]))
    np.testing.assert_allclose(s.posterior_log_variance_clipped, expected_log, rtol=1e-5)
    np.testing.assert_allclose(
        s.posterior_mean_coef2, (1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar), rtol=1e-5
    )
    assert s.betas.dtype == np.float32


def test_linear_schedule_endpoints():
    betas = sch.linear_betas(1000)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(sch.linear_betas(500)[[0, -1]], [2e-4, 0.04])


def test_respacing_100_uses_the_official_index_rule():
    kept = sch.space_timesteps(1000, 100)
    assert kept[:10] == [0, 10, 20, 30, 40, 50, 61, 71, 81, 91]
    assert kept[-3:] == [979, 989, 999]
    assert len(kept) == 100 and len(set(kept)) == 100


def test_respacing_to_1000_is_identity():
    full = sch.build_schedule("cosine", 1000)
    same = sch.build_schedule("cosine", 1000, 1000)
    np.testing.assert_array_equal(same.timesteps, np.arange(1000))
    np.testing.assert_allclose(same.betas, full.betas, rtol=1e-6)


def test_respaced_schedule_keeps_original_timesteps_and_abar():
    full = sch.build_schedule("cosine", 1000)
    s = sch.build_schedule("cosine", 1000, 100)
    kept = np.array(sch.space_timesteps(1000, 100))
    np.testing.assert_array_equal(s.timesteps, kept)  # what the network receives
    np.testing.assert_allclose(s.alphas_cumprod, np.asarray(full.alphas_cumprod)[kept], rtol=1e-5)
    # beta'_0 = 1 - abar[0] (abar before the first step is 1).
    assert float(s.betas[0]) == pytest.approx(float(full.betas[0]), rel=1e-6)


def test_bad_respacing_and_schedule_names_raise():
    with pytest.raises(ValueError, match="respace"):
        sch.space_timesteps(1000, 0)
    with pytest.raises(ValueError, match="respace"):
        sch.space_timesteps(10, 11)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        sch.get_betas("sigmoid", 10)
