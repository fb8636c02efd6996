"""PSNR and SSIM per frame with dm-pix.

Frames are compared in [0, 1] (uint8 / 255), all three channels. PSNR of two identical frames
is infinite; it is capped at ``PSNR_CAP_DB`` so that per-video means and the JSON report stay
finite. 100 dB (an MSE of 1e-10) is far above any real difference between uint8 frames: an
error of one level on every pixel already gives 20 log10(255) = 48.1 dB. SSIM uses dm-pix's defaults (11 x 11 Gaussian window,
sigma 1.5, k1 = 0.01, k2 = 0.03), averaged over channels and pixels.
"""

from __future__ import annotations

import functools

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

PSNR_CAP_DB = 100.0
CHUNK = 32  # frames per jitted call (fixed, so one compilation per frame size)


@functools.cache
def _psnr_ssim_fn():
    def fn(a, b):
        a = a.astype(jnp.float32) / 255.0
        b = b.astype(jnp.float32) / 255.0
        psnr = jnp.minimum(dm_pix.psnr(a, b), PSNR_CAP_DB)
        return psnr, dm_pix.ssim(a, b)

    return jax.jit(fn)


def psnr_ssim(generated: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PSNR (dB, capped) and SSIM.

    Args:
      generated: uint8 [T, H, W, 3].
      reference: uint8 [T, H, W, 3], same shape.

    Returns:
      (psnr, ssim): float64 [T] each.
    """
    if generated.shape != reference.shape:
        raise ValueError(f"shapes differ: {generated.shape} vs {reference.shape}")
    fn = _psnr_ssim_fn()
    psnr, ssim = [], []
    for i in range(0, len(generated), CHUNK):
        a, b = generated[i : i + CHUNK], reference[i : i + CHUNK]
        n = len(a)
        if n < CHUNK:  # pad to the fixed chunk so the function compiles once
            pad = ((0, CHUNK - n),) + ((0, 0),) * 3
            a, b = np.pad(a, pad), np.pad(b, pad)
        p, s = fn(jnp.asarray(a), jnp.asarray(b))
        psnr.append(np.asarray(p)[:n])
        ssim.append(np.asarray(s)[:n])
    return np.concatenate(psnr).astype(np.float64), np.concatenate(ssim).astype(np.float64)
