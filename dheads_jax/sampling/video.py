"""The autoregressive video loop: one jitted step per frame, frames yielded as they are made.

``frame_step`` makes frame k of every video in a batch from the motion buffer left by frame
k - 1 (docs/method.md, section 6). ``video_frames`` runs it over the frames as a generator;
the caller owns placement (``VideoBatch`` and the motion buffer are pytrees, put on a mesh
with ``dheads_jax.parallel``), progress and writing. ``sample_videos`` is the whole loop
for callers that want the frames as one array.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from dheads_jax import parallel
from dheads_jax.diffusion.chain import ApplyFn, frame_keys, sample_frame
from dheads_jax.diffusion.schedule import Schedule
from dheads_jax.sampling.conditioning import (
    audio_window,
    init_motion_buffer,
    push_motion_frame,
    stabilize_motion_buffer,
)
from dheads_jax.sampling.options import SamplingOptions


@dataclasses.dataclass(frozen=True)
class UNetApply:
    """The sampler's view of a ``UNet``: ``(params, x_t, timesteps, identity, motion, audio) -> out``.

    A frozen value compared by its model, so two equal models share one compiled frame step.

    Attributes:
      model: a ``dheads_jax.models.unet.UNet``.
    """

    model: Any

    def __call__(self, params, x_t, timesteps, identity, motion, audio) -> jax.Array:
        """The network output [B, H, W, 6] (prediction, variance) in float32.

        Args:
          params: the ``'params'`` collection.
          x_t: [B, H, W, 3]; timesteps: [B] original 0..T-1; identity: [B, H, W, 3];
            motion: [B, m_x, H, W, mc]; audio: [B, 2 m_y + 1, D].
        """
        out = self.model.apply({"params": params}, x_t, timesteps, identity, motion, audio, train=False)
        return out.astype(jnp.float32)


@flax.struct.dataclass
class VideoBatch:
    """The inputs of a batch of videos.

    Attributes:
      identity: [V, H, W, 3] float32 identity frames in [-1, 1].
      audio: [V, N, D] float32 per-frame audio embeddings; entries past a video's length
        are never read.
      lengths: [V] int32 in 1..N, frames per video.
      video_ids: [V] int32, each video's index in the whole job (with the key, its noise).
    """

    identity: Any
    audio: Any
    lengths: Any
    video_ids: Any

    @classmethod
    def create(cls, identity, audio, lengths=None, video_ids=None) -> VideoBatch:
        """A checked host batch; lengths default to N, video ids to 0..V-1.

        Raises:
          ValueError: shapes that do not fit together, or lengths outside 1..N.
        """
        identity = np.asarray(identity, np.float32)
        audio = np.asarray(audio, np.float32)
        num_videos, num_audio = audio.shape[:2]
        if identity.ndim != 4 or identity.shape[0] != num_videos or identity.shape[-1] != 3:
            raise ValueError(f"identity {identity.shape} does not match audio {audio.shape}")
        lengths = (
            np.full((num_videos,), num_audio, np.int32) if lengths is None else np.asarray(lengths, np.int32)
        )
        if video_ids is None:
            video_ids = np.arange(num_videos, dtype=np.int32)
        video_ids = np.asarray(video_ids, np.int32)
        if lengths.shape != (num_videos,) or lengths.min() < 1 or lengths.max() > num_audio:
            raise ValueError(f"lengths must be {num_videos} ints in 1..{num_audio}, got {lengths}")
        if video_ids.shape != (num_videos,):
            raise ValueError(f"video_ids must have shape ({num_videos},), got {video_ids.shape}")
        return cls(identity, audio, lengths, video_ids)

    @property
    def num_videos(self) -> int:
        return int(self.identity.shape[0])

    def padded(self, multiple: int) -> VideoBatch:
        """The batch padded to a multiple of ``multiple`` videos with copies of the last one."""
        pad = -self.num_videos % multiple
        if not pad:
            return self
        return jax.tree.map(lambda a: np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]), self)


def check_inputs(videos: VideoBatch, options: SamplingOptions) -> None:
    """Raises ValueError when ``videos`` does not fit ``options`` (the null audio's size)."""
    if options.null_audio is not None and len(options.null_audio) != videos.audio.shape[-1]:
        raise ValueError(
            f"null_audio has {len(options.null_audio)} values, the audio embeddings {videos.audio.shape[-1]}"
        )


def frame_step(
    apply_fn: ApplyFn,
    options: SamplingOptions,
    params: Any,
    schedule: Schedule,
    key: jax.Array,
    videos: VideoBatch,
    k,
    motion: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Makes frame k of every video and returns it with the next frame's motion buffer.

    Args:
      apply_fn: the network (static under jit).
      options: how to sample (static under jit: the compile-cache key).
      params: the network's parameters.
      schedule: ``options.make_schedule()``.
      key: the job's PRNG key.
      videos: the batch's inputs.
      k: int32 scalar (traced), the frame index.
      motion: [V, m_x, H, W, mc], the buffer left by frame k - 1 (``init_motion_buffer``
        for k = 0).

    Returns:
      (frame [V, H, W, 3] float32 in [-1, 1], motion [V, m_x, H, W, mc] for frame k + 1).
    """
    motion = stabilize_motion_buffer(motion, videos.identity, k, options.stabilize_every, options.grayscale)
    window = audio_window(videos.audio, k, videos.lengths, options.audio_context)
    keys = frame_keys(key, videos.video_ids, 0 if options.shared_noise else k)
    frame = sample_frame(apply_fn, params, schedule, keys, (videos.identity, motion, window), options)
    return frame, push_motion_frame(motion, frame, options.grayscale)


# The compiled step: jax caches one executable per (network, options, shapes, shardings).
jitted_frame_step = jax.jit(frame_step, static_argnums=(0, 1))


def video_frames(step, params, schedule, key, videos: VideoBatch, motion) -> Iterator[tuple[int, jax.Array]]:
    """Yields (k, frame k of every video [V, H, W, 3]) for k = 0 .. max(lengths) - 1.

    Frame k + 1 is dispatched before frame k is yielded, so the device keeps working while
    the caller copies and writes a frame.

    Args:
      step: ``frame_step`` with its network and options bound (and jitted), taking
        (params, schedule, key, videos, k, motion).
      params, schedule, key: as ``frame_step``.
      videos: the batch, placed where the caller wants it.
      motion: the first frame's buffer (``init_motion_buffer``), placed likewise.
    """
    num_frames = int(np.max(parallel.to_host(videos.lengths)))
    pending = None
    for k in range(num_frames):
        frames, motion = step(params, schedule, key, videos, np.int32(k), motion)
        if pending is not None:
            yield pending
        pending = (k, frames)
    yield pending


def place(videos: VideoBatch, options: SamplingOptions, params, schedule: Schedule, mesh=None):
    """(videos, first motion buffer, params, schedule) on the default device or on ``mesh``.

    With a mesh the videos and their motion buffers are split over all its devices (the
    batch must divide evenly: ``VideoBatch.padded``); parameters and schedule are replicated.
    The mesh may span several processes (training's sample strips): every process then
    passes the same videos and takes part.
    """
    motion = init_motion_buffer(videos.identity, options.motion_frames, options.grayscale)
    if mesh is None:
        return jax.device_put((videos, motion, params, schedule))
    per_video = parallel.batch_sharding(mesh)
    repl = parallel.replicated(mesh)
    shardings = (
        jax.tree.map(lambda _: per_video, videos),
        per_video,
        jax.tree.map(lambda _: repl, params),
        jax.tree.map(lambda _: repl, schedule),
    )
    return parallel.put((videos, motion, params, schedule), shardings)


def sample_videos(
    apply_fn: ApplyFn, params, options: SamplingOptions, videos: VideoBatch, key: jax.Array, mesh=None
) -> np.ndarray:
    """Samples a batch of videos frame by frame and returns them as one array.

    Args:
      apply_fn: the network.
      params: its parameters.
      options: how to sample.
      videos: the inputs (``VideoBatch.create``).
      key: the job's PRNG key.
      mesh: a mesh to split the videos over (padded to its size, padding dropped), or None.
        On a mesh over several processes every process calls this with the same inputs
        and gets every frame.

    Returns:
      [V, max(lengths), H, W, 3] float32 numpy in [-1, 1] (frames past a video's length
      are left as sampled).
    """
    check_inputs(videos, options)
    num_videos = videos.num_videos
    padded = videos.padded(mesh.size if mesh is not None else 1)
    placed, motion, params, schedule = place(padded, options, params, options.make_schedule(), mesh)
    step = lambda *args: jitted_frame_step(apply_fn, options, *args)  # noqa: E731
    with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        frames = [
            parallel.to_host(f)[:num_videos]
            for _, f in video_frames(step, params, schedule, key, placed, motion)
        ]
    return np.stack(frames, axis=1)
