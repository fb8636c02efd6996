"""Train state: EMA closed form, a checkpoint restored on another device count."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dheads_jax import parallel
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.train import state as state_lib
from tests import helpers


@pytest.fixture(scope="module")
def ema_config():
    return helpers.ema_config()


def test_ema_matches_its_closed_form():
    decay, e0 = 0.9, np.float64(3.0)
    ema = {"w": jnp.asarray(e0, jnp.float32)}
    for k in range(1, 31):
        ema = state_lib.ema_update(ema, {"w": jnp.asarray(float(k), jnp.float32)}, decay)
    n = 30
    closed = decay**n * e0 + (1 - decay) * sum(decay ** (n - k) * k for k in range(1, n + 1))
    assert float(ema["w"]) == pytest.approx(closed, rel=1e-5)


def test_checkpoint_saved_on_8_devices_restores_on_2(ema_config, tmp_path):
    mesh8 = parallel.make_mesh(dict(data=4, fsdp=2))
    st, _, _ = helpers.train_setup(ema_config, mesh8)
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
