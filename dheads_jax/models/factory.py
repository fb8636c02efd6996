"""Builds the typed model from an experiment config; the model never sees the config."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from dheads_jax.models.unet import UNet


def build_unet(config: ml_collections.ConfigDict, dtype: str | None = None) -> UNet:
    """The U-Net of ``config.model``; ``dtype`` overrides the compute dtype."""
    m = config.model
    return UNet(
        model_channels=m.model_channels,
        channel_mult=tuple(m.channel_mult),
        num_res_blocks=m.num_res_blocks,
        attention_resolutions=tuple(m.attention_resolutions),
        head_channels=m.head_channels,
        dropout=m.dropout,
        out_channels=m.out_channels,
        resblock_updown=m.resblock_updown,
        num_groups=m.num_groups,
        motion_mask=tuple(m.motion_mask),
        zero_init_audio=bool(m.zero_init_audio),
        attention=m.attention,
        remat=bool(m.remat),
        remat_policy=m.remat_policy,
        dtype=jnp.dtype(dtype or m.dtype),
        param_dtype=jnp.dtype(m.param_dtype),
    )


def motion_channels(config: ml_collections.ConfigDict) -> int:
    """Channels per motion frame: 1 for grayscale motion, else 3."""
    return 1 if config.data.grayscale_motion else 3


def input_channels(config: ml_collections.ConfigDict) -> int:
    """Channels of the U-Net's first conv: x_t, the motion frames and the identity."""
    return 3 + config.data.motion_frames * motion_channels(config) + 3


def input_specs(config: ml_collections.ConfigDict, batch: int) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes of the model inputs at ``batch`` (keyword names of ``UNet.__call__``)."""
    d = config.data
    s = d.image_size
    f32 = jnp.float32
    return dict(
        x_t=jax.ShapeDtypeStruct((batch, s, s, 3), f32),
        timesteps=jax.ShapeDtypeStruct((batch,), jnp.int32),
        identity=jax.ShapeDtypeStruct((batch, s, s, 3), f32),
        motion=jax.ShapeDtypeStruct((batch, d.motion_frames, s, s, motion_channels(config)), f32),
        audio=jax.ShapeDtypeStruct((batch, 2 * d.audio_context + 1, d.audio_dim), f32),
    )


def dummy_inputs(config: ml_collections.ConfigDict, batch: int) -> dict[str, jax.Array]:
    """Zeros of the shapes in ``input_specs``."""
    return {k: jnp.zeros(v.shape, v.dtype) for k, v in input_specs(config, batch).items()}


def param_shapes(config: ml_collections.ConfigDict):
    """Parameter shapes (``jax.ShapeDtypeStruct`` pytree) of the model, without allocating."""
    model = build_unet(config)
    init = lambda: model.init(jax.random.key(0), **dummy_inputs(config, 1))  # noqa: E731
    return jax.eval_shape(init)["params"]
