"""Noise schedules as immutable pytrees, computed in float64 on the host (docs/method.md, sections 3, 6).

A ``Schedule`` holds every per-step coefficient the losses and samplers need, indexed
by the position ``j`` in the (possibly respaced) chain; ``timesteps[j]`` is the
ORIGINAL timestep on the 0..T-1 grid that the network receives.
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


def cosine_alpha_bar(t: np.ndarray | float) -> np.ndarray:
    """abar(t) = cos^2(((t + 0.008) / 1.008) * pi / 2) for t in [0, 1]."""
    return np.cos((np.asarray(t, np.float64) + 0.008) / 1.008 * math.pi / 2) ** 2


def cosine_betas(num_timesteps: int, max_beta: float = 0.999) -> np.ndarray:
    """beta_i = min(1 - abar((i+1)/T) / abar(i/T), max_beta), float64 [T]."""
    i = np.arange(num_timesteps, dtype=np.float64)
    betas = 1.0 - cosine_alpha_bar((i + 1) / num_timesteps) / cosine_alpha_bar(i / num_timesteps)
    return np.minimum(betas, max_beta)


def linear_betas(num_timesteps: int) -> np.ndarray:
    """DDPM's linear schedule, scaled so that any T matches T = 1000's endpoints. float64 [T]."""
    scale = 1000.0 / num_timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)


def get_betas(name: str, num_timesteps: int) -> np.ndarray:
    """Betas of the named schedule ("cosine" or "linear"), float64 [T]."""
    if name == "cosine":
        return cosine_betas(num_timesteps)
    if name == "linear":
        return linear_betas(num_timesteps)
    raise ValueError(f"unknown noise schedule {name!r}; expected 'cosine' or 'linear'")


def space_timesteps(num_timesteps: int, num_steps: int) -> list[int]:
    """The official respacing rule: a float stride (T-1)/(n-1) accumulated from 0, rounded.

    Python's ``round`` (half to even) is used, as in the official code. n = 100 of
    T = 1000 gives 0, 10, 20, 30, 40, 50, 61, 71, ..., 989, 999.
    """
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"cannot respace {num_timesteps} timesteps to {num_steps} steps")
    if num_steps == 1:
        return [0]
    stride = (num_timesteps - 1) / (num_steps - 1)
    taken, cur = [], 0.0
    for _ in range(num_steps):
        taken.append(round(cur))
        cur += stride
    return taken


@flax.struct.dataclass
class Schedule:
    """Per-step diffusion coefficients, float32 arrays of shape [n] (n = chain length)."""

    timesteps: jax.Array  # int32 original timestep of each step
    betas: jax.Array
    log_betas: jax.Array
    alphas_cumprod: jax.Array
    alphas_cumprod_prev: jax.Array
    sqrt_alphas_cumprod: jax.Array
    sqrt_one_minus_alphas_cumprod: jax.Array
    sqrt_recip_alphas_cumprod: jax.Array
    sqrt_recipm1_alphas_cumprod: jax.Array
    posterior_variance: jax.Array
    posterior_log_variance_clipped: jax.Array
    posterior_mean_coef1: jax.Array
    posterior_mean_coef2: jax.Array

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0]


def make_schedule(betas: np.ndarray, timesteps: np.ndarray | None = None) -> Schedule:
    """All coefficients from ``betas`` (float64 [n]), computed in float64, stored as float32."""
    betas = np.asarray(betas, np.float64)
    n = betas.shape[0]
    timesteps = np.arange(n) if timesteps is None else np.asarray(timesteps)
    alphas = 1.0 - betas
    abar = np.cumprod(alphas)
    abar_prev = np.append(1.0, abar[:-1])
    post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
    # Entry 0 of the posterior variance is 0; its log is clipped by reusing entry 1.
    # A one-step chain has no entry 1 and never adds noise; beta stands in.
    post_log_var = np.log(np.append(post_var[1], post_var[1:]) if n > 1 else betas)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return Schedule(
        timesteps=jnp.asarray(timesteps, jnp.int32),
        betas=f32(betas),
        log_betas=f32(np.log(betas)),
        alphas_cumprod=f32(abar),
        alphas_cumprod_prev=f32(abar_prev),
        sqrt_alphas_cumprod=f32(np.sqrt(abar)),
        sqrt_one_minus_alphas_cumprod=f32(np.sqrt(1.0 - abar)),
        sqrt_recip_alphas_cumprod=f32(np.sqrt(1.0 / abar)),
        sqrt_recipm1_alphas_cumprod=f32(np.sqrt(1.0 / abar - 1.0)),
        posterior_variance=f32(post_var),
        posterior_log_variance_clipped=f32(post_log_var),
        posterior_mean_coef1=f32(betas * np.sqrt(abar_prev) / (1.0 - abar)),
        posterior_mean_coef2=f32((1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar)),
    )


def respaced_betas(betas: np.ndarray, timesteps: list[int]) -> np.ndarray:
    """beta'_j = 1 - abar[t_j] / abar[t_{j-1}] with abar before the first step = 1. float64."""
    abar = np.cumprod(1.0 - np.asarray(betas, np.float64))
    kept = abar[np.asarray(timesteps)]
    return 1.0 - kept / np.append(1.0, kept[:-1])


def build_schedule(name: str, num_timesteps: int, num_steps: int | None = None) -> Schedule:
    """The named schedule over ``num_timesteps``, respaced to ``num_steps`` if given."""
    betas = get_betas(name, num_timesteps)
    if num_steps is None or num_steps == num_timesteps:
        return make_schedule(betas)
    kept = space_timesteps(num_timesteps, num_steps)
    return make_schedule(respaced_betas(betas, kept), timesteps=np.asarray(kept))


def schedule_from_config(diffusion_config, num_steps: int | None = None) -> Schedule:
    """``build_schedule`` from a ``config.diffusion`` block."""
    return build_schedule(diffusion_config.schedule, diffusion_config.num_timesteps, num_steps)
