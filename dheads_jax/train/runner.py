"""The loop that training and distillation share: mesh, sharded init or restore, the input
pipeline, the jitted step, logs, checkpoints, preemption and the final export.

A run is ``run(config, workdir, make_task)``: the runner owns everything both jobs repeat and
asks a small ``Task`` value for what differs (its state, its step, its checkpoint items, its
log line, its export). All ``jax.jit`` calls of a run are made by the task's ``make_task``,
which the runner calls with the mesh, so shardings and donation stay visible there. Every
process runs this; only process 0 writes logs and images.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from dheads_jax import input_pipeline, parallel
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.progress import Progress
from dheads_jax.train import monitor
from dheads_jax.train.state import CONFIG, DATA

MODEL_INPUTS = ("target", "identity", "motion", "audio", "mouth_box")


class TrainingError(RuntimeError):
    """An expected failure of a run (NaN loss, bad dataset); its message is one line."""


class Preemption:
    """Notices SIGTERM; on several processes asks JAX's preemption sync point instead."""

    def __init__(self):
        self.requested = False
        self.multi = jax.process_count() > 1
        if not self.multi:
            self.previous = signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, signum, frame):
        del frame
        logging.warning("signal %d: saving a checkpoint at the next step boundary", signum)
        self.requested = True

    def should_stop(self, step: int) -> bool:
        if self.multi:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def close(self) -> None:
        """Gives SIGTERM back to whoever had it before the run."""
        if not self.multi:
            signal.signal(signal.SIGTERM, self.previous)


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


@dataclasses.dataclass
class Task:
    """What a run does beyond the shared loop.

    Attributes:
      label: the job's name in progress lines and metric files ("training", "distillation").
      total_steps: optimizer steps of the whole run.
      abstract: the state's abstract pytree (``jax.eval_shape``); the runner shards it.
      init: ``init(shardings) -> state``, a fresh state placed with ``shardings``.
      restore: ``restore(ckpt, targets) -> (state, data position)`` from the latest checkpoint
        (``targets``: the abstract state with its shardings).
      items: ``items(state) -> (arrays, json items)`` to checkpoint (config and data position
        are added by the runner).
      step: ``step(state, batch, index) -> (state, metrics)``, the jitted step (``index``: the
        0-based step number, for tasks whose step changes along the run).
      describe: ``describe(index, metrics) -> str``, the metric part of the console line.
      export: ``export(state)`` at the end of a finished run.
      must_log: ``must_log(step)`` whether to log (and checkpoint) after ``step`` steps besides
        the config's ``log_every`` and ``checkpoint_every``.
      after_step: ``after_step(step, state)`` after every step (sample strips); None for none.
      curve_keys: the metrics plotted in loss_curve.png.
    """

    label: str
    total_steps: int
    abstract: Any
    init: Callable
    restore: Callable
    items: Callable
    step: Callable
    describe: Callable
    export: Callable
    must_log: Callable = lambda step: False
    after_step: Callable | None = None
    curve_keys: tuple[str, ...] = monitor.CURVE_KEYS


def run(config, workdir: str, make_task: Callable, devices=None, on_step: Callable | None = None):
    """Runs a task in ``workdir``, resuming from its latest checkpoint if there is one.

    Args:
      config: the run's config (data, mesh, train's logging, checkpointing and batch size).
      workdir: checkpoints/, metrics.csv, loss_curve.png, tensorboard/, export/.
      make_task: ``make_task(mesh, dataset_dir) -> Task``.
      devices: the devices of the mesh (default: all).
      on_step: ``on_step(step)`` after every step's bookkeeping (tests stop a run with it).

    Returns:
      The final state (on the mesh).

    Raises:
      TrainingError: a non-finite loss or an unusable dataset.
    """
    os.makedirs(workdir, exist_ok=True)
    dataset_dir = prepare_data(config)
    mesh = parallel.make_mesh(config.mesh, devices)
    with jax.set_mesh(mesh):
        task = make_task(mesh, dataset_dir)
        if jax.process_index() == 0:
            logging.info(
                "mesh %s over %d devices, %d process(es)", dict(mesh.shape), mesh.size, jax.process_count()
            )
        return _Run(config, workdir, task, mesh).loop(dataset_dir, on_step)


class _Run:
    """One run's bookkeeping: checkpoints, logs, the data position."""

    def __init__(self, config, workdir: str, task: Task, mesh):
        self.config, self.workdir, self.task, self.mesh = config, workdir, task, mesh
        self.is_main = jax.process_index() == 0
        self.ckpt = Checkpointer(
            os.path.join(workdir, "checkpoints"),
            keep=config.train.keep_checkpoints,
            keep_every=config.train.milestone_every or None,
        )
        self.last_saved = None

    def start(self):
        """(state, data position): restored from the latest checkpoint, or fresh."""
        shardings = parallel.tree_shardings(self.mesh, self.task.abstract)
        if self.ckpt.latest_step() is None:
            return self.task.init(shardings), None
        state, position = self.task.restore(self.ckpt, with_shardings(self.task.abstract, shardings))
        self.last_saved = int(jax.device_get(state.step))
        logging.info("resumed from step %d of %s", self.last_saved, self.ckpt.directory)
        return state, position

    def save(self, state, batches) -> None:
        step = int(jax.device_get(state.step))
        if step == self.last_saved:
            return
        arrays, json_items = self.task.items(state)
        json_items = dict(json_items, **{CONFIG: config_json(self.config), DATA: batches.get_state()})
        if self.ckpt.save(step, arrays, json_items, force=True):
            self.last_saved = step

    def check_finite(self, step: int, metrics: dict) -> None:
        if not all(np.isfinite(v) for v in metrics.values()):
            self.ckpt.wait()
            where = (
                f"step {self.last_saved} in {self.ckpt.directory}" if self.last_saved is not None else "none"
            )
            raise TrainingError(f"non-finite loss at step {step} ({metrics}); last good checkpoint: {where}")

    def loop(self, dataset_dir: str, on_step: Callable | None):
        config, task, train = self.config, self.task, self.config.train
        state, position = self.start()
        try:
            batches = input_pipeline.make_train_iterator(config, state=position, dataset_dir=dataset_dir)
        except ValueError as e:
            raise TrainingError(f"{dataset_dir}: {e}") from e
        logger = monitor.MetricLogger(self.workdir, self.is_main, task.label, task.curve_keys)
        preemption = Preemption()
        step = int(jax.device_get(state.step))
        # The metric lines are the periodic log; the progress line comes only after the first
        # step (compilation included) and at the end.
        progress = Progress(task.total_steps, "steps", label=task.label, done=step, every_s=float("inf"))
        record = monitor.BatchRecord(self.workdir, train.record_batches and self.is_main)
        try:
            while step < task.total_steps:
                local = next(batches)
                record.write(step, local)
                state, metrics = task.step(
                    state, parallel.global_batch({k: local[k] for k in MODEL_INPUTS}, self.mesh), step
                )
                step += 1
                progress.update()
                logged = task.must_log(step)
                if step % train.log_every == 0 or step == task.total_steps or logged:
                    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                    self.check_finite(step, metrics)
                    logger.log(
                        step, metrics, progress, task.describe(step - 1, metrics), config.train.batch_size
                    )
                if task.after_step:
                    task.after_step(step, state)
                if step % train.checkpoint_every == 0 or logged:
                    self.save(state, batches)
                if on_step:
                    on_step(step)
                if preemption.should_stop(step):
                    self.save(state, batches)
                    self.ckpt.wait()
                    logging.warning("preempted: saved step %d; rerun the same command to continue", step)
                    break
            else:
                self.save(state, batches)
                task.export(state)
        finally:
            self.ckpt.wait()
            preemption.close()
            batches.close()
            record.close()
            logger.close()
        return state
