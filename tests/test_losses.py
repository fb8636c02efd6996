"""Loss terms, the mouth box, and single sampling steps (docs/method.md, sections 3, 6)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import norm

from dheads_jax import diffusion as dd
from dheads_jax.diffusion import gaussian
from dheads_jax.imaging import rgb_to_luma
from dheads_jax.models import factory
from dheads_jax.mouth import mouth_box
from dheads_jax.train.objective import LOSS_KEYS, augment_motion, diffusion_loss, drop_motion, loss_keys
from tests import helpers

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


def test_overfitting_one_batch_reduces_the_noise_loss():
    config = helpers.tiny_config()
    model = factory.build_unet(config)
    params = helpers.init_params(model, config)
    batch = helpers.random_batch(config, 2, seed=7)
    opt = optax.adam(3e-3)
    opt_state = opt.init(params)
    loss_kw = dict(lambda_vlb=1e-4, lambda_ls=0.2)

    @jax.jit
    def step(params, opt_state, key):
        grads, _ = jax.grad(diffusion_loss, has_aux=True)(params, model, S, batch, key, **loss_kw)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def evaluate(params):
        keys = jax.random.split(jax.random.key(99), 16)
        losses = jax.vmap(lambda k: diffusion_loss(params, model, S, batch, k, train=False, **loss_kw)[1])(
            keys
        )
        return losses["simple"].mean()

    before = float(evaluate(params))
    for i in range(150):
        params, opt_state = step(params, opt_state, jax.random.key(i))
    after = float(evaluate(params))
    assert before == pytest.approx(1.0, abs=0.1)  # zero output predicts eps = 0
    assert after < 0.5 * before, (before, after)


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


def test_motion_noise_has_a_uniform_per_example_scale():
    motion = jnp.zeros((512, 2, 8, 8, 3))
    assert augment_motion(jax.random.key(0), motion, 0.0) is motion
    noisy = np.asarray(augment_motion(jax.random.key(0), motion, 0.2))
    std = noisy.reshape(512, -1).std(axis=1)
    assert std.max() < 0.2 * 1.1 and std.min() < 0.01
    # std ~ U(0, 0.2): mean 0.1, and a quarter of the examples below 0.05.
    assert abs(std.mean() - 0.1) < 0.01
    assert abs((std < 0.05).mean() - 0.25) < 0.06


@pytest.mark.parametrize("channels", [3, 1])
def test_motion_dropout_puts_the_identity_in_every_slot_of_dropped_examples(channels):
    rng = np.random.default_rng(0)
    identity = rng.uniform(-1, 1, (400, 4, 4, 3)).astype(np.float32)
    motion = rng.uniform(-1, 1, (400, 2, 4, 4, channels)).astype(np.float32)
    assert drop_motion(jax.random.key(0), motion, identity, 0.0) is motion
    filled = identity if channels == 3 else rgb_to_luma(identity)
    out = np.asarray(drop_motion(jax.random.key(1), motion, identity, 0.5))
    dropped = np.all(out == filled[:, None], axis=(1, 2, 3, 4))
    kept = np.all(out == motion, axis=(1, 2, 3, 4))
    assert np.all(dropped ^ kept)  # each example entirely one or the other
    assert 0.4 < dropped.mean() < 0.6
    np.testing.assert_array_equal(
        drop_motion(jax.random.key(2), motion, identity, 1.0), np.broadcast_to(filled[:, None], motion.shape)
    )


@pytest.mark.parametrize("seed", [0, 4, 12345])
def test_every_random_draw_of_the_loss_has_its_own_key(seed):
    rng = jax.random.key(seed)
    keys = loss_keys(rng)
    assert tuple(keys) == LOSS_KEYS
    data = {name: np.asarray(jax.random.key_data(k)) for name, k in keys.items()}
    for i, a in enumerate(LOSS_KEYS):
        for b in LOSS_KEYS[i + 1 :]:
            assert not np.array_equal(data[a], data[b]), (a, b)
    # Nor fold_in(rng, 1) or fold_in(rng, 2): with partitionable threefry they are the noise
    # and dropout keys.
    for reused in (jax.random.fold_in(rng, 1), jax.random.fold_in(rng, 2)):
        assert not any(
            np.array_equal(np.asarray(jax.random.key_data(reused)), data[n])
            for n in ("motion_noise", "motion_dropout")
        )
    # The timesteps, noise and dropout keys are those of split(rng, 3), as before the
    # augmentations had keys of their own: runs without them draw what they drew then.
    old = np.asarray(jax.random.key_data(jax.random.split(rng, 3)))
    np.testing.assert_array_equal(np.stack([data[n] for n in LOSS_KEYS[:3]]), old)


def test_the_loss_options_change_only_what_they_say():
    """The [ours] options off reproduce the official loss exactly; each one on changes it."""
    config = helpers.tiny_config()
    model = factory.build_unet(config)
    params = helpers.perturbed(helpers.init_params(model, config))
    batch = helpers.random_batch(config, 2, seed=3)
    key = jax.random.key(4)
    loss = jax.jit(
        lambda p, m, d=0.0, mt="eps": diffusion_loss(
            params,
            model,
            S,
            batch,
            key,
            lambda_vlb=1e-4,
            lambda_ls=0.2,
            train=False,
            parametrization=p,
            motion_noise=m,
            motion_dropout=d,
            mse_target=mt,
        )[0],
        static_argnums=(0, 1, 2, 3),
    )
    base = jax.jit(
        lambda: diffusion_loss(params, model, S, batch, key, lambda_vlb=1e-4, lambda_ls=0.2, train=False)[0]
    )()
    assert float(loss("eps", 0.0)) == float(base)
    assert abs(float(loss("eps", 0.5)) - float(base)) > 1e-4
    assert abs(float(loss("v", 0.0)) - float(base)) > 1e-4
    assert abs(float(loss("eps", 0.0, 1.0)) - float(base)) > 1e-4
    assert abs(float(loss("v", 0.0, 0.0, "v")) - float(loss("v", 0.0))) > 1e-4


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
    batch = {"target": jnp.zeros((1, 8, 8, 3))}
    kw = dict(lambda_vlb=1e-4, lambda_ls=0.2)
    with pytest.raises(ValueError, match='needs parametrization "v"'):
        diffusion_loss(None, None, S, batch, jax.random.key(0), mse_target="v", **kw)
    with pytest.raises(ValueError, match="unknown mse_target"):
        diffusion_loss(None, None, S, batch, jax.random.key(0), parametrization="v", mse_target="x0", **kw)


class _DifferenceOracle:
    """Stands in for the U-Net: from the input it is given, the exact v (or eps) of the
    difference x0 - x_Id of a known batch, for a network fed x_t - sqrt(abar_t) x_Id."""

    def __init__(self, target, parametrization):
        self.target, self.parametrization = target, parametrization

    def apply(self, variables, x_in, timesteps, identity, motion, audio, train=False, rngs=None):
        abar = gaussian.extract(S.alphas_cumprod, timesteps)
        diff = self.target - identity
        eps = (x_in - jnp.sqrt(abar) * diff) / jnp.sqrt(1 - abar)
        pred = eps if self.parametrization == "eps" else jnp.sqrt(abar) * eps - jnp.sqrt(1 - abar) * diff
        return jnp.concatenate([pred, jnp.zeros_like(pred)], -1)


@pytest.mark.parametrize("parametrization,mse_target", [("eps", "eps"), ("v", "eps"), ("v", "v")])
def test_identity_relative_loss_is_zero_for_a_perfect_denoiser_of_the_difference(parametrization, mse_target):
    """With identity_relative the network's input is x_t - sqrt(abar) x_Id and its v target
    that of x0 - x_Id: an exact predictor of the difference has zero L_simple and lip loss
    (the VLB keeps the learned-variance term), and the unshifted loss does not."""
    config = helpers.tiny_config()
    batch = helpers.random_batch(config, 3, seed=5)
    oracle = _DifferenceOracle(batch["target"], parametrization)
    kw = dict(lambda_vlb=0.0, lambda_ls=1.0, parametrization=parametrization, mse_target=mse_target)
    key = jax.random.key(6)
    _, shifted = diffusion_loss(None, oracle, S, batch, key, identity_relative=True, **kw)
    _, unshifted = diffusion_loss(None, oracle, S, batch, key, **kw)
    assert float(shifted["simple"]) < 1e-8 and float(shifted["lip"]) < 1e-8
    assert float(unshifted["simple"]) > 1e-3
