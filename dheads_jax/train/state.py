"""The training state: plain data, one pytree."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


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
