"""run_train.py end to end: loss goes down, exact resume after SIGTERM, two real processes."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from dheads_jax import export, parallel
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.models import factory
from dheads_jax.train import loop, monitor, optimizer, runner
from dheads_jax.train import state as state_lib
from tests import helpers

# Real training runs in subprocesses (resume after SIGTERM, two processes): end to end.
pytestmark = pytest.mark.slow

STEPS = 30
OVERRIDES = [
    f"--config.train.num_steps={STEPS}",
    "--config.train.log_every=1",
    "--config.train.checkpoint_every=1000",
    "--config.train.record_batches=True",
    "--config.optim.lr=2e-3",
    "--config.optim.num_decays=0",
]


def train_args(workdir, *extra):
    return ["--config=configs/test.py", f"--workdir={workdir}", *OVERRIDES, *extra]


def final_params(workdir, devices):
    """(state, config dict, data position) of the latest checkpoint, restored on ``devices`` devices."""
    config = helpers.tiny_config()
    mesh = parallel.make_mesh(devices=jax.devices()[:devices])
    tx = optimizer.make_optimizer(config.optim, config.train.num_steps)
    init_fn = loop.state_initializer(config, factory.build_unet(config), tx)
    abstract = jax.eval_shape(init_fn, jax.random.key(config.seed))
    abstract = runner.with_shardings(abstract, parallel.tree_shardings(mesh, abstract))
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    state, config_dict, position = state_lib.restore_checkpoint(ckpt, abstract)
    return jax.device_get(state), config_dict, position


def batches(workdir):
    with open(os.path.join(workdir, "batches.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    helpers.prepared_samples(helpers.tiny_config())
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    proc = helpers.run_command("run_train.py", *train_args(workdir), env=helpers.command_env(devices=2))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def test_loss_goes_down_on_the_grid_clips(reference_run):
    cols = monitor.read_metrics(os.path.join(reference_run, "metrics.csv"))
    assert list(cols["step"]) == list(range(1, STEPS + 1))
    first, last = cols["simple"][:5].mean(), cols["simple"][-5:].mean()
    assert first > 0.8 and last < 0.6 * first, (first, last)
    assert os.path.exists(os.path.join(reference_run, "loss_curve.png"))
    assert any(f.startswith("events") for f in os.listdir(os.path.join(reference_run, "tensorboard")))


def test_sigterm_and_restart_resume_exactly(reference_run, tmp_path):
    workdir = str(tmp_path / "interrupted")
    proc = subprocess.Popen(
        [sys.executable, "run_train.py", *train_args(workdir)],
        cwd=helpers.ROOT,
        env=helpers.command_env(devices=2),
        stderr=subprocess.PIPE,
        text=True,
    )
    csv_path = os.path.join(workdir, "metrics.csv")
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(csv_path) and len(monitor.read_metrics(csv_path).get("step", [])) >= 3:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    stopped_at = Checkpointer(os.path.join(workdir, "checkpoints")).latest_step()
    assert 3 <= stopped_at < STEPS, "the run was not interrupted"
    assert "preempted: saved step" in err

    proc = helpers.run_command("run_train.py", *train_args(workdir), env=helpers.command_env(devices=2))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from step {stopped_at}" in proc.stderr

    assert batches(workdir) == batches(reference_run)  # same data order, no step repeated
    a, _, pos_a = final_params(reference_run, 2)
    b, _, pos_b = final_params(workdir, 2)
    assert pos_a == pos_b and int(a.step) == int(b.step) == STEPS
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


# What an accelerator image may lack: training from exported arrays must not need any of it.
NOT_ON_AN_ACCELERATOR_IMAGE = (
    "tensorflow tensorflow_datasets av dlib librosa cv2 face_recognition_models soundfile torch "
    "PIL matplotlib tensorboardX"
).split()


def test_training_from_arrays_needs_no_tensorflow_and_equals_the_tfrecord_run(reference_run, tmp_path):
    from dheads_jax.data import arrays

    dataset = arrays.export_arrays(helpers.prepared_samples(helpers.tiny_config()), str(tmp_path / "arrays"))
    workdir = str(tmp_path / "from_arrays")
    code = (
        "import runpy, sys\n"
        f"for name in {NOT_ON_AN_ACCELERATOR_IMAGE!r}:\n"
        "    sys.modules[name] = None  # as if not installed\n"
        "sys.argv = ['run_train.py', *sys.argv[1:]]\n"
        "runpy.run_path('run_train.py', run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *train_args(workdir, f"--config.data.dataset_dir={dataset}")],
        cwd=helpers.ROOT,
        env=helpers.command_env(devices=2),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tensorboardX is not installed" in proc.stderr
    assert batches(workdir) == batches(reference_run)
    a, _, pos_a = final_params(reference_run, 2)
    b, _, pos_b = final_params(workdir, 2)
    assert pos_a == pos_b and int(b.step) == STEPS
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert os.path.exists(os.path.join(workdir, "export", "export.json"))


def test_two_processes_train_and_one_process_restores(tmp_path):
    helpers.prepared_samples(helpers.tiny_config())
    workdir = str(tmp_path / "multi")
    codes, _, errs = helpers.run_two_processes(
        "run_train.py",
        *train_args(
            workdir,
            "--config.train.num_steps=4",
            "--config.train.record_batches=False",
            "--config.train.sample_every=4",
        ),
        env=helpers.command_env(devices=2),
        output=workdir,
    )
    for code, err in zip(codes, errs, strict=True):
        assert code == 0, err[-3000:]
    assert "4 devices, 2 process(es)" in errs[0]
    # The sample strip is made by both processes together and written once: real frames above
    # sampled ones, 3 frames of 32 px.
    strip = np.asarray(Image.open(os.path.join(workdir, "samples", "step_0000004.png")))
    assert strip.shape == (64, 96, 3) and strip[32:].std() > 1
    state, config_dict, position = final_params(workdir, 8)
    assert int(state.step) == 4 and position["process_count"] == 2 and position["batches"] == 4
    assert config_dict["train"]["num_steps"] == 4
    kernel = state.params["out_2"]["kernel"]
    assert np.all(np.isfinite(kernel)) and np.abs(kernel).sum() > 0  # moved from its zero init
    # The export written collectively at the end holds the same (raw) parameters.
    _, exported, meta = export.load_export(os.path.join(workdir, "export"))
    assert meta["weights"] == "raw" and meta["provenance"]["step"] == 4
    np.testing.assert_array_equal(exported["out_2"]["kernel"], kernel)
