"""Orbax checkpoints: the only module that imports orbax.

A ``Checkpointer`` keeps numbered steps, each a set of named items: pytrees of arrays and
JSON dicts, one folder per item (training uses ``params``, ``ema_params``, ``opt_state``,
``config`` and ``data``; see ``dheads_jax.train.state``). Every process calls save and
restore (they are collective). Restoring onto abstract targets that carry shardings places
the arrays on the current mesh, whatever the device count was when they were saved. This
module knows nothing of what the items hold.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint import checkpoint_managers as policies


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


class Checkpointer:
    """Saves and restores named pytrees of arrays and named JSON dicts at numbered steps."""

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
        # No fixed item names: each save and restore names its items, so the handlers come
        # from the arguments (StandardSave/Restore for arrays, JsonSave/Restore for dicts).
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def _step(self, step: int | None) -> int:
        """``step``, or the latest when None; FileNotFoundError when there is none."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return step

    def save(
        self,
        step: int,
        arrays: Mapping[str, Any],
        json_items: Mapping[str, dict] | None = None,
        force: bool = False,
    ) -> bool:
        """Saves the items at ``step`` (asynchronously; ``wait`` blocks).

        Args:
          step: the step number (the folder name).
          arrays: {item name: pytree of arrays}.
          json_items: {item name: JSON-serialisable dict}.
          force: save even where the manager's save interval would skip the step.

        Returns:
          Whether it saved.
        """
        items = {name: ocp.args.StandardSave(tree) for name, tree in arrays.items()}
        items.update({name: ocp.args.JsonSave(value) for name, value in (json_items or {}).items()})
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(
        self, step: int | None, arrays: Mapping[str, Any], json_names: Sequence[str] = ()
    ) -> tuple[dict[str, Any], dict[str, dict]]:
        """Restores some items of a checkpoint.

        Args:
          step: the step; None for the latest.
          arrays: {item name: abstract pytree (ShapeDtypeStructs; those without a sharding
            go to this process's first device)}.
          json_names: the JSON items to read.

        Returns:
          ({item name: pytree of arrays}, {item name: dict}).
        """
        step = self._step(step)
        items = {name: ocp.args.StandardRestore(_placed(tree)) for name, tree in arrays.items()}
        items.update({name: ocp.args.JsonRestore() for name in json_names})
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        return {name: restored[name] for name in arrays}, {name: restored[name] for name in json_names}

    def restore_item(self, name: str, abstract: Any, step: int | None = None) -> Any:
        """One pytree item of a checkpoint (default: the latest) restored onto ``abstract``."""
        return self.restore(step, {name: abstract})[0][name]

    def restore_json(self, name: str, step: int | None = None) -> dict:
        """One JSON item of a checkpoint (default: the latest)."""
        return self.restore(step, {}, (name,))[1][name]

    def has_item(self, name: str, step: int | None = None) -> bool:
        """Whether a checkpoint (default: the latest) holds the item ``name``."""
        return (epath.Path(self.directory) / str(self._step(step)) / name).is_dir()

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
