"""The train step factory. Callers jit the returned function with their shardings."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from dheads_jax import imaging
from dheads_jax.diffusion import Schedule
from dheads_jax.train import augment
from dheads_jax.train.objective import LossOptions, diffusion_loss
from dheads_jax.train.state import TrainState, ema_update

AUGMENT_STREAM = 0x6175  # fold_in constant of the appearance augmentations' key


def step_key_and_batch(
    base_key: jax.Array, step: jax.Array, batch: dict, config: ml_collections.ConfigDict, mask_from: int = 0
):
    """A step's key, fold_in(base_key, step), and its batch with the appearance augmentations
    of ``config.train`` (off unless it asks) drawn from a key stream of their own, then the
    identity frames' ``config.diffusion.identity_mask`` box flattened to its mean colour
    when one is set, from step ``mask_from`` on (0: every step)."""
    key = jax.random.fold_in(base_key, step)
    batch = augment.from_config(jax.random.fold_in(key, AUGMENT_STREAM), batch, config.train)
    identity_mask = tuple(config.diffusion.identity_mask)
    if identity_mask:
        masked = imaging.flatten_box(batch["identity"], identity_mask, "identity_mask")
        if mask_from > 0:
            masked = jnp.where(step >= mask_from, masked, batch["identity"])
        batch = dict(batch, identity=masked)
    return key, batch


def make_train_step(
    model: nn.Module,
    schedule: Schedule,
    tx: optax.GradientTransformation,
    lr_fn: optax.Schedule,
    config: ml_collections.ConfigDict,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """Returns ``train_step(state, batch) -> (state, metrics)``.

    Randomness (timesteps, noise, dropout, motion and appearance augmentations) comes from
    ``fold_in(key(config.seed), step)``, so a resumed run draws exactly what an
    uninterrupted one would. The appearance augmentations (``augment``) draw from a key of
    their own, so turning them on leaves the loss's draws unchanged.
    """
    base_key = jax.random.key(config.seed)
    ema_decay = float(config.optim.ema_decay)
    loss_options = LossOptions.from_config(config)

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        key, batch = step_key_and_batch(
            base_key, state.step, batch, config, int(config.train.identity_mask_from_step)
        )
        grad_fn = jax.value_and_grad(diffusion_loss, has_aux=True)
        (_, metrics), grads = grad_fn(state.params, model, schedule, batch, key, loss_options)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = ema_update(state.ema_params, params, ema_decay) if ema_decay > 0 else None
        metrics = dict(metrics, grad_norm=optax.tree.norm(grads), lr=lr_fn(state.step))
        new_state = state.replace(step=state.step + 1, params=params, ema_params=ema, opt_state=opt_state)
        return new_state, metrics

    return train_step
