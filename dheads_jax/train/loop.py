"""Training: the task the shared runner (``train/runner.py``) runs for ``run_train.py``.

The jitted step is made here, where its shardings and donation are visible: the state
sharded by ``parallel.tree_shardings``, the batch over the mesh's data axis, the state donated.
"""

from __future__ import annotations

import os

import jax
import ml_collections

from dheads_jax import parallel
from dheads_jax.diffusion import schedule_from_config
from dheads_jax.models import factory
from dheads_jax.train import monitor, optimizer, runner
from dheads_jax.train.exporting import write_final_export
from dheads_jax.train.state import TrainState, checkpoint_items, init_state, restore_checkpoint
from dheads_jax.train.step import make_train_step


def state_initializer(config: ml_collections.ConfigDict, model, tx):
    """``init_fn(key) -> TrainState`` for a config (jit it with out_shardings to init sharded)."""

    def init_fn(key):
        params = model.init(key, **factory.dummy_inputs(config, 1))["params"]
        return init_state(params, tx, ema=config.optim.ema_decay > 0)

    return init_fn


def training_task(config: ml_collections.ConfigDict, workdir: str, mesh, dataset_dir: str) -> runner.Task:
    """The training task of ``config`` on ``mesh``: init, restore, the jitted step, sample strips."""
    model = factory.build_unet(config)
    num_steps = config.train.num_steps
    tx = optimizer.make_optimizer(config.optim, num_steps)
    lr_fn = optimizer.lr_schedule(config.optim, num_steps)
    init_fn = state_initializer(config, model, tx)
    key = jax.random.key(config.seed)
    abstract = jax.eval_shape(init_fn, key)
    shardings = parallel.tree_shardings(mesh, abstract)
    train_step = jax.jit(
        make_train_step(model, schedule_from_config(config.diffusion), tx, lr_fn, config),
        in_shardings=(shardings, parallel.batch_sharding(mesh)),
        out_shardings=(shardings, parallel.replicated(mesh)),
        donate_argnums=(0,),
    )
    samples = None
    if config.train.sample_every:
        samples = monitor.SampleWriter(workdir, config, dataset_dir, model, mesh)

    def restore(ckpt, targets):
        state, _, data_position = restore_checkpoint(ckpt, targets)
        return state, data_position

    def after_step(step: int, state: TrainState) -> None:
        if samples and (step % config.train.sample_every == 0 or step == num_steps):
            samples.write(step, state)

    def describe(index: int, m: dict) -> str:
        return (
            f"loss {m['loss']:.4f} simple {m['simple']:.4f} vlb {m['vlb']:.4f} lip {m['lip']:.4f} | "
            f"grad {m['grad_norm']:.3f} lr {m['lr']:.2e}"
        )

    return runner.Task(
        label="training",
        total_steps=num_steps,
        abstract=abstract,
        init=lambda s: jax.jit(init_fn, out_shardings=s)(key),
        restore=restore,
        items=lambda state: (checkpoint_items(state), {}),
        step=lambda state, batch, index: train_step(state, batch),
        describe=describe,
        export=lambda state: write_final_export(workdir, state, config),
        after_step=after_step,
    )


def train(config: ml_collections.ConfigDict, workdir: str, devices=None, on_step=None) -> TrainState:
    """Trains ``config`` in ``workdir`` (checkpoints, logs, sample strips, export/), resuming
    from its latest checkpoint if there is one; returns the final state. ``devices``,
    ``on_step`` and the errors raised: as ``runner.run``."""
    os.makedirs(workdir, exist_ok=True)
    return runner.run(
        config, workdir, lambda mesh, data: training_task(config, workdir, mesh, data), devices, on_step
    )
