"""What frame k is conditioned on: its audio window and the motion buffer (docs/method.md, section 6).

Pure functions on numpy or jax arrays; the same rules as the training examples
(section 4): the audio window k - m_y .. k + m_y is clamped to the clip, and the motion
buffer starts as m_x copies of the identity and then holds the latest frames, oldest first.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dheads_jax.imaging import motion_transform


def audio_window_indices(k, n, m_y: int) -> jax.Array:
    """Indices of frame k's audio window: k - m_y .. k + m_y clamped to [0, n - 1].

    The edge embedding is repeated before the first and after the last frame, as the
    official sampler's rolling ``audio_ids`` list does.

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


def init_motion_buffer(identity, m_x: int, grayscale: bool):
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
