"""Optimizer schedule, EMA, sharded train step and checkpoint restore across meshes."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dheads_jax import export, parallel
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.diffusion import build_schedule
from dheads_jax.models import factory
from dheads_jax.train import exporting, optimizer
from dheads_jax.train import state as state_lib
from dheads_jax.train.objective import diffusion_loss
from dheads_jax.train.step import make_train_step
from tests import helpers


def test_lr_schedule_makes_18_decays_of_0_8():
    config = helpers.tiny_config()
    fn = optimizer.lr_schedule(config.optim, num_steps=1800)
    lrs = np.asarray(jax.vmap(fn)(jnp.arange(1801)))
    values = sorted(set(lrs.tolist()), reverse=True)
    assert len(values) == 19
    np.testing.assert_allclose(np.array(values[1:]) / np.array(values[:-1]), 0.8, rtol=1e-5)
    assert lrs[0] == pytest.approx(5e-5) and lrs[99] == pytest.approx(5e-5)
    assert lrs[100] == pytest.approx(4e-5) and lrs[-1] == pytest.approx(5e-5 * 0.8**18, rel=1e-5)


def test_warmup_ramps_linearly():
    config = helpers.tiny_config()
    config.optim.warmup_steps = 10
    fn = optimizer.lr_schedule(config.optim, num_steps=1000)
    np.testing.assert_allclose([fn(0), fn(4), fn(9), fn(20)], [5e-6, 2.5e-5, 5e-5, 5e-5], rtol=1e-5)


def test_ema_matches_its_closed_form():
    decay, e0 = 0.9, np.float64(3.0)
    ema = {"w": jnp.asarray(e0, jnp.float32)}
    for k in range(1, 31):
        ema = state_lib.ema_update(ema, {"w": jnp.asarray(float(k), jnp.float32)}, decay)
    n = 30
    closed = decay**n * e0 + (1 - decay) * sum(decay ** (n - k) * k for k in range(1, n + 1))
    assert float(ema["w"]) == pytest.approx(closed, rel=1e-5)


def make_setup(config, mesh):
    model = factory.build_unet(config)
    schedule = build_schedule("cosine", 1000)
    tx = optimizer.make_optimizer(config.optim, config.train.num_steps)
    lr_fn = optimizer.lr_schedule(config.optim, config.train.num_steps)
    params = helpers.init_params(model, config)
    st = state_lib.init_state(params, tx, ema=config.optim.ema_decay > 0)
    shardings = parallel.tree_shardings(mesh, st, min_size=256)
    st = jax.device_put(st, shardings)
    step = jax.jit(
        make_train_step(model, schedule, tx, lr_fn, config),
        in_shardings=(shardings, parallel.batch_sharding(mesh)),
        out_shardings=(shardings, parallel.replicated(mesh)),
    )
    return st, step, shardings


def run_steps(config, mesh, n=2):
    """The state before and after ``n`` train steps on ``mesh``, with each step's metrics."""
    st, step, _ = make_setup(config, mesh)
    start = jax.device_get(st)
    metrics = []
    for i in range(n):
        batch = parallel.global_batch(helpers.random_batch(config, 8, seed=i), mesh)
        st, m = step(st, batch)
        metrics.append(jax.device_get(m))
    return start, jax.device_get(st), metrics


@pytest.fixture(scope="module")
def ema_config():
    config = helpers.tiny_config()
    config.optim.lr = 1e-3
    config.optim.ema_decay = 0.5
    return config


def loss_grads(config, mesh, params):
    """Loss, metrics and gradients at ``params`` for batch 0 with the first step's key, on ``mesh``."""
    model = factory.build_unet(config)
    schedule = build_schedule("cosine", 1000)
    shardings = parallel.tree_shardings(mesh, params, min_size=256)

    def fn(p, batch, key):
        return jax.value_and_grad(diffusion_loss, has_aux=True)(
            p,
            model,
            schedule,
            batch,
            key,
            lambda_vlb=config.diffusion.lambda_vlb,
            lambda_ls=config.diffusion.lambda_ls,
        )

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
    st, step, _ = make_setup(ema_config, mesh)
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


def test_checkpoint_saved_on_8_devices_restores_on_2(ema_config, tmp_path):
    mesh8 = parallel.make_mesh(dict(data=4, fsdp=2))
    st, _, _ = make_setup(ema_config, mesh8)
    st = st.replace(step=jnp.asarray(7, jnp.int32))
    ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    state_lib.save_checkpoint(ckpt, st, config=ema_config.to_dict(), data_position={"epoch": 1, "batch": 3})
    ckpt.wait()
    # The layout earlier checkpoints have, one folder per item, so they still restore.
    items = {"params", "ema_params", "opt_state", "config", "data"}
    assert items <= set(os.listdir(tmp_path / "ckpt" / "7"))

    mesh2 = parallel.make_mesh(devices=jax.devices()[:2])
    abstract = jax.eval_shape(lambda: st)
    shard2 = parallel.tree_shardings(mesh2, abstract, min_size=256)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shard2)
    restored, config_dict, position = state_lib.restore_checkpoint(
        Checkpointer(str(tmp_path / "ckpt")), abstract
    )
    assert int(restored.step) == 7 and position == {"epoch": 1, "batch": 3}
    assert config_dict["model"]["model_channels"] == ema_config.model.model_channels
    kernel = restored.params["input_blocks_0_0"]["kernel"]
    assert kernel.sharding.mesh.devices.size == 2
    for a, b in zip(
        jax.tree.leaves(jax.device_get(st)), jax.tree.leaves(jax.device_get(restored)), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_checkpointer_keeps_named_pytrees_and_json_items(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    tree = {"w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3), "n": {"count": jnp.ones((2,), jnp.int32)}}
    for step in (1, 2, 3):
        assert ckpt.save(step, {"a": jax.tree.map(lambda x, s=step: x * s, tree)}, {"meta": {"step": step}})
    ckpt.wait()
    assert ckpt.all_steps() == [2, 3] and ckpt.latest_step() == 3
    abstract = jax.eval_shape(lambda: tree)
    arrays, json_items = ckpt.restore(2, {"a": abstract}, ("meta",))
    assert json_items == {"meta": {"step": 2}}
    np.testing.assert_array_equal(arrays["a"]["w"], 2 * tree["w"])
    np.testing.assert_array_equal(arrays["a"]["n"]["count"], [2, 2])
    np.testing.assert_array_equal(ckpt.restore_item("a", abstract)["w"], 3 * tree["w"])
    assert ckpt.restore_json("meta") == {"step": 3}
    assert ckpt.has_item("a", 2) and ckpt.has_item("meta") and not ckpt.has_item("b", 2)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Checkpointer(str(tmp_path / "empty")).restore_json("meta")


def test_export_from_workdir_writes_the_chosen_weights_of_a_step(ema_config, tmp_path):
    mesh = parallel.make_mesh(devices=jax.devices()[:1])
    st, _, _ = make_setup(ema_config, mesh)
    st = st.replace(step=jnp.asarray(5, jnp.int32), params=helpers.perturbed(st.params))
    config = json.loads(ema_config.to_json())
    ckpt = Checkpointer(str(tmp_path / "ema" / "checkpoints"))
    state_lib.save_checkpoint(ckpt, st, config, {})
    ckpt.wait()
    for weights, expected in (("auto", st.ema_params), ("ema", st.ema_params), ("raw", st.params)):
        out = exporting.export_from_workdir(str(tmp_path / "ema"), str(tmp_path / f"out_{weights}"), weights)
        _, params, meta = export.load_export(out)
        assert (
            meta["weights"] == ("ema" if weights == "auto" else weights) and meta["provenance"]["step"] == 5
        )
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(jax.device_get(expected)), strict=True):
            np.testing.assert_array_equal(a, b)

    ckpt = Checkpointer(str(tmp_path / "raw" / "checkpoints"))
    state_lib.save_checkpoint(ckpt, st.replace(ema_params=None), config, {})
    ckpt.wait()
    _, _, meta = export.load_export(exporting.export_from_workdir(str(tmp_path / "raw"), str(tmp_path / "r")))
    assert meta["weights"] == "raw"
    with pytest.raises(export.ExportError, match="no EMA parameters"):
        exporting.export_from_workdir(str(tmp_path / "raw"), str(tmp_path / "e"), "ema", step=5)
    with pytest.raises(export.ExportError, match="no checkpoint"):
        exporting.export_from_workdir(str(tmp_path / "none"), str(tmp_path / "n"))
