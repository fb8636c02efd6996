"""The train step: sharded equals single device, EMA from the new parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dheads_jax import imaging, parallel
from dheads_jax.diffusion import build_schedule
from dheads_jax.models import factory
from dheads_jax.train.objective import LossOptions, diffusion_loss
from dheads_jax.train.step import step_key_and_batch
from tests import helpers


def run_steps(config, mesh, n=2):
    """The state before and after ``n`` train steps on ``mesh``, with each step's metrics."""
    st, step, _ = helpers.train_setup(config, mesh)
    start = jax.device_get(st)
    metrics = []
    for i in range(n):
        batch = parallel.global_batch(helpers.random_batch(config, 8, seed=i), mesh)
        st, m = step(st, batch)
        metrics.append(jax.device_get(m))
    return start, jax.device_get(st), metrics


@pytest.fixture(scope="module")
def ema_config():
    return helpers.ema_config()


def loss_grads(config, mesh, params):
    """Loss, metrics and gradients at ``params`` for batch 0 with the first step's key, on ``mesh``."""
    model = factory.build_unet(config)
    schedule = build_schedule("cosine", 1000)
    shardings = parallel.tree_shardings(mesh, params, min_size=256)

    def fn(p, batch, key):
        options = LossOptions(lambda_vlb=config.diffusion.lambda_vlb, lambda_ls=config.diffusion.lambda_ls)
        return jax.value_and_grad(diffusion_loss, has_aux=True)(p, model, schedule, batch, key, options)

    grad_fn = jax.jit(
        fn,
        in_shardings=(shardings, parallel.batch_sharding(mesh), parallel.replicated(mesh)),
        out_shardings=((parallel.replicated(mesh), parallel.replicated(mesh)), shardings),
    )
    key = jax.random.fold_in(jax.random.key(config.seed), 0)
    batch = parallel.global_batch(helpers.random_batch(config, 8, seed=0), mesh)
    (_, metrics), grads = grad_fn(jax.device_put(params, shardings), batch, key)
    return jax.device_get(metrics), jax.device_get(grads)


def assert_close_to_scale(a_tree, b_tree, rel):
    """Every leaf of b within ``rel`` times the leaf's largest magnitude of a (exact where a is 0).

    Float32 sums in another order (per-device partial sums, then an all-reduce) differ by a
    few ulps of the sum's magnitude, not of each element, so the tolerance is set by the
    scale of the whole tensor.
    """

    def check(path, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if not np.issubdtype(a.dtype, np.floating):
            np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
            return
        scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
        np.testing.assert_array_less(np.abs(a - b), rel * scale + 1e-30, err_msg=jax.tree_util.keystr(path))

    jax.tree_util.tree_map_with_path(check, a_tree, b_tree)


def rms_difference(a_tree, b_tree) -> float:
    """RMS over all elements of all leaves of a - b."""
    diffs = [
        np.ravel(np.asarray(a) - b)
        for a, b in zip(jax.tree.leaves(a_tree), jax.tree.leaves(b_tree), strict=True)
    ]
    return float(np.sqrt(np.mean(np.concatenate(diffs) ** 2)))


@pytest.mark.slow
def test_sharded_step_equals_single_device(ema_config):
    """Sharding changes only the order of float32 sums: what it must preserve, at matching tolerances."""
    assert len(jax.devices()) == 8
    mesh1 = parallel.make_mesh(devices=jax.devices()[:1])
    # The batch split over all 8 devices, large tensors also sharded over fsdp.
    mesh8 = parallel.make_mesh(dict(data=2, fsdp=4))

    # Loss, metrics and gradients of one batch at parameters where every layer has a gradient
    # (at init the zero output layers stop it). Reduction order moves the gradients by about
    # 2e-6 of their tensor's scale (measured over four seeds); a missing or partial
    # all-reduce, a mis-split batch or a mis-gathered parameter by O(1) of it.
    params = helpers.perturbed(helpers.init_params(factory.build_unet(ema_config), ema_config))
    g_metrics1, grads1 = loss_grads(ema_config, mesh1, params)
    g_metrics8, grads8 = loss_grads(ema_config, mesh8, params)
    for k in g_metrics1:
        assert float(g_metrics8[k]) == pytest.approx(float(g_metrics1[k]), rel=1e-5, abs=1e-7), k
    assert_close_to_scale(grads1, grads8, rel=1e-4)

    # Two optimizer steps on each mesh.
    start, one, m1 = run_steps(ema_config, mesh1)
    start8, eight, m8 = run_steps(ema_config, mesh8)
    assert int(one.step) == int(eight.step) == 2
    for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(start8), strict=True):
        np.testing.assert_array_equal(a, b)
    for step_m1, step_m8 in zip(m1, m8, strict=True):
        for k in step_m1:
            assert float(step_m8[k]) == pytest.approx(float(step_m1[k]), rel=1e-5, abs=1e-7), k
    # Adam's moments are sums of gradients and their squares: no amplification, the gradients'
    # tolerance (measured 3e-6 at most).
    assert_close_to_scale(one.opt_state, eight.opt_state, rel=1e-4)
    # The parameters are not: Adam divides each gradient by its own RMS, so an element whose
    # gradient is 1e-3 of its tensor's scale turns ~1e-6 of reduction noise into a 1e-3 * lr
    # difference, and one whose gradient is at the noise level can flip its step's sign (up
    # to 2 lr per step). The share of gradients below x times the scale is about x, so the
    # largest difference is heavy-tailed (measured 4e-4 to 1.5e-3 lr over four seeds) and no
    # fixed elementwise tolerance short of 2 lr per step is safe. Their RMS over all ~250k
    # parameters is robust: measured 2e-6 to 4e-6 lr, and six elements flipped by 2 lr would
    # still keep it under 1e-2 lr. Sharding errors move every update by O(lr): one data
    # shard's gradient in place of the batch's gives an RMS of 0.3 lr (its gradients differ
    # by 0.9 of their scale).
    lr = ema_config.optim.lr
    assert rms_difference(one.params, eight.params) < 1e-2 * lr
    assert rms_difference(one.ema_params, eight.ema_params) < 1e-2 * lr
    # And no element beyond Adam's bound (|update| <= about lr per step, so 2 lr per step apart).
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(eight.params), strict=True):
        np.testing.assert_array_less(np.abs(a - b), 4.1 * lr)


def test_train_step_updates_ema_from_the_new_params(ema_config):
    mesh = parallel.make_mesh(devices=jax.devices()[:1])
    st, step, _ = helpers.train_setup(ema_config, mesh)
    before = jax.device_get(st)
    after, _ = step(st, parallel.global_batch(helpers.random_batch(ema_config, 8), mesh))
    after = jax.device_get(after)
    for e0, e1, p1 in zip(
        jax.tree.leaves(before.ema_params),
        jax.tree.leaves(after.ema_params),
        jax.tree.leaves(after.params),
        strict=True,
    ):
        np.testing.assert_allclose(e1, 0.5 * e0 + 0.5 * p1, rtol=1e-6, atol=1e-7)


def test_the_step_batch_blanks_the_identity_mask_and_nothing_else():
    """[ours] diffusion.identity_mask: training and distillation see the identity frames with
    the box flattened to its mean colour (after the appearance augmentations); the key and
    every other entry are the same as without it."""
    config = helpers.ema_config()
    assert not (config.train.augment_flip or config.train.augment_color or config.train.augment_zoom)
    batch = helpers.random_batch(config, 4, seed=0)
    key, plain = step_key_and_batch(jax.random.key(0), 3, batch, config)
    config.diffusion.identity_mask = (0.5, 1.0, 0.25, 0.75)
    masked_key, masked = step_key_and_batch(jax.random.key(0), 3, batch, config)
    np.testing.assert_array_equal(jax.random.key_data(masked_key), jax.random.key_data(key))
    np.testing.assert_array_equal(
        masked["identity"], imaging.flatten_box(plain["identity"], (0.5, 1.0, 0.25, 0.75))
    )
    half = config.data.image_size // 2
    assert (
        np.abs(np.asarray(masked["identity"] - plain["identity"])[:, half:, half // 2 : 3 * half // 2]).max()
        > 0
    )
    for name in set(batch) - {"identity"}:
        np.testing.assert_array_equal(masked[name], plain[name])
    # train.identity_mask_from_step: the photo as it is before that step, blanked from it on.
    for step in (2, 3, 4):
        _, late = step_key_and_batch(jax.random.key(0), jnp.asarray(step), batch, config, mask_from=3)
        expected = masked["identity"] if step >= 3 else plain["identity"]
        np.testing.assert_array_equal(late["identity"], expected)
