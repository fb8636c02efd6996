"""The training state: plain data, one pytree; and its checkpoint items."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

if TYPE_CHECKING:
    from dheads_jax.checkpointing import Checkpointer

# The checkpoint items of a training run: arrays (ema_params only when EMA is on), then the
# config and the input pipeline position as JSON.
PARAMS, EMA_PARAMS, OPT_STATE = "params", "ema_params", "opt_state"
CONFIG, DATA = "config", "data"


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes.

    Attributes:
      step: int32 scalar, the number of optimizer steps taken.
      params: U-Net parameters (float32).
      ema_params: exponential moving average of params, or None when EMA is off.
      opt_state: the optimizer's state.
    """

    step: jax.Array
    params: Any
    ema_params: Any
    opt_state: Any


def init_state(params, tx: optax.GradientTransformation, ema: bool) -> TrainState:
    """A fresh state around ``params``; the EMA starts equal to them."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema_params=jax.tree.map(jnp.copy, params) if ema else None,
        opt_state=tx.init(params),
    )


def ema_update(ema_params, params, decay: float):
    """ema <- decay * ema + (1 - decay) * params."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def checkpoint_items(state: TrainState) -> dict[str, Any]:
    """The state's array items for a checkpoint ({name: pytree}; the step is the folder)."""
    items = {PARAMS: state.params, OPT_STATE: state.opt_state}
    if state.ema_params is not None:
        items[EMA_PARAMS] = state.ema_params
    return items


def state_from_items(step: int, items: dict[str, Any]) -> TrainState:
    """The inverse of ``checkpoint_items``; without an ``ema_params`` item, EMA is off."""
    return TrainState(
        step=jnp.asarray(step, jnp.int32),
        params=items[PARAMS],
        ema_params=items.get(EMA_PARAMS),
        opt_state=items[OPT_STATE],
    )


def save_checkpoint(
    ckpt: Checkpointer, state: TrainState, config: dict, data_position: dict, force: bool = False
) -> bool:
    """Saves ``state`` at its step with the config and data position (asynchronously).

    Returns:
      Whether it saved.
    """
    step = int(jax.device_get(state.step))
    return ckpt.save(step, checkpoint_items(state), {CONFIG: config, DATA: data_position}, force=force)


def restore_checkpoint(
    ckpt: Checkpointer, abstract_state: TrainState, step: int | None = None
) -> tuple[TrainState, dict, dict]:
    """Restores a state onto ``abstract_state`` (ShapeDtypeStructs with shardings).

    Returns:
      (state, config dict, data position dict) of ``step`` (default: the latest).
    """
    step = ckpt.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
    arrays, json_items = ckpt.restore(step, checkpoint_items(abstract_state), (CONFIG, DATA))
    return state_from_items(step, arrays), json_items[CONFIG], json_items[DATA]
