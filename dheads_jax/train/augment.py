"""[ours] Appearance augmentations of a training batch, so a model trained on few faces meets new ones.

One draw per example, applied alike to all its frames (target, identity, motion frames) so
that what the network learns to copy from the identity and the motion frames stays exactly
what it has to produce:

* ``flip``: a horizontal mirror with probability 1/2 (the mouth box mirrored with it);
* ``color``: brightness, contrast, saturation and per-channel gains, each within
  ``strength`` of no change (the light and skin tones of other cameras);
* ``zoom``: a crop of 1 / z of the frame, z in [1, 1 + zoom], at a random place inside it,
  resized back (other face sizes and framings; the mouth box moved with it).

All three off (the default) returns the batch unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

FRAME_KEYS = ("target", "identity", "motion")


def _per_example(values: jax.Array, ndim: int) -> jax.Array:
    return values.reshape(values.shape + (1,) * (ndim - values.ndim))


def _frames(batch: dict, fn) -> dict:
    """The batch with ``fn`` applied to every frame array (target, identity, motion)."""
    return dict(batch, **{name: fn(batch[name]) for name in FRAME_KEYS})


def _flip(batch: dict, flip: jax.Array) -> dict:
    width = batch["target"].shape[2]
    # W is second to last: [B, H, W, C] and [B, M, H, W, C].
    out = _frames(batch, lambda x: jnp.where(_per_example(flip, x.ndim), jnp.flip(x, x.ndim - 2), x))
    box = batch["mouth_box"]
    mirrored = jnp.stack([box[:, 0], box[:, 1], width - box[:, 3], width - box[:, 2]], -1)
    out["mouth_box"] = jnp.where(flip[:, None], mirrored, box).astype(box.dtype)
    return out


def _color(batch: dict, key: jax.Array, strength: float) -> dict:
    b = batch["target"].shape[0]
    k_bright, k_contrast, k_sat, k_gain = jax.random.split(key, 4)
    bright = jax.random.uniform(k_bright, (b,), minval=-strength / 2, maxval=strength / 2)
    contrast = jax.random.uniform(k_contrast, (b,), minval=1 - strength, maxval=1 + strength)
    saturation = jax.random.uniform(k_sat, (b,), minval=1 - strength, maxval=1 + strength)
    gains = jax.random.uniform(k_gain, (b, 3), minval=1 - strength / 2, maxval=1 + strength / 2)

    def apply(x):  # x in [-1, 1], channels last (3 or 1)
        lead = x.ndim - 1
        u = (x + 1) / 2
        u = (u - 0.5) * _per_example(contrast, x.ndim) + 0.5 + _per_example(bright, x.ndim)
        if x.shape[-1] == 3:
            grey = u.mean(-1, keepdims=True)
            u = grey + (u - grey) * _per_example(saturation, x.ndim)
            u = u * gains.reshape((b,) + (1,) * (lead - 1) + (3,))
        else:  # a grayscale motion frame: the mean gain
            u = u * _per_example(gains.mean(-1), x.ndim)
        return jnp.clip(u, 0.0, 1.0) * 2 - 1

    return _frames(batch, lambda x: apply(x).astype(x.dtype))


def _zoom(batch: dict, key: jax.Array, zoom: float) -> dict:
    b, h, w = batch["target"].shape[:3]
    k_scale, k_y, k_x = jax.random.split(key, 3)
    z = jax.random.uniform(k_scale, (b,), minval=1.0, maxval=1.0 + zoom)
    # The crop [o, o + size / z) lies inside the frame.
    oy = jax.random.uniform(k_y, (b,)) * h * (1 - 1 / z)
    ox = jax.random.uniform(k_x, (b,)) * w * (1 - 1 / z)

    def resample(image, zi, oyi, oxi):  # [..., H, W, C], output pixel p shows input o + p / z
        dims = (image.ndim - 3, image.ndim - 2)
        scale = jnp.stack([zi, zi])
        translation = jnp.stack([-oyi * zi, -oxi * zi])
        return jax.image.scale_and_translate(
            image, image.shape, dims, scale, translation, method="linear", antialias=False
        )

    out = _frames(batch, lambda x: jax.vmap(resample)(x.astype(jnp.float32), z, oy, ox).astype(x.dtype))
    box = batch["mouth_box"].astype(jnp.float32)
    top = jnp.floor((box[:, 0] - oy) * z)
    bottom = jnp.ceil((box[:, 1] - oy) * z)
    left = jnp.floor((box[:, 2] - ox) * z)
    right = jnp.ceil((box[:, 3] - ox) * z)
    moved = jnp.stack(
        [jnp.clip(top, 0, h), jnp.clip(bottom, 0, h), jnp.clip(left, 0, w), jnp.clip(right, 0, w)], -1
    )
    out["mouth_box"] = moved.astype(batch["mouth_box"].dtype)
    return out


def augment_batch(key: jax.Array, batch: dict, flip: bool, color: float, zoom: float) -> dict:
    """The batch with its examples mirrored, recoloured and zoomed (each step optional).

    Args:
      key: PRNG key (independent of the loss's keys).
      batch: 'target' [B, H, W, 3], 'identity' [B, H, W, 3], 'motion' [B, M, H, W, mc] in
        [-1, 1], 'mouth_box' [B, 4] (top, bottom, left, right, half-open); other entries
        pass through.
      flip: mirror half of the examples.
      color: strength of the colour changes; 0 is off.
      zoom: largest extra zoom; 0 is off.

    Returns:
      The augmented batch (the same dict when everything is off).
    """
    if not flip and color <= 0 and zoom <= 0:
        return batch
    k_flip, k_color, k_zoom = jax.random.split(key, 3)
    if flip:
        batch = _flip(batch, jax.random.bernoulli(k_flip, 0.5, (batch["target"].shape[0],)))
    if color > 0:
        batch = _color(batch, k_color, color)
    if zoom > 0:
        batch = _zoom(batch, k_zoom, zoom)
    return batch


def from_config(key: jax.Array, batch: dict, train: ml_collections.ConfigDict) -> dict:
    """``augment_batch`` with config.train.augment_flip / augment_color / augment_zoom."""
    return augment_batch(
        key, batch, bool(train.augment_flip), float(train.augment_color), float(train.augment_zoom)
    )
