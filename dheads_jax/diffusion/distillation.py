"""The chain identities of progressive distillation (docs/method.md, section 9): the teacher's
two DDIM steps, and the x0 (and network prediction) with which one student step lands where
they do. Pure functions; nothing here is jitted.

With a = sqrt(abar_t), s = sqrt(1 - abar_t) at the student's timestep and a'', s'' at the one
it steps to (a'' = 1, s'' = 0 for the last step), a DDIM step with eta 0 from z with clamped
x0_hat x is z'' = a'' x + s'' (z - a x) / s, so the x0 that lands on the teacher's two-step
result z''_T is x~ = (z''_T - (s''/s) z) / (a'' - (s''/s) a): a convex combination of the
teacher's two clamped x0 predictions, and z''_T itself at the last step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dheads_jax.diffusion.chain import ApplyFn, ChainOptions, guided_output, guided_steps
from dheads_jax.diffusion.gaussian import (
    ddim_step,
    extract,
    network_input,
    output_to_eps,
    predict_eps_from_xstart,
    v_target,
)
from dheads_jax.diffusion.schedule import Schedule


def x0_target(student: Schedule, z: jax.Array, j: jax.Array, z_teacher: jax.Array) -> jax.Array:
    """The x0 with which one DDIM step (eta 0) of the student from z lands on ``z_teacher``.

    Args:
      student: the student's schedule; j: [B] indices into it.
      z: [B, H, W, C] the student's input x_t.
      z_teacher: [B, H, W, C] where the teacher's two steps from z end.

    Returns:
      [B, H, W, C] float32: x~ (z_teacher itself when j = 0).
    """
    a = extract(student.sqrt_alphas_cumprod, j)
    s = extract(student.sqrt_one_minus_alphas_cumprod, j)
    abar_next = extract(student.alphas_cumprod_prev, j)
    ratio = jnp.sqrt(1.0 - abar_next) / s
    return (z_teacher - ratio * z) / (jnp.sqrt(abar_next) - ratio * a)


def prediction_for_x0(
    schedule: Schedule, x0: jax.Array, x_t: jax.Array, t: jax.Array, parametrization: str
) -> jax.Array:
    """The network prediction (eps, or v [ours]) whose x0_hat at (x_t, t) is ``x0``.

    The inverse of ``output_to_eps`` followed by ``predict_xstart_from_eps``.
    """
    eps = predict_eps_from_xstart(schedule, x_t, t, x0)
    return eps if parametrization == "eps" else v_target(schedule, x0, eps, t)


def teacher_ddim_steps(
    apply_fn: ApplyFn,
    params,
    teacher: Schedule,
    z: jax.Array,
    index: jax.Array,
    condition: tuple[jax.Array, jax.Array, jax.Array],
    options: ChainOptions,
) -> jax.Array:
    """The teacher's two deterministic DDIM steps from z at its schedule index ``index``.

    Each is the sampler's own step: ``guided_output`` at ``options.audio_guidance`` (one
    pass at 1, two otherwise), ``output_to_eps`` and ``ddim_step`` with eta 0; the step at
    index 0 returns the clamped x0_hat.

    Args:
      apply_fn, params: the teacher network.
      teacher: its schedule; index: [B] the index of z in it (>= 1).
      z: [B, H, W, 3].
      condition: (identity, motion, audio) as the sampler passes them.
      options: the chain's parametrization, identity_relative, audio_guidance, null_audio,
        guidance_region, guidance_interval and guidance_grey
        (its sampler and eta are not read: the steps are DDIM with eta 0).

    Returns:
      [B, H, W, 3]: z after the two steps.
    """
    identity, motion, audio = condition
    zeros = jnp.zeros_like(z)
    for i in range(2):
        t = index - i
        z_in = network_input(teacher, z, t, identity, options.identity_relative)
        out = guided_output(
            apply_fn,
            params,
            z_in,
            jnp.take(teacher.timesteps, t),
            identity,
            motion,
            audio,
            options.null_audio,
            options.audio_guidance,
            options.guidance_region,
            gate=guided_steps(
                jnp.take(teacher.timesteps, t), options.guidance_interval, options.num_timesteps
            )
            if options.guidance_interval
            else None,
            grey=options.guidance_grey,
        )
        out = output_to_eps(teacher, out, z_in, t, options.parametrization)
        z, _ = ddim_step(teacher, out, z, t, zeros, eta=0.0)
    return z
