"""Optimizer schedule, EMA, sharded train step and checkpoint restore across meshes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dheads_jax import parallel
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.diffusion import build_schedule
from dheads_jax.models import factory
from dheads_jax.train import optimizer
from dheads_jax.train import state as state_lib
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
    st, step, _ = make_setup(config, mesh)
    for i in range(n):
        batch = parallel.global_batch(helpers.random_batch(config, 8, seed=i), mesh)
        st, metrics = step(st, batch)
    return jax.device_get(st), jax.device_get(metrics)


@pytest.fixture(scope="module")
def ema_config():
    config = helpers.tiny_config()
    config.optim.lr = 1e-3
    config.optim.ema_decay = 0.5
    return config


def test_sharded_step_equals_single_device(ema_config):
    assert len(jax.devices()) == 8
    one, m1 = run_steps(ema_config, parallel.make_mesh(devices=jax.devices()[:1]))
    # The batch split over all 8 devices, large tensors also sharded over fsdp.
    eight, m8 = run_steps(ema_config, parallel.make_mesh(dict(data=2, fsdp=4)))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert m1["loss"] == pytest.approx(float(m8["loss"]), rel=1e-5)
    assert int(one.step) == 2


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
    ckpt.save(st, config=ema_config.to_dict(), data_position={"epoch": 1, "batch": 3})
    ckpt.wait()

    mesh2 = parallel.make_mesh(devices=jax.devices()[:2])
    abstract = jax.eval_shape(lambda: st)
    shard2 = parallel.tree_shardings(mesh2, abstract, min_size=256)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shard2)
    restored, config_dict, position = Checkpointer(str(tmp_path / "ckpt")).restore(abstract)
    assert int(restored.step) == 7 and position == {"epoch": 1, "batch": 3}
    assert config_dict["model"]["model_channels"] == ema_config.model.model_channels
    kernel = restored.params["input_blocks_0_0"]["kernel"]
    assert kernel.sharding.mesh.devices.size == 2
    for a, b in zip(
        jax.tree.leaves(jax.device_get(st)), jax.tree.leaves(jax.device_get(restored)), strict=True
    ):
        np.testing.assert_array_equal(a, b)
