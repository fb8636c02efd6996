"""The training loop: mesh, sharded init or restore, jitted step, logs, samples, checkpoints.

All ``jax.jit`` calls of training are made here, with their shardings and donation
visible. Every process runs this function; only process 0 writes logs and images.
"""

from __future__ import annotations

import json
import os
import signal

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from dheads_jax import input_pipeline, parallel
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.diffusion import schedule_from_config
from dheads_jax.models import factory
from dheads_jax.progress import Progress
from dheads_jax.train import monitor, optimizer
from dheads_jax.train.exporting import write_final_export
from dheads_jax.train.state import TrainState, init_state, restore_checkpoint, save_checkpoint
from dheads_jax.train.step import make_train_step

MODEL_INPUTS = ("target", "identity", "motion", "audio", "mouth_box")


class TrainingError(RuntimeError):
    """An expected failure of a run (NaN loss, bad dataset); its message is one line."""


class Preemption:
    """Notices SIGTERM; on several processes asks JAX's preemption sync point instead."""

    def __init__(self):
        self.requested = False
        self.multi = jax.process_count() > 1
        if not self.multi:
            signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, signum, frame):
        del frame
        logging.warning("signal %d: saving a checkpoint at the next step boundary", signum)
        self.requested = True

    def should_stop(self, step: int) -> bool:
        if self.multi:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested


def with_shardings(abstract, shardings):
    """ShapeDtypeStructs that carry the target shardings (for sharded init and restore)."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def prepare_data(config: ml_collections.ConfigDict) -> str:
    """The dataset folder; the bundled samples are prepared by process 0 while the rest wait.

    A named dataset is used as it is (TensorFlow is imported only to prepare the samples).
    """
    if config.data.dataset_dir:
        return config.data.dataset_dir
    from dheads_jax.data import cache

    if jax.process_count() == 1:
        return cache.ensure_dataset(config)
    if jax.process_index() == 0:
        path = cache.ensure_dataset(config)
    multihost_utils.sync_global_devices("dheads_jax: dataset ready")
    return path if jax.process_index() == 0 else cache.ensure_dataset(config, prepare=False)


def config_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json())


def state_initializer(config: ml_collections.ConfigDict, model, tx):
    """``init_fn(key) -> TrainState`` for a config (jit it with out_shardings to init sharded)."""

    def init_fn(key):
        params = model.init(key, **factory.dummy_inputs(config, 1))["params"]
        return init_state(params, tx, ema=config.optim.ema_decay > 0)

    return init_fn


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint if there is one.

    Returns:
      The final state (on the mesh).

    Raises:
      TrainingError: a non-finite loss or an unusable dataset.
    """
    is_main = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    dataset_dir = prepare_data(config)
    mesh = parallel.make_mesh(config.mesh)
    jax.set_mesh(mesh)
    if is_main:
        logging.info(
            "mesh %s over %d devices, %d process(es)", dict(mesh.shape), mesh.size, jax.process_count()
        )

    model = factory.build_unet(config)
    schedule = schedule_from_config(config.diffusion)
    num_steps = config.train.num_steps
    tx = optimizer.make_optimizer(config.optim, num_steps)
    lr_fn = optimizer.lr_schedule(config.optim, num_steps)
    init_fn = state_initializer(config, model, tx)
    init_key = jax.random.key(config.seed)
    abstract = jax.eval_shape(init_fn, init_key)
    state_shardings = parallel.tree_shardings(mesh, abstract)
    ckpt = Checkpointer(
        os.path.join(workdir, "checkpoints"),
        keep=config.train.keep_checkpoints,
        keep_every=config.train.milestone_every or None,
    )
    data_position = None
    if ckpt.latest_step() is not None:
        state, _, data_position = restore_checkpoint(ckpt, with_shardings(abstract, state_shardings))
        logging.info("resumed from step %d of %s", int(state.step), ckpt.directory)
    else:
        state = jax.jit(init_fn, out_shardings=state_shardings)(init_key)

    try:
        batches = input_pipeline.make_train_iterator(config, state=data_position, dataset_dir=dataset_dir)
    except ValueError as e:
        raise TrainingError(f"{dataset_dir}: {e}") from e

    train_step = jax.jit(
        make_train_step(model, schedule, tx, lr_fn, config),
        in_shardings=(state_shardings, parallel.batch_sharding(mesh)),
        out_shardings=(state_shardings, parallel.replicated(mesh)),
        donate_argnums=(0,),
    )

    logger = monitor.MetricLogger(workdir, enabled=is_main)
    preemption = Preemption()
    samples = None
    if config.train.sample_every:
        samples = monitor.SampleWriter(workdir, config, dataset_dir, model, mesh)
    first_step = int(jax.device_get(state.step))
    last_saved = first_step if data_position is not None else None
    # Counts steps for the rate and ETA of the metric lines, which are the periodic log; its
    # own line comes only after the first step (compilation included) and at the end.
    progress = Progress(num_steps, "steps", label="training", done=first_step, every_s=float("inf"))
    record = (
        open(os.path.join(workdir, "batches.jsonl"), "a") if config.train.record_batches and is_main else None
    )

    def save(force=False):
        nonlocal last_saved
        if save_checkpoint(ckpt, state, config_json(config), batches.get_state(), force=force):
            last_saved = int(jax.device_get(state.step))

    step = first_step
    while step < num_steps:
        local = next(batches)
        if record:
            ids = dict(step=step, clip=local["clip_index"].tolist(), target=local["target_index"].tolist())
            record.write(json.dumps(ids) + "\n")
        state, metrics = train_step(state, parallel.global_batch({k: local[k] for k in MODEL_INPUTS}, mesh))
        step += 1
        progress.update()
        if step % config.train.log_every == 0 or step == num_steps:
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            if not all(np.isfinite(v) for v in metrics.values()):
                ckpt.wait()
                where = f"step {last_saved} in {ckpt.directory}" if last_saved is not None else "none"
                raise TrainingError(
                    f"non-finite loss at step {step} ({metrics}); last good checkpoint: {where}"
                )
            logger.log(step, metrics, progress, config.train.batch_size)
        if samples and (step % config.train.sample_every == 0 or step == num_steps):
            samples.write(step, state)
        if step % config.train.checkpoint_every == 0:
            save()
        if preemption.should_stop(step):
            save(force=True)
            ckpt.wait()
            logging.warning("preempted: saved step %d; rerun the same command to continue", step)
            break
    else:
        if last_saved != step:
            save(force=True)
        write_final_export(workdir, state, config)
    ckpt.wait()
    batches.close()
    if record:
        record.close()
    logger.close()
    return state
