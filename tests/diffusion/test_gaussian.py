"""The diffusion math: loss terms, VLB, DDPM and DDIM steps, v parametrization, losses on v."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from dheads_jax import diffusion as dd
from dheads_jax.diffusion import gaussian
from dheads_jax.train.objective import LossOptions

S = dd.build_schedule("cosine", 1000)


def random_terms(seed=0, b=3, size=16):
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, (b, size, size, 3)).astype(np.float32)
    noise = rng.normal(size=x0.shape).astype(np.float32)
    t = np.array([0, 17, 640][:b], np.int32)
    x_t = dd.q_sample(S, x0, t, noise)
    out = rng.normal(size=(b, size, size, 6)).astype(np.float32)
    out[..., 3:] = np.tanh(out[..., 3:])  # v in [-1, 1] as the learned range expects
    boxes = np.array([[2, 9, 3, 12], [0, 16, 0, 16], [5, 7, 8, 9]][:b], np.int32)
    return x0, noise, t, np.asarray(x_t), out, boxes


def test_every_term_is_finite_and_lip_loss_equals_the_crop_mse():
    x0, noise, t, x_t, out, boxes = random_terms()
    terms = dd.training_losses(S, out, x0, x_t, t, noise, boxes, 1e-4, 0.2)
    for name, value in terms.items():
        assert value.shape == (3,) and np.all(np.isfinite(value)), name
    for i, (top, bottom, left, right) in enumerate(boxes):
        crop = (noise[i] - out[i, ..., :3])[top:bottom, left:right]
        assert float(terms["lip"][i]) == pytest.approx(float(np.mean(crop**2)), rel=1e-5)
    expected = terms["simple"] + 1e-4 * terms["vlb"] + 0.2 * terms["lip"]
    np.testing.assert_allclose(terms["loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(terms["simple"], ((noise - out[..., :3]) ** 2).mean((1, 2, 3)), rtol=1e-5)


def test_vlb_matches_an_independent_float64_computation():
    x0, noise, t, x_t, out, _ = random_terms(seed=3)
    got = np.asarray(dd.vb_terms_bpd(S, out, x0, x_t, t))
    betas = dd.schedule.cosine_betas(1000)
    abar = np.cumprod(1 - betas)
    abar_prev = np.r_[1.0, abar[:-1]]
    bt = betas * (1 - abar_prev) / (1 - abar)
    log_bt = np.log(np.r_[bt[1], bt[1:]])
    for i, ti in enumerate(t):
        x0d, xtd, o = x0[i].astype(np.float64), x_t[i].astype(np.float64), out[i].astype(np.float64)
        c1 = betas[ti] * np.sqrt(abar_prev[ti]) / (1 - abar[ti])
        c2 = (1 - abar_prev[ti]) * np.sqrt(1 - betas[ti]) / (1 - abar[ti])
        x0_hat = np.clip(np.sqrt(1 / abar[ti]) * xtd - np.sqrt(1 / abar[ti] - 1) * o[..., :3], -1, 1)
        nu = (o[..., 3:] + 1) / 2
        p_logvar = nu * np.log(betas[ti]) + (1 - nu) * log_bt[ti]
        p_mean = c1 * x0_hat + c2 * xtd
        if ti > 0:
            q_mean, q_logvar = c1 * x0d + c2 * xtd, log_bt[ti]
            kl = 0.5 * (-1 + p_logvar - q_logvar + np.exp(q_logvar - p_logvar))
            kl += 0.5 * (q_mean - p_mean) ** 2 * np.exp(-p_logvar)
            assert got[i] == pytest.approx(kl.mean() / math.log(2), rel=2e-4)
        else:
            # Decoder NLL with the exact normal CDF; ADM's tanh approximation is close.
            std = np.exp(0.5 * p_logvar)
            hi = np.where(x0d > 0.999, np.inf, (x0d - p_mean + 1 / 255) / std)
            lo = np.where(x0d < -0.999, -np.inf, (x0d - p_mean - 1 / 255) / std)
            nll = -np.log(np.maximum(norm.cdf(hi) - norm.cdf(lo), 1e-12))
            assert got[i] == pytest.approx(nll.mean() / math.log(2), rel=2e-2)


def test_vlb_gradient_reaches_only_v_and_lip_gradient_only_the_box():
    x0, noise, t, x_t, out, boxes = random_terms(seed=1)

    def term(name):
        return lambda o: dd.training_losses(S, o, x0, x_t, t, noise, boxes, 1e-4, 0.2)[name].sum()

    g_vlb = np.asarray(jax.grad(term("vlb"))(out))
    assert np.all(g_vlb[..., :3] == 0) and np.abs(g_vlb[..., 3:]).sum() > 0

    g_lip = np.asarray(jax.grad(term("lip"))(out))
    mask = np.asarray(dd.box_mask(boxes, 16, 16))[..., 0].astype(bool)
    assert np.all(g_lip[..., 3:] == 0)
    assert np.all(g_lip[~mask][:, :3] == 0)
    assert np.all(g_lip[mask][:, :3] != 0)


def test_ddpm_step_at_index_zero_returns_the_clamped_x0_without_noise():
    x0, noise, _, x_t, out, _ = random_terms(seed=2)
    t = np.zeros(3, np.int32)
    x_prev, pred = dd.ddpm_step(S, out, x_t, t, noise * 100.0)
    np.testing.assert_allclose(x_prev, pred, atol=1e-5)
    assert float(jnp.abs(pred).max()) <= 1.0


def test_ddpm_step_noise_scale_is_the_learned_variance():
    x0, noise, _, x_t, out, _ = random_terms(seed=4)
    t = np.array([5, 300, 999], np.int32)
    a, _ = dd.ddpm_step(S, out, x_t, t, noise)
    b, _ = dd.ddpm_step(S, out, x_t, t, np.zeros_like(noise))
    log_var = gaussian.learned_range_log_variance(S, out[..., 3:], t)
    np.testing.assert_allclose(a - b, np.exp(0.5 * log_var) * noise, rtol=1e-4, atol=1e-6)


def test_ddim_step_eta_zero_is_deterministic_and_eta_one_uses_beta_tilde():
    x0, noise, _, x_t, out, _ = random_terms(seed=5)
    s = dd.build_schedule("cosine", 1000, 50)
    t = np.array([3, 20, 49], np.int32)
    a, _ = dd.ddim_step(s, out, x_t, t, noise, eta=0.0)
    b, _ = dd.ddim_step(s, out, x_t, t, -noise, eta=0.0)
    np.testing.assert_array_equal(a, b)
    c, _ = dd.ddim_step(s, out, x_t, t, noise, eta=1.0)
    d, _ = dd.ddim_step(s, out, x_t, t, np.zeros_like(noise), eta=1.0)
    sigma = np.sqrt(np.asarray(s.posterior_variance)[t]).reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(c - d, sigma * noise, rtol=1e-3, atol=1e-6)


def test_steps_run_under_scan():
    _, noise, _, x_t, out, _ = random_terms(seed=6)
    s = dd.build_schedule("cosine", 1000, 10)

    def body(x, j):
        t = jnp.full((3,), j)
        return dd.ddpm_step(s, out, x, t, noise)[0], None

    final, _ = jax.jit(lambda x: jax.lax.scan(body, x, jnp.arange(9, -1, -1)))(x_t)
    loop = x_t
    for j in range(9, -1, -1):
        loop = dd.ddpm_step(s, out, loop, np.full((3,), j), noise)[0]
    np.testing.assert_allclose(final, loop, rtol=1e-5, atol=1e-5)


def test_v_parametrization_turns_v_back_into_the_noise():
    """v = sqrt(abar) eps - sqrt(1 - abar) x0 (float64, by hand) must come back as eps."""
    S = dd.build_schedule("cosine", 1000)
    rng = np.random.default_rng(5)
    x0 = rng.uniform(-1, 1, (4, 6, 6, 3))
    eps = rng.standard_normal((4, 6, 6, 3))
    t = np.array([0, 10, 500, 999])
    abar = np.asarray(S.alphas_cumprod, np.float64)[t][:, None, None, None]
    x_t = np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps
    v_target = np.sqrt(abar) * eps - np.sqrt(1 - abar) * x0
    var = rng.uniform(-1, 1, (4, 6, 6, 3))
    out = np.concatenate([v_target, var], -1).astype(np.float32)
    got = np.asarray(dd.output_to_eps(S, out, x_t.astype(np.float32), jnp.asarray(t), "v"))
    np.testing.assert_allclose(got[..., :3], eps, atol=2e-4)
    np.testing.assert_array_equal(got[..., 3:], out[..., 3:])
    np.testing.assert_array_equal(dd.output_to_eps(S, out, x_t, jnp.asarray(t), "eps"), out)
    with pytest.raises(ValueError, match="parametrization"):
        dd.output_to_eps(S, out, x_t, jnp.asarray(t), "x0")


def test_v_mse_target_compares_v_and_is_the_official_loss_over_abar():
    """mse_target "v": L_simple and L_ls on (v_hat, v); the official eps MSE is abar times it."""
    x0, noise, t, x_t, out, boxes = random_terms()
    t = np.array([3, 400, 900], np.int32)
    x_t = np.asarray(dd.q_sample(S, x0, t, noise))
    abar = np.asarray(S.alphas_cumprod, np.float64)[t]
    v = np.sqrt(abar)[:, None, None, None] * noise - np.sqrt(1 - abar)[:, None, None, None] * x0
    np.testing.assert_allclose(dd.v_target(S, x0, noise, jnp.asarray(t)), v, atol=1e-6)
    v_hat = out[..., :3]
    as_eps = dd.output_to_eps(S, out, x_t, jnp.asarray(t), "v")
    terms = dd.training_losses(S, as_eps, x0, x_t, t, noise, boxes, 1e-4, 0.2, mse_pair=(v_hat, v))
    np.testing.assert_allclose(terms["simple"], ((v - v_hat) ** 2).mean((1, 2, 3)), rtol=1e-5)
    for i, (top, bottom, left, right) in enumerate(boxes):
        crop = (v[i] - v_hat[i])[top:bottom, left:right]
        assert float(terms["lip"][i]) == pytest.approx(float(np.mean(crop**2)), rel=1e-5)
    official = dd.training_losses(S, as_eps, x0, x_t, t, noise, boxes, 1e-4, 0.2)
    np.testing.assert_allclose(official["simple"], abar * terms["simple"], rtol=1e-3)
    np.testing.assert_allclose(official["lip"], abar * terms["lip"], rtol=1e-3)
    np.testing.assert_allclose(official["vlb"], terms["vlb"], rtol=1e-6)  # the bound is unchanged
    # At t = 900 the official term has almost no weight left; the v term keeps it.
    assert official["simple"][2] < 0.05 * terms["simple"][2]


def test_v_mse_target_needs_a_v_network_and_a_known_name():
    with pytest.raises(ValueError, match='needs parametrization "v"'):
        LossOptions(mse_target="v")
    with pytest.raises(ValueError, match="unknown mse_target"):
        LossOptions(parametrization="v", mse_target="x0")
