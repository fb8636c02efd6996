"""Orbax checkpoints: the only module that imports orbax.

One CheckpointManager with named items: ``params``, ``ema_params`` (when EMA is on),
``opt_state``, ``config`` (JSON) and ``data`` (the input pipeline position, JSON).
Every process calls save and restore (they are collective). Restoring onto abstract
targets that carry shardings places the arrays on the current mesh, whatever the
device count was when they were saved.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from dheads_jax.train.state import TrainState

ARRAY_ITEMS = ("params", "ema_params", "opt_state")


def _placed(abstract_tree: Any) -> Any:
    """Targets without a sharding go to this process's first device.

    Orbax otherwise tries the saved sharding, which fails when the device set changed.
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(
        lambda a: (
            a
            if getattr(a, "sharding", None) is not None
            else jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device)
        ),
        abstract_tree,
    )


JSON_ITEMS = ("config", "data")


class Checkpointer:
    """Saves and restores the training state with its config and data position."""

    def __init__(self, directory: str, keep: int = 3, keep_every: int | None = None):
        """
        Args:
          directory: where step folders go (created if missing; may be a gs:// path).
          keep: the latest ``keep`` checkpoints are kept.
          keep_every: checkpoints at multiples of this step are kept as milestones.
        """
        keep_policies = [policies.LatestN(n=keep)]
        if keep_every:
            keep_policies.append(policies.EveryNSteps(interval_steps=keep_every))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policies.AnyPreservationPolicy(keep_policies),
            create=True,
            enable_async_checkpointing=True,
        )
        self.directory = os.path.abspath(directory) if "://" not in directory else directory
        self.manager = ocp.CheckpointManager(
            self.directory, item_names=ARRAY_ITEMS + JSON_ITEMS, options=options
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, state: TrainState, config: dict, data_position: dict, force: bool = False) -> bool:
        """Saves at ``state.step`` (asynchronously; ``wait`` blocks). Returns whether it saved."""
        step = int(jax.device_get(state.step))
        items = dict(
            params=ocp.args.StandardSave(state.params),
            opt_state=ocp.args.StandardSave(state.opt_state),
            config=ocp.args.JsonSave(config),
            data=ocp.args.JsonSave(data_position),
        )
        if state.ema_params is not None:
            items["ema_params"] = ocp.args.StandardSave(state.ema_params)
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(self, abstract_state: TrainState, step: int | None = None) -> tuple[TrainState, dict, dict]:
        """Restores onto ``abstract_state`` (ShapeDtypeStructs with shardings).

        Returns:
          (state, config dict, data position dict) of ``step`` (default: the latest).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        items = dict(
            params=ocp.args.StandardRestore(abstract_state.params),
            opt_state=ocp.args.StandardRestore(abstract_state.opt_state),
            config=ocp.args.JsonRestore(),
            data=ocp.args.JsonRestore(),
        )
        if abstract_state.ema_params is not None:
            items["ema_params"] = ocp.args.StandardRestore(abstract_state.ema_params)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        state = TrainState(
            step=jax.numpy.asarray(step, jax.numpy.int32),
            params=restored["params"],
            ema_params=restored["ema_params"] if abstract_state.ema_params is not None else None,
            opt_state=restored["opt_state"],
        )
        return state, restored["config"], restored["data"]

    def restore_params(self, abstract_params: Any, step: int | None = None, ema: bool = False):
        """Only the (EMA) parameters of a checkpoint, e.g. for export or sampling."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        name = "ema_params" if ema else "params"
        restored = self.manager.restore(
            step, args=ocp.args.Composite(**{name: ocp.args.StandardRestore(_placed(abstract_params))})
        )
        return restored[name]

    def restore_json(self, item: str, step: int | None = None) -> dict:
        """A JSON item ("config" or "data") of a checkpoint."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return self.manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))[item]

    def has_ema(self, step: int | None = None) -> bool:
        step = self.latest_step() if step is None else step
        return os.path.isdir(os.path.join(str(self.directory), str(step), "ema_params"))

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def save_pytree(path: str, tree: Any) -> None:
    """Writes a pytree of arrays to ``path`` (a new folder) with orbax; blocks until done.

    Orbax writes to a temporary folder and renames it, so an interrupted save leaves no
    folder that looks complete.
    """
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.abspath(path), tree)
        checkpointer.wait_until_finished()


def load_pytree(path: str, abstract_tree: Any) -> Any:
    """Reads a pytree written by ``save_pytree`` onto ``abstract_tree`` (ShapeDtypeStructs)."""
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(os.path.abspath(path), _placed(abstract_tree))
