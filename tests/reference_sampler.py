"""A slow reference of the per-frame reverse chain: a host-side Python loop, no scan, no vmap."""

import jax
import jax.numpy as jnp

from dheads_jax.diffusion.chain import reverse_step
from dheads_jax.diffusion.gaussian import output_to_eps


def sample_frame_reference(
    apply_fn,
    params,
    schedule,
    keys,
    identity,
    motion,
    audio,
    *,
    sampler="ddpm",
    eta=0.0,
    parametrization="eps",
    step_inputs=None,
):
    """The chain of ``dheads_jax.diffusion.chain.sample_frame`` one step and one example's noise at a time.

    Args:
      apply_fn, params, schedule, keys, identity, motion, audio: as ``sample_frame``.
      sampler, eta, parametrization: as the sampling options.
      step_inputs: optional n states [B, H, W, 3]; step i then starts from
        ``step_inputs[i - 1]`` (x_T for i = 0) instead of this loop's previous state, so
        each step can be checked against another implementation's trajectory without
        rounding differences compounding along the chain.

    Returns:
      (x_0 [B, H, W, 3], list of the n states after each step, in the order taken).
    """
    step_fn = reverse_step(sampler, eta)
    n = schedule.num_steps
    batch, height, width = identity.shape[:3]

    def noise(j):
        return jnp.stack(
            [jax.random.normal(jax.random.fold_in(keys[b], j), (height, width, 3)) for b in range(batch)]
        )

    x = noise(n)
    trajectory = []
    for i, j in enumerate(reversed(range(n))):
        if step_inputs is not None and i > 0:
            x = jnp.asarray(step_inputs[i - 1])
        t = int(schedule.timesteps[j])
        t_index = jnp.full((batch,), j, jnp.int32)
        out = apply_fn(params, x, jnp.full((batch,), t, jnp.int32), identity, motion, audio)
        out = output_to_eps(schedule, out, x, t_index, parametrization)
        x, _ = step_fn(schedule, out, x, t_index, noise(j))
        trajectory.append(x)
    return x, trajectory
