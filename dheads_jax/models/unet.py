"""The Diffused Heads U-Net: ADM-style, NHWC, with AdaGN timestep and audio conditioning.

Module names follow the official PyTorch state dict (``input_blocks_7_1`` is
``input_blocks.7.1``, ``in_layers_2`` is ``in_layers.2``) so that a checkpoint maps
tensor by tensor. See docs/method.md, section 2 for the exact block order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dheads_jax import imaging

Dtype = Any

# PyTorch's GroupNorm epsilon; Flax defaults to 1e-6.
GN_EPSILON = 1e-5


def timestep_embedding(timesteps: jax.Array, dim: int, max_period: float = 1e4) -> jax.Array:
    """Sinusoidal timestep features, cos first, as the official code computes them.

    The frequencies are ``exp(-ln(max_period) * k / (2 * dim))`` for ``k = 0..dim/2 - 1``;
    the divisor ``2 * dim`` (ADM uses ``dim / 2``) is a quirk of the released model.

    Args:
      timesteps: [B] timesteps on the ORIGINAL 0..T-1 grid (int or float).
      dim: the embedding width (the model's base channel count).
      max_period: the period of the slowest frequency term.

    Returns:
      [B, dim] float32.
    """
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (2 * dim))
    args = timesteps.astype(jnp.float32)[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def downsample(x: jax.Array) -> jax.Array:
    """2x2 average pool, stride 2. x: [B, H, W, C]."""
    return nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))


def upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour upsampling by 2. x: [B, H, W, C]."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def group_norm(x: jax.Array, name: str, num_groups: int, dtype: Dtype, param_dtype: Dtype):
    """GroupNorm computed in float32 (as ADM's GroupNorm32), cast back to ``dtype``.

    Must be called inside a compact method: the module it makes is named ``name``
    there.
    """
    y = nn.GroupNorm(
        num_groups=num_groups,
        epsilon=GN_EPSILON,
        dtype=jnp.float32,
        param_dtype=param_dtype,
        name=name,
    )(x.astype(jnp.float32))
    return y.astype(dtype)


class ResBlock(nn.Module):
    """Residual block with timestep then audio scale/shift (both in ``1 +`` form).

    Order (docs/method.md, section 2): GN, SiLU, [resample], conv; timestep scale/shift after
    the second GN; audio scale/shift; SiLU, dropout, zero-initialised conv; skip.
    """

    out_channels: int
    dropout: float = 0.0
    up: bool = False
    down: bool = False
    num_groups: int = 32
    zero_init_audio: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, t_emb, a_emb, train: bool):
        """x: [B, H, W, C_in]; t_emb, a_emb: [B, E]. Returns [B, H', W', out_channels]."""
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        gn = dict(num_groups=self.num_groups, **kw)
        h = nn.silu(group_norm(x, "in_layers_0", **gn))
        if self.up or self.down:
            resample = upsample if self.up else downsample
            h, x = resample(h), resample(x)
        h = nn.Conv(self.out_channels, (3, 3), padding=1, name="in_layers_2", **kw)(h)

        t_scale, t_shift = jnp.split(
            nn.Dense(2 * self.out_channels, name="t_emb_layers_1", **kw)(nn.silu(t_emb)), 2, axis=-1
        )
        h = group_norm(h, "out_layers_0", **gn)
        h = h * (1 + t_scale[:, None, None]) + t_shift[:, None, None]
        a_scale, a_shift = jnp.split(
            nn.Dense(
                2 * self.out_channels,
                kernel_init=nn.initializers.zeros if self.zero_init_audio else nn.initializers.lecun_normal(),
                name="audio_emb_layers_1",
                **kw,
            )(nn.silu(a_emb)),
            2,
            axis=-1,
        )
        h = h * (1 + a_scale[:, None, None]) + a_shift[:, None, None]
        h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
        h = nn.Conv(
            self.out_channels,
            (3, 3),
            padding=1,
            kernel_init=nn.initializers.zeros,
            name="out_layers_3",
            **kw,
        )(h)

        if x.shape[-1] != self.out_channels:
            x = nn.Conv(self.out_channels, (1, 1), name="skip_connection", **kw)(x)
        return x + h


ATTENTION_IMPLEMENTATIONS = ("einsum", "dot_product", "cudnn")
# Named jax.checkpoint_policies a rematerialised model may save by (model.remat_policy).
REMAT_POLICIES = (
    "nothing_saveable",
    "everything_saveable",
    "dots_saveable",
    "checkpoint_dots",
    "dots_with_no_batch_dims_saveable",
    "checkpoint_dots_with_no_batch_dims",
)


def remat_policy(name: str):
    """The ``jax.checkpoint_policies`` member ``name``; "" is None (save only block inputs)."""
    if not name:
        return None
    if name not in REMAT_POLICIES:
        raise ValueError(f"unknown remat policy {name!r}; use one of {REMAT_POLICIES} or ''")
    return getattr(jax.checkpoint_policies, name)


class AttentionBlock(nn.Module):
    """Spatial self-attention, no positional encoding, ``head_channels`` per head.

    The fused projection is laid out per head as [q, k, v] (the official "legacy"
    layout), so official ``qkv`` weights load without permutation.
    """

    head_channels: int = 64
    num_groups: int = 32
    implementation: str = "einsum"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        """x: [B, H, W, C] -> [B, H, W, C]."""
        b, hgt, wid, c = x.shape
        heads = c // self.head_channels
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = group_norm(x, "norm", self.num_groups, **kw).reshape(b, hgt * wid, c)
        qkv = nn.Dense(3 * c, name="qkv", **kw)(h).reshape(b, hgt * wid, heads, 3 * self.head_channels)
        q, k, v = jnp.split(qkv, 3, axis=-1)
        if self.implementation in ("dot_product", "cudnn"):
            # jax.nn.dot_product_attention: XLA's own lowering ("dot_product"), or cuDNN's fused
            # flash-attention kernel ("cudnn": NVIDIA GPUs, bf16 or fp16 inputs only), which
            # never writes the [B, heads, HW, HW] logits to memory.
            a = jax.nn.dot_product_attention(
                q,
                k,
                v,
                scale=1.0 / math.sqrt(self.head_channels),
                implementation="cudnn" if self.implementation == "cudnn" else None,
            )
        elif self.implementation == "einsum":
            scale = 1.0 / math.sqrt(math.sqrt(self.head_channels))
            logits = jnp.einsum("bthc,bshc->bhts", q * scale, k * scale)
            weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
            a = jnp.einsum("bhts,bshc->bthc", weights, v)
        else:
            raise ValueError(
                f"unknown attention implementation {self.implementation!r}; use one of {ATTENTION_IMPLEMENTATIONS}"
            )
        a = a.reshape(b, hgt * wid, c)
        out = nn.Dense(c, kernel_init=nn.initializers.zeros, name="proj_out", **kw)(a)
        return x + out.reshape(b, hgt, wid, c)


def motion_mask_box(fractions: Sequence[float], size: int) -> tuple[int, int, int, int]:
    """Pixel box (top, bottom, left, right), half-open, of ``fractions`` of a ``size`` image."""
    return imaging.box_pixels(fractions, size, "motion_mask")


def mask_motion(motion: jax.Array, fractions: Sequence[float]) -> jax.Array:
    """Motion frames [B, M, H, W, mc] with the box ``fractions`` of each frame set to 0."""
    return imaging.blank_box(motion, fractions, "motion_mask")


class UNet(nn.Module):
    """The Diffused Heads denoiser.

    Attributes:
      model_channels: base width C (256 in the released model).
      channel_mult: width multiplier per resolution level.
      num_res_blocks: residual blocks per level on the way down.
      attention_resolutions: feature-map sizes in pixels that get attention.
      head_channels: channels per attention head.
      dropout: dropout rate inside residual blocks.
      out_channels: 6 = eps (3) then v (3) for the learned-range variance.
      resblock_updown: resample inside residual blocks (True) or by bare pool/nearest.
      num_groups: GroupNorm groups.
      motion_mask: [ours] () (official) or (top, bottom, left, right) fractions of the image
        side: that box of every motion frame is set to 0 before it enters the network, in
        training and sampling alike, so the mouth cannot be copied from the previous frames
        and has to come from the audio and the identity (see ``mask_motion``).
      dtype: computation dtype; param_dtype: parameter dtype.
    """

    model_channels: int = 256
    channel_mult: Sequence[int] = (1, 2, 3)
    num_res_blocks: int = 2
    attention_resolutions: Sequence[int] = (32,)
    head_channels: int = 64
    dropout: float = 0.1
    out_channels: int = 6
    resblock_updown: bool = True
    num_groups: int = 32
    motion_mask: Sequence[float] = ()
    zero_init_audio: bool = False
    attention: str = "einsum"
    remat: bool = False
    remat_policy: str = ""
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_t, timesteps, identity, motion, audio, *, train: bool = False):
        """Predicts eps and the variance interpolation v.

        Args:
          x_t: [B, H, W, 3] noisy target frame.
          timesteps: [B] original (un-respaced) timesteps, 0..T-1.
          identity: [B, H, W, 3] identity frame in [-1, 1].
          motion: [B, M, H, W, mc] previous frames, oldest first (mc = 3 or 1).
          audio: [B, 2 m_y + 1, D] per-frame audio embeddings of frames k-m_y..k+m_y.
          train: enables dropout (needs a 'dropout' rng).

        Returns:
          [B, H, W, out_channels] float32.
        """
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        c = self.model_channels
        b, size = x_t.shape[0], x_t.shape[1]

        t_emb = timestep_embedding(timesteps, c)
        t_emb = nn.Dense(4 * c, name="time_embed_fc_0", **kw)(t_emb)
        t_emb = nn.Dense(4 * c, name="time_embed_fc_2", **kw)(nn.silu(t_emb))
        a_emb = nn.Dense(4 * c, name="audio_embed_0", **kw)(audio.reshape(b, -1).astype(self.dtype))
        a_emb = nn.Dense(4 * c, name="audio_embed_2", **kw)(nn.silu(a_emb))

        if self.motion_mask:
            motion = mask_motion(motion, self.motion_mask)
        m = jnp.moveaxis(motion, 1, 3).reshape(*motion.shape[0:1], *motion.shape[2:4], -1)
        h = jnp.concatenate([x_t, m, identity], axis=-1).astype(self.dtype)

        # Rematerialised residual and attention blocks keep only their inputs (and what the
        # named policy saves, e.g. the results of matmuls and convs) for the backward pass.
        policy = remat_policy(self.remat_policy)
        block = nn.remat(ResBlock, static_argnums=(4,), policy=policy) if self.remat else ResBlock
        attention = nn.remat(AttentionBlock, policy=policy) if self.remat else AttentionBlock

        def res(out_ch, name, **updown):
            blk = block(
                out_ch,
                self.dropout,
                num_groups=self.num_groups,
                zero_init_audio=self.zero_init_audio,
                name=name,
                **updown,
                **kw,
            )
            return lambda z: blk(z, t_emb, a_emb, train)

        def attn(name):
            return attention(self.head_channels, self.num_groups, self.attention, name=name, **kw)

        h = nn.Conv(c * self.channel_mult[0], (3, 3), padding=1, name="input_blocks_0_0", **kw)(h)
        skips = [h]
        ds, idx = 1, 1
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.num_res_blocks):
                h = res(mult * c, f"input_blocks_{idx}_0")(h)
                if size // ds in self.attention_resolutions:
                    h = attn(f"input_blocks_{idx}_1")(h)
                skips.append(h)
                idx += 1
            if level != len(self.channel_mult) - 1:
                if self.resblock_updown:
                    h = res(h.shape[-1], f"input_blocks_{idx}_0", down=True)(h)
                else:
                    h = downsample(h)
                skips.append(h)
                ds *= 2
                idx += 1

        h = res(h.shape[-1], "middle_block_0")(h)
        h = attn("middle_block_1")(h)
        h = res(h.shape[-1], "middle_block_2")(h)

        idx = 0
        for level, mult in reversed(list(enumerate(self.channel_mult))):
            for i in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = res(mult * c, f"output_blocks_{idx}_0")(h)
                sub = 1
                if size // ds in self.attention_resolutions:
                    h = attn(f"output_blocks_{idx}_1")(h)
                    sub = 2
                if level and i == self.num_res_blocks:
                    if self.resblock_updown:
                        h = res(h.shape[-1], f"output_blocks_{idx}_{sub}", up=True)(h)
                    else:
                        h = upsample(h)
                    ds //= 2
                idx += 1

        h = nn.silu(group_norm(h, "out_0", self.num_groups, **kw))
        h = nn.Conv(
            self.out_channels, (3, 3), padding=1, kernel_init=nn.initializers.zeros, name="out_2", **kw
        )(h)
        return h.astype(jnp.float32)
