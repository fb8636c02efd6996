"""Exporting a training checkpoint: the chosen weights of a step, and run_export.py."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dheads_jax import export, parallel
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.train import exporting
from dheads_jax.train import state as state_lib
from tests import helpers


@pytest.fixture(scope="module")
def ema_config():
    return helpers.ema_config()


def test_export_from_workdir_writes_the_chosen_weights_of_a_step(ema_config, tmp_path):
    mesh = parallel.make_mesh(devices=jax.devices()[:1])
    st, _, _ = helpers.train_setup(ema_config, mesh)
    st = st.replace(step=jnp.asarray(5, jnp.int32), params=helpers.random_params(ema_config))
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


@pytest.mark.slow
def test_run_export_and_run_sample_old_flags_write_the_same_export(ema_config, tmp_path):
    mesh = parallel.make_mesh(devices=jax.devices()[:1])
    st, _, _ = helpers.train_setup(ema_config, mesh)
    st = st.replace(step=jnp.asarray(3, jnp.int32), params=helpers.random_params(ema_config))
    ckpt = Checkpointer(str(tmp_path / "work" / "checkpoints"))
    state_lib.save_checkpoint(ckpt, st.replace(ema_params=None), json.loads(ema_config.to_json()), {})
    ckpt.wait()
    work, new, old = (str(tmp_path / name) for name in ("work", "new", "old"))
    proc = helpers.run_command("run_export.py", f"--workdir={work}", f"--export={new}", "--dtype=bfloat16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [f"exported {work} to {new}"]
    proc = helpers.run_command(
        "run_sample.py", f"--export_from={work}", f"--export_to={old}", "--export_dtype=bfloat16"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [f"exported {work} to {old}"]
    (_, a, meta_a), (_, b, meta_b) = export.load_export(new), export.load_export(old)
    assert (meta_a["weights"], meta_a["dtype"]) == (meta_b["weights"], meta_b["dtype"]) == ("raw", "bfloat16")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)

    proc = helpers.run_command(
        "run_export.py", f"--export_from={work}", f"--export_to={new}", "--weights=ema"
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("run_export.py:")]
    assert lines == [f"run_export.py: {work}: checkpoint 3 has no EMA parameters (ema_decay was 0)"]
