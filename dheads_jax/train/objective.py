"""The training objective: noise a batch, run the U-Net, sum the three loss terms."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dheads_jax.diffusion import Schedule, q_sample, training_losses


def diffusion_loss(
    params,
    model: nn.Module,
    schedule: Schedule,
    batch: dict[str, jax.Array],
    rng: jax.Array,
    *,
    lambda_vlb: float,
    lambda_ls: float,
    train: bool = True,
):
    """Mean loss over a batch and its terms.

    Args:
      params: the U-Net parameters.
      model: the U-Net module.
      schedule: the full training schedule (T steps).
      batch: 'target' [B,H,W,3], 'identity' [B,H,W,3], 'motion' [B,M,H,W,mc],
        'audio' [B,2m_y+1,D] float32, 'mouth_box' [B,4] int32.
      rng: key for the timesteps, the noise and dropout.
      lambda_vlb, lambda_ls: loss weights (SPEC section 3).
      train: dropout on.

    Returns:
      (loss, metrics) with scalar loss and the batch means of loss, simple, vlb, lip.
    """
    x_start = batch["target"]
    t_key, noise_key, dropout_key = jax.random.split(rng, 3)
    t = jax.random.randint(t_key, (x_start.shape[0],), 0, schedule.num_steps)
    noise = jax.random.normal(noise_key, x_start.shape, jnp.float32)
    x_t = q_sample(schedule, x_start, t, noise)
    out = model.apply(
        {"params": params},
        x_t,
        jnp.take(schedule.timesteps, t),
        batch["identity"],
        batch["motion"],
        batch["audio"],
        train=train,
        rngs={"dropout": dropout_key},
    )
    terms = training_losses(schedule, out, x_start, x_t, t, noise, batch["mouth_box"], lambda_vlb, lambda_ls)
    metrics = {k: v.mean() for k, v in terms.items()}
    return metrics["loss"], metrics
