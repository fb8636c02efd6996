"""Gaussian diffusion math with the paper's names (q_sample, p_mean_variance, ...).

Pure functions over a ``Schedule``; ``t`` below is always the index into the
schedule's arrays (equal to the original timestep when there is no respacing).
Images are NHWC, float32, in [-1, 1]. Model outputs are [B, H, W, 6] = (eps, v).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from dheads_jax.diffusion.schedule import Schedule


def extract(arr: jax.Array, t: jax.Array, ndim: int = 4) -> jax.Array:
    """arr[t] reshaped to broadcast against a rank-``ndim`` batch. t: [B] int."""
    out = jnp.take(arr, t)
    return out.reshape(out.shape + (1,) * (ndim - out.ndim))


def q_sample(s: Schedule, x_start: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """Samples x_t ~ q(x_t | x_0). x_start, noise: [B, H, W, C]; t: [B]."""
    return extract(s.sqrt_alphas_cumprod, t) * x_start + extract(s.sqrt_one_minus_alphas_cumprod, t) * noise


def q_posterior_mean_variance(s: Schedule, x_start, x_t, t):
    """Mean, variance and clipped log variance of q(x_{t-1} | x_t, x_0)."""
    mean = extract(s.posterior_mean_coef1, t) * x_start + extract(s.posterior_mean_coef2, t) * x_t
    return mean, extract(s.posterior_variance, t), extract(s.posterior_log_variance_clipped, t)


def predict_xstart_from_eps(s: Schedule, x_t, t, eps):
    """x0_hat = sqrt(1/abar) x_t - sqrt(1/abar - 1) eps (unclamped)."""
    return extract(s.sqrt_recip_alphas_cumprod, t) * x_t - extract(s.sqrt_recipm1_alphas_cumprod, t) * eps


def predict_eps_from_xstart(s: Schedule, x_t, t, x_start):
    """Inverse of ``predict_xstart_from_eps``."""
    return (extract(s.sqrt_recip_alphas_cumprod, t) * x_t - x_start) / extract(
        s.sqrt_recipm1_alphas_cumprod, t
    )


PARAMETRIZATIONS = ("eps", "v")
MSE_TARGETS = ("eps", "v")


def output_to_eps(s: Schedule, model_output: jax.Array, x_t: jax.Array, t: jax.Array, parametrization: str):
    """The network output as (eps_hat, v): what every loss and sampler step reads.

    ``"eps"`` (the official model): the first half already is eps_hat; returned unchanged.
    ``"v"`` [ours]: the first half is read as v_hat, a prediction of
    v = sqrt(abar) eps - sqrt(1 - abar) x_0, and turned into
    eps_hat = sqrt(1 - abar) x_t + sqrt(abar) v_hat. The losses stay the official ones on
    eps_hat (L_simple = abar |v - v_hat|^2), but x_t reaches eps_hat through a skip
    connection whose weight grows with the noise level, so a network far from convergence
    no longer has to learn the identity map at high noise (see docs/demo/README.md).

    Args:
      s: the schedule whose index ``t`` is (full for training, respaced for sampling).
      model_output: [B, H, W, 2C] network output (first half eps_hat or v_hat, then v).
      x_t: [B, H, W, C] the network's noisy input.
      t: [B] schedule indices.
      parametrization: "eps" or "v".

    Returns:
      [B, H, W, 2C] = (eps_hat, v).
    """
    if parametrization == "eps":
        return model_output
    if parametrization != "v":
        raise ValueError(f"unknown parametrization {parametrization!r}; expected one of {PARAMETRIZATIONS}")
    pred, var = jnp.split(model_output, 2, axis=-1)
    eps = extract(s.sqrt_one_minus_alphas_cumprod, t) * x_t + extract(s.sqrt_alphas_cumprod, t) * pred
    return jnp.concatenate([eps.astype(model_output.dtype), var], axis=-1)


def network_input(
    s: Schedule, x_t: jax.Array, t: jax.Array, identity: jax.Array, relative: bool
) -> jax.Array:
    """What the network sees of x_t: x_t itself, or [ours] x_t - sqrt(abar_t) x_Id.

    With ``relative`` the chain is read as diffusing the difference x_0 - x_Id from the
    identity frame: x_t - sqrt(abar_t) x_Id = sqrt(abar_t) (x_0 - x_Id) + sqrt(1 - abar_t) eps.
    eps is the same in both readings, so an eps network needs nothing else, and a v network
    predicts v of the difference, whose ``output_to_eps`` is taken at this shifted input.
    The chain, its clamp to [-1, 1] and the losses on eps stay in frame space; only the
    network (and a v target, ``v_target`` of x_0 - x_Id) sees the difference. Everywhere
    the identity does not change (background, hair, clothes) the network's answer is then
    0 whatever the face and light look like, which is what lets a model trained on one
    studio wall copy other photos.

    Args:
      s: the schedule whose index ``t`` is; t: [B] indices.
      x_t: [B, H, W, 3]; identity: [B, H, W, 3] in [-1, 1].
      relative: shift (True) or return ``x_t`` unchanged (False, the official network).

    Returns:
      [B, H, W, 3].
    """
    if not relative:
        return x_t
    return x_t - extract(s.sqrt_alphas_cumprod, t) * identity.astype(x_t.dtype)


def v_target(s: Schedule, x_start: jax.Array, noise: jax.Array, t: jax.Array) -> jax.Array:
    """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0, the target of a v-predicting network."""
    return extract(s.sqrt_alphas_cumprod, t) * noise - extract(s.sqrt_one_minus_alphas_cumprod, t) * x_start


def learned_range_log_variance(s: Schedule, v: jax.Array, t: jax.Array) -> jax.Array:
    """log sigma^2 = nu log beta_t + (1 - nu) log beta~_t (clipped), nu = (v + 1) / 2."""
    frac = (v + 1.0) / 2.0
    return frac * extract(s.log_betas, t) + (1.0 - frac) * extract(s.posterior_log_variance_clipped, t)


def p_mean_variance(s: Schedule, model_output, x_t, t, clip_denoised: bool = True):
    """Parameters of p(x_{t-1} | x_t) from the network output.

    Args:
      s: the schedule the chain runs on.
      model_output: [B, H, W, 2C] = (eps, v).
      x_t: [B, H, W, C].
      t: [B] schedule indices.
      clip_denoised: clamp x0_hat to [-1, 1] (the official code always does).

    Returns:
      dict with mean, log_variance, pred_xstart (clamped), eps.
    """
    eps, v = jnp.split(model_output, 2, axis=-1)
    log_variance = learned_range_log_variance(s, v, t)
    pred_xstart = predict_xstart_from_eps(s, x_t, t, eps)
    if clip_denoised:
        pred_xstart = jnp.clip(pred_xstart, -1.0, 1.0)
    mean, _, _ = q_posterior_mean_variance(s, pred_xstart, x_t, t)
    return dict(mean=mean, log_variance=log_variance, pred_xstart=pred_xstart, eps=eps)


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))), elementwise, in nats."""
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + jnp.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * jnp.exp(-logvar2)
    )


def approx_standard_normal_cdf(x):
    """The tanh approximation of the standard normal CDF used by ADM."""
    return 0.5 * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """Log-likelihood of 8-bit images x in [-1, 1] under a discretised Gaussian. Elementwise."""
    centered = x - means
    inv_stdv = jnp.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = jnp.log(jnp.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = jnp.log(jnp.maximum(1.0 - cdf_min, 1e-12))
    log_cdf_delta = jnp.log(jnp.maximum(cdf_plus - cdf_min, 1e-12))
    return jnp.where(x < -0.999, log_cdf_plus, jnp.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


def vb_terms_bpd(s: Schedule, model_output, x_start, x_t, t):
    """One term of the variational bound in bits per dimension, per example [B].

    KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0, the decoder NLL at t = 0.
    """
    true_mean, _, true_log_var = q_posterior_mean_variance(s, x_start, x_t, t)
    out = p_mean_variance(s, model_output, x_t, t)
    axes = tuple(range(1, x_start.ndim))
    kl = normal_kl(true_mean, true_log_var, out["mean"], out["log_variance"]).mean(axes) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x_start, out["mean"], 0.5 * out["log_variance"])
    nll = nll.mean(axes) / math.log(2.0)
    return jnp.where(t == 0, nll, kl)


def box_mask(boxes: jax.Array, height: int, width: int) -> jax.Array:
    """Masks of half-open boxes. boxes: [B, 4] int (top, bottom, left, right) -> [B, H, W, 1]."""
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    b = boxes[:, :, None, None]
    inside = (rows >= b[:, 0]) & (rows < b[:, 1]) & (cols >= b[:, 2]) & (cols < b[:, 3])
    return inside[..., None].astype(jnp.float32)


def lip_loss(eps, eps_pred, boxes):
    """Per-example MSE of eps - eps_hat over all channels inside the mouth box. [B].

    An empty box (which the official code would turn into NaN) gives 0.
    """
    mask = box_mask(boxes, eps.shape[1], eps.shape[2])
    sq = ((eps - eps_pred) ** 2 * mask).sum(axis=(1, 2, 3))
    count = mask.sum(axis=(1, 2, 3)) * eps.shape[-1]
    return sq / jnp.maximum(count, 1.0)


def training_losses(
    s: Schedule,
    model_output,
    x_start,
    x_t,
    t,
    noise,
    boxes,
    lambda_vlb: float,
    lambda_ls: float,
    mse_pair: tuple[jax.Array, jax.Array] | None = None,
):
    """L = L_simple + lambda_vlb L_vlb + lambda_ls L_ls, each per example (docs/method.md, section 3).

    Args:
      s: the full (un-respaced) schedule.
      model_output: [B, H, W, 6] network output (eps, v) at x_t.
      x_start: [B, H, W, 3] clean target frames.
      x_t: [B, H, W, 3] = q_sample(s, x_start, t, noise).
      t: [B] int timesteps.
      noise: [B, H, W, 3] the eps that made x_t.
      boxes: [B, 4] int mouth boxes (top, bottom, left, right), half-open.
      lambda_vlb, lambda_ls: loss weights.
      mse_pair: [ours] (prediction, target) for L_simple and L_ls instead of the official
        (eps_hat, eps), e.g. (v_hat, v) for ``mse_target="v"``; L_vlb is unchanged.

    Returns:
      dict of [B] arrays: loss, simple, vlb, lip.
    """
    eps_pred, v = jnp.split(model_output, 2, axis=-1)
    pred, target = (eps_pred, noise) if mse_pair is None else mse_pair
    simple = ((target - pred) ** 2).mean(axis=(1, 2, 3))
    # Only v learns from the bound: the eps half is frozen (as ADM and the official code).
    frozen = jnp.concatenate([jax.lax.stop_gradient(eps_pred), v], axis=-1)
    vlb = vb_terms_bpd(s, frozen, x_start, x_t, t)
    lip = lip_loss(target, pred, boxes)
    loss = simple + lambda_vlb * vlb + lambda_ls * lip
    return dict(loss=loss, simple=simple, vlb=vlb, lip=lip)


def _nonzero(t: jax.Array) -> jax.Array:
    """1.0 where t > 0, 0.0 at the last step, shaped [B, 1, 1, 1]."""
    return (t != 0).astype(jnp.float32).reshape(-1, 1, 1, 1)


def ddpm_step(s: Schedule, model_output, x_t, t, noise):
    """One ancestral step x_t -> x_{t-1} with the learned variance; no noise at t = 0.

    Args:
      s: the (respaced) schedule; t: [B] indices into it.
      model_output: [B, H, W, 6]; x_t, noise: [B, H, W, 3].

    Returns:
      (x_prev, pred_xstart), both [B, H, W, 3].
    """
    out = p_mean_variance(s, model_output, x_t, t)
    x_prev = out["mean"] + _nonzero(t) * jnp.exp(0.5 * out["log_variance"]) * noise
    return x_prev, out["pred_xstart"]


def ddim_step(s: Schedule, model_output, x_t, t, noise, eta: float = 0.0):
    """One DDIM step (eta = 0 deterministic, eta = 1 DDPM-like variance); no noise at t = 0.

    eps is recomputed from the clamped x0_hat, as in ADM's ``ddim_sample``.
    Returns (x_prev, pred_xstart).
    """
    out = p_mean_variance(s, model_output, x_t, t)
    eps = predict_eps_from_xstart(s, x_t, t, out["pred_xstart"])
    abar = extract(s.alphas_cumprod, t)
    abar_prev = extract(s.alphas_cumprod_prev, t)
    sigma = eta * jnp.sqrt((1 - abar_prev) / (1 - abar)) * jnp.sqrt(1 - abar / abar_prev)
    mean = out["pred_xstart"] * jnp.sqrt(abar_prev) + jnp.sqrt(1 - abar_prev - sigma**2) * eps
    return mean + _nonzero(t) * sigma * noise, out["pred_xstart"]


def dpmpp_2m_step(s: Schedule, model_output, x_t, t, x0_prev):
    """One DPM-Solver++(2M) step x_t -> x_{t-1} on the clamped x0 prediction [ours].

    With alpha = sqrt(abar), sigma = sqrt(1 - abar), lambda = log(alpha / sigma) and
    h = lambda_{t-1} - lambda_t:
    x_{t-1} = (sigma_{t-1} / sigma_t) x_t - alpha_{t-1} (exp(-h) - 1) D, where D is the
    clamped x0_hat at the chain's first step (first order: exactly DDIM with eta 0) and
    (1 + 1/(2r)) x0_hat - 1/(2r) x0_prev after it, r = h_prev / h (second order, multistep).
    At t = 0 it returns the clamped x0_hat, as the other samplers do. Deterministic.

    Args:
      s: the (respaced) schedule; t: [B] indices into it (the scan goes n-1 .. 0).
      model_output: [B, H, W, 6]; x_t: [B, H, W, 3].
      x0_prev: [B, H, W, 3] the x0_hat of the step before (ignored at the first step).

    Returns:
      (x_prev, pred_xstart), both [B, H, W, 3].
    """
    x0 = p_mean_variance(s, model_output, x_t, t)["pred_xstart"]
    last = s.num_steps - 1
    abar = extract(s.alphas_cumprod, t)
    abar_next = extract(s.alphas_cumprod_prev, t)
    abar_before = extract(s.alphas_cumprod, jnp.minimum(t + 1, last))
    lam = lambda a: 0.5 * (jnp.log(a) - jnp.log1p(-a))  # noqa: E731
    h = lam(abar_next) - lam(abar)
    r = (lam(abar) - lam(abar_before)) / h
    second = (t < last)[:, None, None, None]
    d = jnp.where(second, (1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev, x0)
    x_prev = jnp.sqrt((1 - abar_next) / (1 - abar)) * x_t - jnp.sqrt(abar_next) * jnp.expm1(-h) * d
    return jnp.where((t == 0)[:, None, None, None], x0, x_prev), x0
