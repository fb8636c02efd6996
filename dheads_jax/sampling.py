"""Sampling: the reverse chain for one frame and the autoregressive loop over frames (SPEC section 6).

The network is reached through an ``apply_fn(params, x_t, timesteps, identity, motion, audio)
-> [B, H, W, 6]`` so that any parameter source (raw, EMA, an export) fits; ``make_apply_fn``
makes one from a ``UNet``. The library functions here are pure and not jitted, except
``sample_video``, which is a loop and jits its per-frame function where it runs.

Randomness: every draw comes from ``fold_in(fold_in(fold_in(key, video_id), frame), step)``.
``step`` is the schedule index ``j`` of the reverse step whose noise it is; the initial noise
x_T of a frame uses ``step = n`` (the chain length, one past the last index). So a video's
frames depend only on ``key``, its ``video_id`` and the settings, not on the batch it is
sampled in or the number of devices. The official code draws all initial noise up front;
drawing each frame's noise from its own key gives the same distribution with flat memory.
With the [ours] option ``shared_noise`` every frame of a video uses frame 0's draws instead,
so that with a deterministic sampler consecutive frames differ only through their
conditioning (audio and motion frames), not through fresh noise.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dheads_jax.diffusion.gaussian import ddim_step, ddpm_step, output_to_eps
from dheads_jax.diffusion.schedule import Schedule
from dheads_jax.imaging import motion_transform

ApplyFn = Callable[..., jax.Array]
SAMPLERS = ("ddpm", "ddim")


@functools.cache
def make_apply_fn(model) -> ApplyFn:
    """The sampler's view of a ``UNet``: ``apply_fn(params, x_t, timesteps, identity, motion, audio)``.

    Cached on the (hashable, compared by value) module, so equal models give the same
    function and ``sample_video`` reuses its compiled per-frame function.

    Args:
      model: a ``dheads_jax.models.unet.UNet``.

    Returns:
      A function of (params, x_t [B, H, W, 3], timesteps [B] original 0..T-1, identity
      [B, H, W, 3], motion [B, m_x, H, W, mc], audio [B, 2 m_y + 1, D]) returning the
      network output [B, H, W, 6] (eps, v) in float32; ``params`` is the ``'params'``
      collection.
    """

    def apply_fn(params, x_t, timesteps, identity, motion, audio):
        out = model.apply({"params": params}, x_t, timesteps, identity, motion, audio, train=False)
        return out.astype(jnp.float32)

    return apply_fn


def _check_sampler(sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")


def _check_guidance(scale: float, null_audio) -> None:
    if scale != 1.0 and null_audio is None:
        raise ValueError(f"audio_guidance {scale} needs null_audio (the embedding of silence)")


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


def _reverse_step(sampler: str, eta: float):
    """(schedule, model_output, x_t, t_index, noise) -> (x_prev, pred_xstart) for ``sampler``."""
    _check_sampler(sampler)
    if sampler == "ddpm":
        return ddpm_step
    return functools.partial(ddim_step, eta=eta)


def guided_output(
    apply_fn: ApplyFn, params, x_t, timesteps, identity, motion, audio, null_audio, scale: float
):
    """The network output with classifier-free guidance on the audio [ours].

    pred = pred(null) + scale * (pred(audio) - pred(null)) on the prediction channels (eps
    or v: ``output_to_eps`` is affine in the prediction, so guiding either is the same),
    the variance channels from the audio-conditioned pass. Both passes run as one batch.
    ``scale`` 1 is the plain conditional output (one pass, the official sampler).

    Args:
      apply_fn, params: the network.
      x_t, timesteps, identity, motion, audio: as ``apply_fn``.
      null_audio: [D] the embedding of silence that stands for "no audio"; unused at scale 1.
      scale: the guidance scale.

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
    guided = uncond[..., :half] + scale * (cond[..., :half] - uncond[..., :half])
    return jnp.concatenate([guided, cond[..., half:]], axis=-1)


def sample_frame(
    apply_fn: ApplyFn,
    params: Any,
    schedule: Schedule,
    keys: jax.Array,
    identity: jax.Array,
    motion: jax.Array,
    audio: jax.Array,
    *,
    sampler: str = "ddpm",
    eta: float = 0.0,
    parametrization: str = "eps",
    return_trajectory: bool = False,
    audio_guidance: float = 1.0,
    null_audio: jax.Array | None = None,
):
    """Runs the whole reverse chain for one frame of every example: one ``lax.scan``.

    The scan goes over the schedule indices j = n-1, ..., 0; the network receives the
    original timestep ``schedule.timesteps[j]`` and the step uses index j into the
    respaced arrays. No noise is added at j = 0, which returns the clamped x0_hat.

    Args:
      apply_fn: the network, see ``make_apply_fn``.
      params: its parameters.
      schedule: the (respaced) schedule of n steps.
      keys: [B] per-example frame keys; x_T is drawn with step n, step j's noise with j.
      identity: [B, H, W, 3] identity frames in [-1, 1].
      motion: [B, m_x, H, W, mc] motion frames, oldest first.
      audio: [B, 2 m_y + 1, D] the audio window of this frame.
      sampler: "ddpm" (ancestral, learned variance: the official sampler) or "ddim".
      eta: DDIM's noise scale (0 is deterministic); ignored by "ddpm".
      parametrization: what the network predicts, "eps" (official) or "v" (see
        ``dheads_jax.diffusion.output_to_eps``).
      return_trajectory: also return x after every step.
      audio_guidance: [ours] classifier-free guidance scale on the audio (see
        ``guided_output``); 1 (default, official) is off.
      null_audio: [D] the silence embedding guidance compares with; needed when
        ``audio_guidance`` is not 1.

    Returns:
      x_0: [B, H, W, 3] float32 in [-1, 1]; with ``return_trajectory`` a pair
      (x_0, trajectory [n, B, H, W, 3]) whose entry i is x after the i-th step taken
      (schedule index n-1-i).
    """
    step_fn = _reverse_step(sampler, eta)
    _check_guidance(audio_guidance, null_audio)
    n = schedule.num_steps
    batch = identity.shape[0]
    shape = (identity.shape[1], identity.shape[2], 3)
    x_T = step_noise(keys, n, shape)

    def body(x, j):
        t_index = jnp.full((batch,), j, jnp.int32)
        timesteps = jnp.full((batch,), schedule.timesteps[j], jnp.int32)
        out = guided_output(
            apply_fn, params, x, timesteps, identity, motion, audio, null_audio, audio_guidance
        )
        out = output_to_eps(schedule, out, x, t_index, parametrization)
        x_prev, _ = step_fn(schedule, out, x, t_index, step_noise(keys, j, shape))
        return x_prev, (x_prev if return_trajectory else None)

    x_0, trajectory = jax.lax.scan(body, x_T, jnp.arange(n - 1, -1, -1, dtype=jnp.int32))
    return (x_0, trajectory) if return_trajectory else x_0


def sample_frame_reference(
    apply_fn: ApplyFn,
    params: Any,
    schedule: Schedule,
    keys: jax.Array,
    identity: jax.Array,
    motion: jax.Array,
    audio: jax.Array,
    *,
    sampler: str = "ddpm",
    eta: float = 0.0,
    parametrization: str = "eps",
    step_inputs: list[jax.Array] | jax.Array | None = None,
) -> tuple[jax.Array, list[jax.Array]]:
    """The chain of ``sample_frame`` as a plain Python loop, one example's noise at a time.

    A slow reference for tests: host-side loop over steps and examples, no scan, no vmap.

    Args:
      apply_fn, params, schedule, keys, identity, motion, audio, sampler, eta,
        parametrization: as ``sample_frame``.
      step_inputs: optional n states [B, H, W, 3]; step i then starts from
        ``step_inputs[i - 1]`` (x_T for i = 0) instead of this loop's previous state, so
        each step can be checked against another implementation's trajectory without
        rounding differences compounding along the chain.

    Returns:
      (x_0 [B, H, W, 3], list of the n states after each step, in the order taken).
    """
    step_fn = _reverse_step(sampler, eta)
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


def audio_window_indices(k, n, m_y: int) -> jax.Array:
    """Indices of frame k's audio window: k - m_y .. k + m_y clamped to [0, n - 1].

    The edge embedding is repeated before the first and after the last frame (SPEC
    sections 4 and 6), as the official sampler's ``audio_ids`` list.

    Args:
      k: int scalar (may be traced), the frame index.
      n: int scalar or [V] ints: the number of audio frames (per video).
      m_y: audio context on each side.

    Returns:
      int32 [2 m_y + 1], or [V, 2 m_y + 1] when ``n`` is per video.
    """
    offsets = jnp.arange(-m_y, m_y + 1, dtype=jnp.int32)
    n = jnp.asarray(n, jnp.int32)
    return jnp.clip(jnp.asarray(k, jnp.int32) + offsets, 0, n[..., None] - 1)


def audio_window(audio: jax.Array, k, lengths: jax.Array, m_y: int) -> jax.Array:
    """Frame k's audio window of every video.

    Args:
      audio: [V, N, D] per-frame audio embeddings (padded past each video's length).
      k: int scalar (may be traced), the frame index.
      lengths: [V] number of valid audio frames per video.
      m_y: audio context on each side.

    Returns:
      [V, 2 m_y + 1, D].
    """
    idx = audio_window_indices(k, lengths, m_y)
    return jnp.take_along_axis(audio, idx[..., None], axis=1)


def init_motion_buffer(identity: jax.Array, m_x: int, grayscale: bool) -> jax.Array:
    """The first frame's motion buffer: m_x copies of the (transformed) identity.

    Args:
      identity: [B, H, W, 3] in [-1, 1].
      m_x: number of motion frames.
      grayscale: store luma frames (mc = 1) instead of colour (mc = 3).

    Returns:
      [B, m_x, H, W, mc].
    """
    m = motion_transform(identity, grayscale)
    return jnp.repeat(m[:, None], m_x, axis=1)


def push_motion_frame(motion: jax.Array, frame: jax.Array, grayscale: bool) -> jax.Array:
    """Drops the oldest motion frame and appends ``frame`` (transformed) as the newest.

    Args:
      motion: [B, m_x, H, W, mc], oldest first.
      frame: [B, H, W, 3] the frame just made.
      grayscale: as ``init_motion_buffer``.

    Returns:
      [B, m_x, H, W, mc].
    """
    new = motion_transform(frame, grayscale).astype(motion.dtype)
    return jnp.concatenate([motion[:, 1:], new[:, None]], axis=1)


def stabilize_motion_buffer(
    motion: jax.Array, identity: jax.Array, k, every: int, grayscale: bool
) -> jax.Array:
    """Before frame k: if ``every`` > 0, k > 0 and k % every == 0, the oldest slot becomes x_Id.

    The official ``stabilize`` option (every 15 frames in its config); it pulls the
    sample back towards the identity to limit drift over long clips.

    Args:
      motion: [B, m_x, H, W, mc].
      identity: [B, H, W, 3].
      k: int scalar (may be traced), the frame about to be made.
      every: the period N; 0 disables.
      grayscale: as ``init_motion_buffer``.

    Returns:
      [B, m_x, H, W, mc].
    """
    if every <= 0:
        return motion
    k = jnp.asarray(k, jnp.int32)
    replaced = motion.at[:, 0].set(motion_transform(identity, grayscale).astype(motion.dtype))
    return jnp.where((k > 0) & (k % every == 0), replaced, motion)


def sampling_options(config) -> dict[str, Any]:
    """The keyword options of ``sample_video`` from an experiment config.

    Args:
      config: the experiment ``ConfigDict`` (uses ``data``, ``sampling`` and
        ``diffusion.parametrization``).

    Returns:
      dict with motion_frames, audio_context, grayscale, sampler, eta, stabilize_every,
      parametrization, audio_guidance (the caller supplies ``null_audio`` when it is not 1),
      shared_noise.
    """
    s = config.sampling
    return dict(
        motion_frames=config.data.motion_frames,
        audio_context=config.data.audio_context,
        grayscale=bool(config.data.grayscale_motion),
        sampler=s.sampler,
        eta=float(s.eta),
        stabilize_every=int(s.stabilize_every) if s.stabilize else 0,
        parametrization=config.diffusion.get("parametrization", "eps"),
        audio_guidance=float(s.get("audio_guidance", 1.0)),
        shared_noise=bool(s.get("shared_noise", False)),
    )


def video_frame_step(
    apply_fn: ApplyFn,
    params: Any,
    schedule: Schedule,
    key: jax.Array,
    video_ids: jax.Array,
    lengths: jax.Array,
    k,
    identity: jax.Array,
    motion: jax.Array,
    audio: jax.Array,
    null_audio: jax.Array | None = None,
    *,
    audio_context: int,
    grayscale: bool,
    sampler: str,
    eta: float,
    stabilize_every: int,
    parametrization: str = "eps",
    audio_guidance: float = 1.0,
    shared_noise: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Makes frame k of every video and returns it with the next frame's motion buffer.

    Args:
      apply_fn, params, schedule: as ``sample_frame``.
      key: the job's PRNG key.
      video_ids: [V] int32 global video indices (for the key).
      lengths: [V] int32 audio frames per video.
      k: int32 scalar (traced in ``sample_video``), the frame index.
      identity: [V, H, W, 3].
      motion: [V, m_x, H, W, mc], the buffer left by frame k - 1.
      audio: [V, N, D] every frame's audio embedding.
      null_audio: [D] silence embedding for ``audio_guidance`` (see ``sample_frame``).
      audio_context: m_y.
      grayscale, sampler, eta, stabilize_every, parametrization, audio_guidance,
        shared_noise: see ``sample_video``.

    Returns:
      (frame [V, H, W, 3] float32, motion [V, m_x, H, W, mc] for frame k + 1).
    """
    motion = stabilize_motion_buffer(motion, identity, k, stabilize_every, grayscale)
    window = audio_window(audio, k, lengths, audio_context)
    keys = frame_keys(key, video_ids, 0 if shared_noise else k)
    frame = sample_frame(
        apply_fn,
        params,
        schedule,
        keys,
        identity,
        motion,
        window,
        sampler=sampler,
        eta=eta,
        parametrization=parametrization,
        audio_guidance=audio_guidance,
        null_audio=null_audio,
    )
    return frame, push_motion_frame(motion, frame, grayscale)


@functools.lru_cache(maxsize=32)
def _jitted_frame_step(
    apply_fn,
    mesh,
    audio_context,
    grayscale,
    sampler,
    eta,
    stabilize_every,
    parametrization,
    audio_guidance,
    shared_noise,
):
    """The jitted ``video_frame_step``, built once per (network, mesh, options)."""
    fn = functools.partial(
        video_frame_step,
        apply_fn,
        audio_context=audio_context,
        grayscale=grayscale,
        sampler=sampler,
        eta=eta,
        stabilize_every=stabilize_every,
        parametrization=parametrization,
        audio_guidance=audio_guidance,
        shared_noise=shared_noise,
    )
    if mesh is None:
        return jax.jit(fn)
    repl, data = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    # params, schedule, key, video_ids, lengths, k, identity, motion, audio, null_audio
    in_shardings = (repl, repl, repl, data, data, repl, data, data, data, repl)
    return jax.jit(fn, in_shardings=in_shardings, out_shardings=(data, data))


def _format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def sample_video(
    apply_fn: ApplyFn,
    params: Any,
    schedule: Schedule,
    identity,
    audio,
    key: jax.Array,
    *,
    lengths=None,
    video_ids=None,
    motion_frames: int = 2,
    audio_context: int = 2,
    grayscale: bool = False,
    sampler: str = "ddpm",
    eta: float = 0.0,
    stabilize_every: int = 0,
    parametrization: str = "eps",
    audio_guidance: float = 1.0,
    null_audio=None,
    shared_noise: bool = False,
    mesh: jax.sharding.Mesh | None = None,
    callback: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    progress: Callable[[int, int, float, float], None] | None = None,
    log_every_s: float = 10.0,
) -> np.ndarray | None:
    """Samples a batch of videos frame by frame (SPEC section 6).

    Frame k of video v is denoised from noise drawn with key fold_in(fold_in(key,
    video_ids[v]), k) (0 instead of k with ``shared_noise``), conditioned on the identity,
    the motion buffer (m_x copies of the identity at first, then the latest frames, oldest
    first; optionally stabilized) and the audio window k - m_y .. k + m_y clamped to the
    video's length. One jitted per-frame function is compiled per shape and reused for
    every frame (and for later calls with the same network and options). With a mesh the videos are sharded over
    its 'data' axis; the batch is padded to a multiple of that axis and the padding
    dropped. Frame k + 1 is dispatched before frame k is copied to the host, so the
    device stays busy while frames are handed out.

    Args:
      apply_fn: the network, see ``make_apply_fn``.
      params: its parameters (placed replicated on the mesh if one is given).
      schedule: the (respaced) schedule; its length is the number of steps per frame.
      identity: [V, H, W, 3] identity frames in [-1, 1].
      audio: [V, N, D] per-frame audio embeddings; entries past a video's length are
        never read.
      key: the job's PRNG key.
      lengths: [V] ints in 1..N, frames per video; default N for every video.
      video_ids: [V] ints, each video's index in the whole job (its key); default 0..V-1.
      motion_frames: m_x.
      audio_context: m_y.
      grayscale: luma motion frames (the model's mc = 1).
      sampler: "ddpm" (official) or "ddim".
      eta: DDIM's noise scale.
      stabilize_every: N > 0 puts x_Id in the oldest motion slot before every frame k > 0
        with k % N == 0; 0 disables.
      parametrization: what the network predicts, "eps" or "v" (see ``sample_frame``).
      audio_guidance: [ours] classifier-free guidance scale on the audio; 1 is off.
      null_audio: [D] the embedding of silence, needed when ``audio_guidance`` is not 1.
      shared_noise: [ours] draw every frame's noise with frame index 0 instead of k, so a
        video's frames share their noise; False (official) draws fresh noise per frame.
      mesh: a mesh with a 'data' axis, or None for the default device.
      callback: called as ``callback(k, frames, active)`` with frame k of every video,
        ``frames`` [V, H, W, 3] float32 numpy in [-1, 1] and ``active`` [V] bool (False
        where k is past that video's length). With a callback nothing is accumulated.
      progress: called as ``progress(done, total, frames_per_s, eta_s)`` after every frame,
        ``frames_per_s`` counting the frames of all active videos.
      log_every_s: seconds between absl progress log lines.

    Returns:
      [V, max(lengths), H, W, 3] float32 numpy when ``callback`` is None (frames past a
      video's length are left as sampled), else None.
    """
    _check_sampler(sampler)
    _check_guidance(audio_guidance, null_audio)
    identity = np.asarray(identity, np.float32)
    audio = np.asarray(audio, np.float32)
    null_audio = (
        np.zeros(audio.shape[-1:], np.float32) if null_audio is None else np.asarray(null_audio, np.float32)
    )
    if null_audio.shape != audio.shape[-1:]:
        raise ValueError(f"null_audio {null_audio.shape} does not match the audio embeddings {audio.shape}")
    num_videos, num_audio = audio.shape[:2]
    if identity.shape[0] != num_videos or identity.ndim != 4 or identity.shape[-1] != 3:
        raise ValueError(f"identity {identity.shape} does not match audio {audio.shape}")
    lengths = (
        np.full((num_videos,), num_audio, np.int32) if lengths is None else np.asarray(lengths, np.int32)
    )
    video_ids = (
        np.arange(num_videos, dtype=np.int32) if video_ids is None else np.asarray(video_ids, np.int32)
    )
    if lengths.shape != (num_videos,) or lengths.min() < 1 or lengths.max() > num_audio:
        raise ValueError(f"lengths must be {num_videos} ints in 1..{num_audio}, got {lengths}")
    if video_ids.shape != (num_videos,):
        raise ValueError(f"video_ids must have shape ({num_videos},), got {video_ids.shape}")
    num_frames = int(lengths.max())

    # Pad to a multiple of the data axis with copies of the last video (discarded).
    shards = mesh.shape["data"] if mesh is not None else 1
    pad = -num_videos % shards
    if pad:
        rep = lambda a: np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
        identity, audio, lengths, video_ids = map(rep, (identity, audio, lengths, video_ids))

    step = _jitted_frame_step(
        apply_fn,
        mesh,
        audio_context,
        bool(grayscale),
        sampler,
        float(eta),
        stabilize_every,
        parametrization,
        float(audio_guidance),
        bool(shared_noise),
    )
    motion = init_motion_buffer(identity, motion_frames, grayscale)
    inputs = (params, schedule, key, video_ids, lengths, identity, motion, audio, null_audio)
    if mesh is not None:
        repl, data = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
        shardings = (repl, repl, repl, data, data, data, data, data, repl)
        inputs = jax.device_put(inputs, shardings)
    else:
        inputs = jax.device_put(inputs)
    params, schedule, key, video_ids_d, lengths_d, identity_d, motion, audio_d, null_d = inputs

    out = (
        None if callback is not None else np.zeros((num_videos, num_frames) + identity.shape[1:], np.float32)
    )
    start = time.perf_counter()
    state = dict(last_log=start, first_done=None, active_frames=0)

    def hand_out(k: int, frames: jax.Array) -> None:
        host = np.asarray(jax.device_get(frames))[:num_videos]
        active = k < lengths[:num_videos]
        if out is not None:
            out[:, k] = host
        else:
            callback(k, host, active)
        now = time.perf_counter()
        done = k + 1
        if state["first_done"] is None:
            # The first frame includes compilation; rates are measured after it.
            state["first_done"] = now
            rate = done * int(active.sum()) / (now - start)
            eta_s = (now - start) * (num_frames - done)
        else:
            state["active_frames"] += int(active.sum())
            rate = state["active_frames"] / max(now - state["first_done"], 1e-9)
            eta_s = (now - state["first_done"]) / (done - 1) * (num_frames - done)
        if progress is not None:
            progress(done, num_frames, rate, eta_s)
        if now - state["last_log"] >= log_every_s or done == num_frames:
            state["last_log"] = now
            logging.info(
                "sampled frame %d/%d of %d videos: %.2f frames/s, ETA %s, elapsed %s",
                done,
                num_frames,
                num_videos,
                rate,
                _format_seconds(eta_s),
                _format_seconds(now - start),
            )

    pending = None
    with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        for k in range(num_frames):
            frames, motion = step(
                params,
                schedule,
                key,
                video_ids_d,
                lengths_d,
                np.int32(k),
                identity_d,
                motion,
                audio_d,
                null_d,
            )
            if pending is not None:
                hand_out(*pending)
            pending = (k, frames)
        hand_out(*pending)
    return out
