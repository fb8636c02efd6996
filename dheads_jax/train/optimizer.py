"""Adam with the official step decay (docs/method.md, section 4), optional warm-up and clipping."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import optax


def lr_schedule(optim: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """lr * decay_factor ** k, k rising by one every num_steps // num_decays steps, at most num_decays.

    The official run multiplies the lr by 0.8 every n_epochs // 18 epochs, so the lr
    ends at 5e-5 * 0.8^18 (about 9e-7). A linear warm-up over ``warmup_steps`` is
    multiplied in when set.
    """
    interval = max(1, num_steps // max(1, optim.num_decays))

    def schedule(step):
        k = jnp.minimum(step // interval, optim.num_decays)
        lr = optim.lr * jnp.power(optim.decay_factor, k.astype(jnp.float32))
        if optim.warmup_steps > 0:
            lr = lr * jnp.minimum(1.0, (step + 1) / optim.warmup_steps)
        return lr

    return schedule


def make_optimizer(
    optim: ml_collections.ConfigDict, num_steps: int, schedule: optax.Schedule | None = None
) -> optax.GradientTransformation:
    """Adam (betas, eps from the config) on the decayed lr (or ``schedule``), after global-norm
    clipping if set."""
    schedule = schedule if schedule is not None else lr_schedule(optim, num_steps)
    adam = optax.adam(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps)
    if optim.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(optim.grad_clip), adam)
    return adam
