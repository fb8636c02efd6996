"""The training objective: noise a batch, run the U-Net, sum the three loss terms."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from dheads_jax.diffusion import Schedule, network_input, output_to_eps, q_sample, training_losses, v_target
from dheads_jax.diffusion.gaussian import MSE_TARGETS
from dheads_jax.imaging import motion_transform


def augment_motion(key: jax.Array, motion: jax.Array, max_std: float) -> jax.Array:
    """[ours] Motion frames plus Gaussian noise of a per-example std drawn from U(0, max_std).

    Args:
      key: PRNG key.
      motion: [B, m_x, H, W, mc] motion frames in [-1, 1].
      max_std: the largest standard deviation; 0 returns ``motion`` unchanged.

    Returns:
      [B, m_x, H, W, mc], not clipped.
    """
    if max_std <= 0:
        return motion
    sigma_key, noise_key = jax.random.split(key)
    sigma = max_std * jax.random.uniform(sigma_key, (motion.shape[0],) + (1,) * (motion.ndim - 1))
    return motion + sigma.astype(motion.dtype) * jax.random.normal(noise_key, motion.shape, motion.dtype)


def drop_motion(key: jax.Array, motion: jax.Array, identity: jax.Array, rate: float) -> jax.Array:
    """[ours] Each example's motion frames replaced, with probability ``rate``, by the identity.

    A dropped example looks like the first frame of a video (motion buffer [x_Id, x_Id]), so
    the network has to take the target's mouth from the audio rather than from the frames
    just before it.

    Args:
      key: PRNG key.
      motion: [B, m_x, H, W, mc] motion frames (mc = 1: grayscale).
      identity: [B, H, W, 3] identity frames.
      rate: probability in [0, 1]; 0 returns ``motion`` unchanged.

    Returns:
      [B, m_x, H, W, mc].
    """
    if rate <= 0:
        return motion
    drop = jax.random.bernoulli(key, rate, (motion.shape[0],)).reshape((-1,) + (1,) * (motion.ndim - 1))
    filled = motion_transform(identity, motion.shape[-1] == 1)[:, None].astype(motion.dtype)
    return jnp.where(drop, jnp.broadcast_to(filled, motion.shape), motion)


LOSS_KEYS = ("timesteps", "noise", "dropout", "motion_noise", "motion_dropout")


def loss_keys(rng: jax.Array) -> dict[str, jax.Array]:
    """One independent key per random draw of ``diffusion_loss``.

    The first three are ``jax.random.split(rng, 3)`` (with partitionable threefry,
    ``split(rng, n)[i]`` does not depend on n), so a run without the motion augmentations
    draws the same timesteps, noise and dropout as before they had keys of their own.

    Args:
      rng: the step's key.

    Returns:
      {name: key} for the names of ``LOSS_KEYS``.
    """
    return dict(zip(LOSS_KEYS, jax.random.split(rng, len(LOSS_KEYS)), strict=True))


@dataclasses.dataclass(frozen=True)
class LossOptions:
    """The settings of the training objective, one value (docs/method.md, sections 3 and 9).

    Attributes:
      lambda_vlb, lambda_ls: loss weights (official 1e-4 and 0.2).
      parametrization: what the network's first three channels predict, "eps" (official)
        or "v" [ours]; see ``output_to_eps``.
      mse_target: what L_simple and L_ls compare, "eps" (official: |eps - eps_hat|^2, which
        for a v network is abar_t |v - v_hat|^2 and so all but vanishes at high noise, where
        only the audio can tell the mouth) or "v" [ours]: |v - v_hat|^2, which weights the
        x_0 error by SNR + 1 instead of SNR; needs ``parametrization="v"``.
      motion_noise: [ours] if > 0, each example's motion frames get Gaussian noise of a
        standard deviation drawn uniformly from [0, motion_noise] (``augment_motion``).
      motion_dropout: [ours] probability of replacing an example's motion frames by the
        identity (``drop_motion``), applied after the noise.
      identity_relative: [ours] the network sees x_t - sqrt(abar_t) x_Id and a v target is
        that of x_0 - x_Id (``network_input``); the losses on eps are unchanged.
    """

    lambda_vlb: float = 1e-4
    lambda_ls: float = 0.2
    parametrization: str = "eps"
    mse_target: str = "eps"
    motion_noise: float = 0.0
    motion_dropout: float = 0.0
    identity_relative: bool = False

    def __post_init__(self):
        if self.mse_target not in MSE_TARGETS:
            raise ValueError(f"unknown mse_target {self.mse_target!r}; expected one of {MSE_TARGETS}")
        if self.mse_target == "v" and self.parametrization != "v":
            raise ValueError(
                'mse_target "v" needs parametrization "v" (v from an eps network divides by sqrt(abar))'
            )

    @classmethod
    def from_config(cls, config) -> LossOptions:
        """The objective of an experiment config (its diffusion and train blocks)."""
        d, t = config.diffusion, config.train
        return cls(
            lambda_vlb=float(d.lambda_vlb),
            lambda_ls=float(d.lambda_ls),
            parametrization=str(d.parametrization),
            mse_target=str(d.mse_target),
            motion_noise=float(t.motion_noise),
            motion_dropout=float(t.motion_dropout),
            identity_relative=bool(d.identity_relative),
        )


def diffusion_loss(
    params,
    model: nn.Module,
    schedule: Schedule,
    batch: dict[str, jax.Array],
    rng: jax.Array,
    options: LossOptions = LossOptions(),
    train: bool = True,
):
    """Mean loss over a batch and its terms.

    Args:
      params: the U-Net parameters.
      model: the U-Net module.
      schedule: the full training schedule (T steps).
      batch: 'target' [B,H,W,3], 'identity' [B,H,W,3], 'motion' [B,M,H,W,mc],
        'audio' [B,2m_y+1,D] float32, 'mouth_box' [B,4] int32.
      rng: key for the timesteps, the noise, dropout and the motion augmentations
        (``loss_keys``).
      options: the objective's settings.
      train: dropout on.

    Returns:
      (loss, metrics) with scalar loss and the batch means of loss, simple, vlb, lip.
    """
    o = options
    x_start = batch["target"]
    keys = loss_keys(rng)
    t = jax.random.randint(keys["timesteps"], (x_start.shape[0],), 0, schedule.num_steps)
    noise = jax.random.normal(keys["noise"], x_start.shape, jnp.float32)
    x_t = q_sample(schedule, x_start, t, noise)
    # Keys of their own, independent of the noise and dropout keys, so turning the
    # augmentations on leaves the timesteps, noise and dropout of a step unchanged.
    motion = augment_motion(keys["motion_noise"], batch["motion"], o.motion_noise)
    motion = drop_motion(keys["motion_dropout"], motion, batch["identity"], o.motion_dropout)
    x_in = network_input(schedule, x_t, t, batch["identity"], o.identity_relative)
    variables, rngs, timesteps = {"params": params}, {"dropout": keys["dropout"]}, schedule.timesteps[t]
    out = model.apply(
        variables, x_in, timesteps, batch["identity"], motion, batch["audio"], train=train, rngs=rngs
    )
    mse_pair = None
    if o.mse_target == "v":
        v_of = x_start - batch["identity"] if o.identity_relative else x_start
        mse_pair = (out[..., : x_start.shape[-1]].astype(jnp.float32), v_target(schedule, v_of, noise, t))
    out = output_to_eps(schedule, out, x_in, t, o.parametrization)
    lambdas = (o.lambda_vlb, o.lambda_ls)
    terms = training_losses(
        schedule, out, x_start, x_t, t, noise, batch["mouth_box"], *lambdas, mse_pair=mse_pair
    )
    metrics = {k: v.mean() for k, v in terms.items()}
    return metrics["loss"], metrics
