"""The training objective: motion-frame options, key streams, the options against the official loss, overfitting one batch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dheads_jax import diffusion as dd
from dheads_jax.diffusion import gaussian
from dheads_jax.imaging import rgb_to_luma
from dheads_jax.models import factory
from dheads_jax.train.objective import (
    LOSS_KEYS,
    LossOptions,
    augment_motion,
    diffusion_loss,
    drop_motion,
    loss_keys,
)
from tests import helpers

S = dd.build_schedule("cosine", 1000)


@pytest.mark.slow
def test_overfitting_one_batch_reduces_the_noise_loss():
    config = helpers.tiny_config()
    model = factory.build_unet(config)
    params = helpers.init_params(model, config)
    batch = helpers.random_batch(config, 2, seed=7)
    opt = optax.adam(3e-3)
    opt_state = opt.init(params)
    options = LossOptions(lambda_vlb=1e-4, lambda_ls=0.2)

    @jax.jit
    def step(params, opt_state, key):
        grads, _ = jax.grad(diffusion_loss, has_aux=True)(params, model, S, batch, key, options)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def evaluate(params):
        keys = jax.random.split(jax.random.key(99), 16)
        losses = jax.vmap(lambda k: diffusion_loss(params, model, S, batch, k, options, train=False)[1])(keys)
        return losses["simple"].mean()

    before = float(evaluate(params))
    for i in range(150):
        params, opt_state = step(params, opt_state, jax.random.key(i))
    after = float(evaluate(params))
    assert before == pytest.approx(1.0, abs=0.1)  # zero output predicts eps = 0
    assert after < 0.5 * before, (before, after)


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


@pytest.mark.slow
def test_the_loss_options_change_only_what_they_say():
    """The [ours] options off reproduce the official loss exactly; each one on changes it."""
    config = helpers.tiny_config()
    model = factory.build_unet(config)
    params = helpers.random_params(config)
    batch = helpers.random_batch(config, 2, seed=3)
    key = jax.random.key(4)
    loss = jax.jit(
        lambda p, m, d=0.0, mt="eps": diffusion_loss(
            params,
            model,
            S,
            batch,
            key,
            LossOptions(parametrization=p, motion_noise=m, motion_dropout=d, mse_target=mt),
            train=False,
        )[0],
        static_argnums=(0, 1, 2, 3),
    )
    base = jax.jit(lambda: diffusion_loss(params, model, S, batch, key, LossOptions(), train=False)[0])()
    assert float(loss("eps", 0.0)) == float(base)
    assert abs(float(loss("eps", 0.5)) - float(base)) > 1e-4
    assert abs(float(loss("v", 0.0)) - float(base)) > 1e-4
    assert abs(float(loss("eps", 0.0, 1.0)) - float(base)) > 1e-4
    assert abs(float(loss("v", 0.0, 0.0, "v")) - float(loss("v", 0.0))) > 1e-4


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
    _, shifted = diffusion_loss(None, oracle, S, batch, key, LossOptions(identity_relative=True, **kw))
    _, unshifted = diffusion_loss(None, oracle, S, batch, key, LossOptions(**kw))
    assert float(shifted["simple"]) < 1e-8 and float(shifted["lip"]) < 1e-8
    assert float(unshifted["simple"]) > 1e-3
