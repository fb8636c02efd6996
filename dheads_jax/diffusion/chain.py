"""The reverse chain of one frame: noise keys, audio guidance and the ``lax.scan`` over steps.

The network is reached through an ``apply_fn(params, x_t, timesteps, identity, motion,
audio) -> [B, H, W, 6]``, so any parameter source (raw, EMA, an export) and any stand-in
(an oracle in tests) fits. Nothing here is jitted; callers jit.

Randomness (docs/method.md, section 6): a frame's keys are fold_in(fold_in(key, video_id),
frame); the noise of reverse step j is drawn from fold_in(frame_key, j), and x_T from
fold_in(frame_key, n), one past the last index. So a video's frames depend only on the job
key, its video id and the options, never on the batch it is sampled in or on the devices.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from dheads_jax.diffusion.gaussian import ddim_step, ddpm_step, dpmpp_2m_step, network_input, output_to_eps
from dheads_jax.diffusion.schedule import Schedule
from dheads_jax.imaging import flatten_box

ApplyFn = Callable[..., jax.Array]
SAMPLERS = ("ddpm", "ddim", "dpmpp")


class ChainOptions(Protocol):
    """What the chain reads of the sampling options (``dheads_jax.sampling.SamplingOptions``)."""

    sampler: str
    eta: float
    parametrization: str
    identity_relative: bool
    audio_guidance: float
    null_audio: tuple[float, ...] | None
    guidance_region: tuple[float, ...]
    guidance_interval: tuple[float, ...]
    guidance_grey: bool
    num_timesteps: int
    identity_mask: tuple[float, ...]


def frame_keys(key: jax.Array, video_ids: jax.Array, frame) -> jax.Array:
    """Per-example keys of one frame: fold_in(fold_in(key, video_id), frame).

    Args:
      key: a single PRNG key (typed or raw).
      video_ids: [B] int, the index of each example's video in the whole job.
      frame: int scalar (may be traced), the frame index k.

    Returns:
      [B] keys.
    """
    return jax.vmap(lambda v: jax.random.fold_in(jax.random.fold_in(key, v), frame))(video_ids)


def step_noise(keys: jax.Array, step, shape: tuple[int, ...]) -> jax.Array:
    """Standard normal noise of one reverse step for every example.

    Args:
      keys: [B] per-example frame keys (``frame_keys``).
      step: int scalar (may be traced): the schedule index j, or n for the initial noise.
      shape: the per-example shape, e.g. (H, W, 3).

    Returns:
      [B, *shape] float32 drawn from fold_in(keys[b], step).
    """
    return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, step), shape, jnp.float32))(keys)


def reverse_step(sampler: str, eta: float):
    """(schedule, model_output, x_t, t_index, noise) -> (x_prev, pred_xstart) for ``sampler``.

    For "dpmpp" the last argument is the previous step's x0_hat instead of noise.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
    if sampler == "dpmpp":
        return dpmpp_2m_step
    if sampler == "ddpm":
        return ddpm_step
    return functools.partial(ddim_step, eta=eta)


def region_weight(region: tuple[float, ...], size: int, feather: float = 0.05) -> jax.Array:
    """[size, size, 1] weights: 1 inside the box ``region`` (top, bottom, left, right as
    fractions of the side), 0 outside, falling linearly over ``feather`` of the side across
    its edges so that no seam is drawn into the frame."""
    top, bottom, left, right = region
    pos = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size
    ramp = lambda lo, hi: jnp.clip(jnp.minimum(pos - lo, hi - pos) / feather + 0.5, 0.0, 1.0)  # noqa: E731
    return (ramp(top, bottom)[:, None] * ramp(left, right)[None, :])[..., None]


def guided_steps(timesteps: jax.Array, interval: tuple[float, ...], num_timesteps: int) -> jax.Array:
    """Whether each of ``timesteps`` (original timesteps, any shape) is guided [ours]:
    True everywhere for ``interval`` (), else lo <= t / num_timesteps <= hi."""
    if not interval:
        return jnp.ones(jnp.shape(timesteps), bool)
    lo, hi = interval
    frac = jnp.asarray(timesteps, jnp.float32) / num_timesteps
    return (frac >= lo) & (frac <= hi)


def guided_output(
    apply_fn: ApplyFn,
    params,
    x_t,
    timesteps,
    identity,
    motion,
    audio,
    null_audio,
    scale: float,
    region=(),
    gate: jax.Array | None = None,
    grey: bool = False,
):
    """The network output with classifier-free guidance on the audio [ours].

    pred = pred(audio) + (scale - 1) w (pred(audio) - pred(null)) on the prediction channels
    (eps or v: ``output_to_eps`` is affine in the prediction, so guiding either is the same),
    the variance channels from the audio-conditioned pass; w is 1 everywhere (the usual
    pred(null) + scale (pred(audio) - pred(null))) or, with a ``region``, the weight map of
    ``region_weight``, so that only the mouth's box is guided. Both passes run as one batch.
    ``scale`` 1 is the plain conditional output (one pass, the official sampler).

    Args:
      apply_fn, params: the network.
      x_t, timesteps, identity, motion, audio: as ``apply_fn``.
      null_audio: [D] the embedding of silence that stands for "no audio"; unused at scale 1.
      scale: the guidance scale.
      region: () or the guided box (top, bottom, left, right) in fractions of the frame.
      gate: None, or [B] bool: the examples to guide; the others get the plain conditional
        output (``guided_steps``: a per-example timestep interval, as distillation needs).
      grey: guide with the mean over the channels of pred(audio) - pred(null), the same for
        every channel, so that guidance changes how light or dark the frame is, not its colour.

    Returns:
      [B, H, W, 6] float32.
    """
    if scale == 1.0:
        return apply_fn(params, x_t, timesteps, identity, motion, audio)
    b = x_t.shape[0]
    twice = lambda a: jnp.concatenate([a, a], axis=0)  # noqa: E731
    null = jnp.broadcast_to(jnp.asarray(null_audio, audio.dtype), audio.shape)
    out = apply_fn(
        params, twice(x_t), twice(timesteps), twice(identity), twice(motion), jnp.concatenate([audio, null])
    )
    cond, uncond = out[:b], out[b:]
    half = out.shape[-1] // 2
    diff = cond[..., :half] - uncond[..., :half]
    if grey:
        diff = jnp.broadcast_to(diff.mean(axis=-1, keepdims=True), diff.shape)
    if region or gate is not None or grey:
        # pred(audio) + (g - 1) w (pred(audio) - pred(null)), w the region's and gate's weight.
        weight = region_weight(tuple(region), x_t.shape[1]) if region else 1.0
        if gate is not None:
            weight = weight * jnp.asarray(gate, diff.dtype)[:, None, None, None]
        guided = cond[..., :half] + (scale - 1.0) * weight * diff
    else:
        guided = uncond[..., :half] + scale * diff
    return jnp.concatenate([guided, cond[..., half:]], axis=-1)


def sample_frame(
    apply_fn: ApplyFn,
    params: Any,
    schedule: Schedule,
    keys: jax.Array,
    condition: tuple[jax.Array, jax.Array, jax.Array],
    options: ChainOptions,
    return_trajectory: bool = False,
):
    """Runs the whole reverse chain for one frame of every example: one ``lax.scan``.

    The scan goes over the schedule indices j = n-1, ..., 0; the network receives the
    original timestep ``schedule.timesteps[j]`` and the step uses index j into the
    respaced arrays. No noise is added at j = 0, which returns the clamped x0_hat.

    Args:
      apply_fn: the network.
      params: its parameters.
      schedule: the (respaced) schedule of n steps.
      keys: [B] per-example frame keys; x_T is drawn with step n, step j's noise with j.
      condition: (identity [B, H, W, 3] in [-1, 1], motion [B, m_x, H, W, mc] oldest
        first, audio [B, 2 m_y + 1, D] the frame's audio window).
      options: the sampler ("ddpm", the official ancestral sampler with the learned
        variance, "ddim" or "dpmpp", DPM-Solver++(2M)), DDIM's eta, the parametrization ("eps" or "v"),
        whether the network sees x_t relative to the identity (``network_input``), the
        audio guidance scale with its null audio, region and interval of steps; an
        ``identity_mask`` box of the identity frame is filled with its mean colour before
        the chain uses it, as in training.
      return_trajectory: also return x after every step.

    Returns:
      x_0: [B, H, W, 3] float32 in [-1, 1]; with ``return_trajectory`` a pair
      (x_0, trajectory [n, B, H, W, 3]) whose entry i is x after the i-th step taken
      (schedule index n-1-i).
    """
    identity, motion, audio = condition
    if options.identity_mask:
        identity = flatten_box(identity, options.identity_mask, "identity_mask")
    step_fn = reverse_step(options.sampler, options.eta)
    n = schedule.num_steps
    batch = identity.shape[0]
    shape = (identity.shape[1], identity.shape[2], 3)
    x_T = step_noise(keys, n, shape)

    multistep = options.sampler == "dpmpp"

    def body(carry, j):
        # DPM-Solver++ carries the previous x0_hat instead of drawing noise.
        x, x0_prev = carry
        t_index = jnp.full((batch,), j, jnp.int32)
        timesteps = jnp.full((batch,), schedule.timesteps[j], jnp.int32)
        x_in = network_input(schedule, x, t_index, identity, options.identity_relative)
        guided = lambda: guided_output(  # noqa: E731
            apply_fn,
            params,
            x_in,
            timesteps,
            identity,
            motion,
            audio,
            options.null_audio,
            options.audio_guidance,
            options.guidance_region,
            grey=options.guidance_grey,
        )
        if options.guidance_interval and options.audio_guidance != 1.0:
            # Outside the interval one conditional pass instead of two.
            in_interval = guided_steps(
                schedule.timesteps[j], options.guidance_interval, options.num_timesteps
            )
            plain = lambda: apply_fn(params, x_in, timesteps, identity, motion, audio)  # noqa: E731
            out = jax.lax.cond(in_interval, guided, plain)
        else:
            out = guided()
        out = output_to_eps(schedule, out, x_in, t_index, options.parametrization)
        x_prev, x0 = step_fn(schedule, out, x, t_index, x0_prev if multistep else step_noise(keys, j, shape))
        return (x_prev, x0 if multistep else x0_prev), (x_prev if return_trajectory else None)

    init = (x_T, jnp.zeros_like(x_T) if multistep else None)
    (x_0, _), trajectory = jax.lax.scan(body, init, jnp.arange(n - 1, -1, -1, dtype=jnp.int32))
    return (x_0, trajectory) if return_trajectory else x_0
