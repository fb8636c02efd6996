"""A PyTorch Diffused Heads U-Net with the official tensor names, for parity tests and benchmarks.

Written from docs/method.md, section 2 (this project's reading of the authors' model), NCHW, with
the call of the authors' model: ``model(x, timesteps, x_cond, motion_frames, audio_emb)``
where ``motion_frames`` [B, m_x * mc, H, W] holds the motion frames oldest first on
channels and ``audio_emb`` [B, 2 m_y + 1, D] the audio window. Its ``state_dict`` has
exactly the names and shapes of the released model at the default sizes. Also here: the
official respaced ancestral sampler for one frame (docs/method.md, sections 3 and 6), for the
sampling-chain parity test and the speed comparison.

Needs PyTorch (the torch extra); used by the converter's parity tests and the benchmarks
(benchmarks/convert_speed.py, the PyTorch rows of benchmarks/accelerator.py), never by the
rest of the library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class TimestepEmbedding(nn.Module):
    """Sinusoidal features (cos first, frequencies exp(-ln(1e4) k / (2 C))), then an MLP."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.fc = nn.Sequential(
            nn.Linear(channels, 4 * channels), nn.SiLU(), nn.Linear(4 * channels, 4 * channels)
        )

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        k = torch.arange(self.channels // 2, dtype=torch.float32, device=timesteps.device)
        freqs = torch.exp(-math.log(1e4) * k / (2 * self.channels))
        args = timesteps.float()[:, None] * freqs[None]
        return self.fc(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


def _resample(x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "up":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    if mode == "down":
        return F.avg_pool2d(x, kernel_size=2, stride=2)
    return x


class ResBlock(nn.Module):
    """GN, SiLU, [resample], conv; GN then timestep and audio scale/shift; SiLU, dropout, conv; skip."""

    def __init__(
        self,
        channels: int,
        out_channels: int,
        emb_channels: int,
        dropout: float,
        resample: str = "",
        num_groups: int = 32,
    ):
        super().__init__()
        self.resample = resample
        self.in_layers = nn.Sequential(
            nn.GroupNorm(num_groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.t_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.audio_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(num_groups, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = (
            nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, a_emb: torch.Tensor) -> torch.Tensor:
        h = _resample(self.in_layers[1](self.in_layers[0](x)), self.resample)
        h = self.in_layers[2](h)
        x = _resample(x, self.resample)
        t_scale, t_shift = self.t_emb_layers(t_emb)[:, :, None, None].chunk(2, dim=1)
        h = self.out_layers[0](h) * (1 + t_scale) + t_shift
        a_scale, a_shift = self.audio_emb_layers(a_emb)[:, :, None, None].chunk(2, dim=1)
        h = h * (1 + a_scale) + a_shift
        h = self.out_layers[3](self.out_layers[2](self.out_layers[1](h)))
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over positions; fused 1x1 Conv1d projection laid out per head as [q, k, v]."""

    def __init__(self, channels: int, head_channels: int, num_groups: int = 32):
        super().__init__()
        self.heads = channels // head_channels
        self.norm = nn.GroupNorm(num_groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, a_emb: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        flat = x.reshape(b, c, height * width)
        qkv = self.qkv(self.norm(flat)).reshape(b * self.heads, 3 * c // self.heads, height * width)
        q, k, v = qkv.chunk(3, dim=1)
        scale = (c // self.heads) ** -0.25
        logits = torch.einsum("nct,ncs->nts", q * scale, k * scale)
        weights = torch.softmax(logits.float(), dim=-1).to(v.dtype)
        a = torch.einsum("nts,ncs->nct", weights, v).reshape(b, c, height * width)
        return (flat + self.proj_out(a)).reshape(b, c, height, width)


class CondSequential(nn.Sequential):
    """Layers that all take (x, t_emb, a_emb); children named 0, 1, 2 as in the official model."""

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, a_emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, t_emb, a_emb)
        return x


class ReferenceUNet(nn.Module):
    """The Diffused Heads U-Net in PyTorch; defaults are the released CREMA model (215,748,614 params)."""

    def __init__(
        self,
        image_size: int = 128,
        model_channels: int = 256,
        channel_mult: Sequence[int] = (1, 2, 3),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (32,),
        head_channels: int = 64,
        dropout: float = 0.1,
        out_channels: int = 6,
        motion_frames: int = 2,
        motion_channels: int = 3,
        audio_context: int = 2,
        audio_dim: int = 256,
        num_groups: int = 32,
    ):
        super().__init__()
        c = model_channels
        emb = 4 * c
        in_channels = 3 + motion_frames * motion_channels + 3
        self.time_embed = TimestepEmbedding(c)
        self.audio_embed = nn.Sequential(
            nn.Linear((2 * audio_context + 1) * audio_dim, emb), nn.SiLU(), nn.Linear(emb, emb)
        )
        ch = c * channel_mult[0]
        self.input_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skips, size = [ch], image_size
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, mult * c, emb, dropout, num_groups=num_groups)]
                ch = mult * c
                if size in attention_resolutions:
                    layers.append(AttentionBlock(ch, head_channels, num_groups))
                self.input_blocks.append(CondSequential(*layers))
                skips.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(
                    CondSequential(ResBlock(ch, ch, emb, dropout, resample="down", num_groups=num_groups))
                )
                skips.append(ch)
                size //= 2
        self.middle_block = CondSequential(
            ResBlock(ch, ch, emb, dropout, num_groups=num_groups),
            AttentionBlock(ch, head_channels, num_groups),
            ResBlock(ch, ch, emb, dropout, num_groups=num_groups),
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), mult * c, emb, dropout, num_groups=num_groups)]
                ch = mult * c
                if size in attention_resolutions:
                    layers.append(AttentionBlock(ch, head_channels, num_groups))
                if level and i == num_res_blocks:
                    layers.append(ResBlock(ch, ch, emb, dropout, resample="up", num_groups=num_groups))
                    size *= 2
                self.output_blocks.append(CondSequential(*layers))
        self.out = nn.Sequential(
            nn.GroupNorm(num_groups, ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1)
        )

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        x_cond: torch.Tensor,
        motion_frames: torch.Tensor,
        audio_emb: torch.Tensor,
    ) -> torch.Tensor:
        """x, x_cond: [B, 3, H, W]; motion_frames: [B, m_x * mc, H, W]; audio_emb: [B, 2 m_y + 1, D].

        Returns [B, 6, H, W]: eps then v.
        """
        t_emb = self.time_embed(timesteps)
        a_emb = self.audio_embed(audio_emb.reshape(audio_emb.shape[0], -1))
        h = torch.cat([torch.cat([x, motion_frames], dim=1), x_cond], dim=1)
        h = self.input_blocks[0](h)
        hs = [h]
        for block in self.input_blocks[1:]:
            h = block(h, t_emb, a_emb)
            hs.append(h)
        h = self.middle_block(h, t_emb, a_emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), t_emb, a_emb)
        return self.out(h)


def from_config(config) -> ReferenceUNet:
    """The reference U-Net of a dheads_jax experiment config (``config.model`` and ``config.data``)."""
    m, d = config.model, config.data
    return ReferenceUNet(
        image_size=d.image_size,
        model_channels=m.model_channels,
        channel_mult=tuple(m.channel_mult),
        num_res_blocks=m.num_res_blocks,
        attention_resolutions=tuple(m.attention_resolutions),
        head_channels=m.head_channels,
        dropout=m.dropout,
        out_channels=m.out_channels,
        motion_frames=d.motion_frames,
        motion_channels=1 if d.grayscale_motion else 3,
        audio_context=d.audio_context,
        audio_dim=d.audio_dim,
        num_groups=m.num_groups,
    )


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0, gain: float = 1.0) -> nn.Module:
    """Random non-zero weights everywhere (also where training starts from zero).

    Weights ~ N(0, gain^2 / fan_in), biases ~ N(0, 0.1^2), GroupNorm scales ~ 1 + N(0, 0.1^2):
    activations stay of order one, so an absolute tolerance means something.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.GroupNorm):
            module.weight.copy_(1 + 0.1 * torch.randn(module.weight.shape, generator=gen))
            module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
        elif isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * gain / math.sqrt(fan_in))
            module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
    return model


def respaced_coefficients(num_steps: int, num_timesteps: int = 1000) -> dict[str, np.ndarray]:
    """The official sampler's per-step arrays for a cosine schedule respaced to ``num_steps``.

    Written independently of ``dheads_jax.diffusion`` from docs/method.md, sections 3 and 6, in float64.
    """

    def abar_fn(t):
        return np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2

    i = np.arange(num_timesteps, dtype=np.float64)
    betas = np.minimum(1 - abar_fn((i + 1) / num_timesteps) / abar_fn(i / num_timesteps), 0.999)
    abar_full = np.cumprod(1 - betas)
    stride = (num_timesteps - 1) / max(num_steps - 1, 1)
    timesteps, cur = [], 0.0
    for _ in range(num_steps):
        timesteps.append(round(cur))
        cur += stride
    kept = abar_full[timesteps]
    betas = 1 - kept / np.concatenate([[1.0], kept[:-1]])
    abar = np.cumprod(1 - betas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    beta_tilde = betas * (1 - abar_prev) / (1 - abar)
    return dict(
        timesteps=np.asarray(timesteps),
        log_beta=np.log(betas),
        log_beta_tilde_clipped=np.log(np.concatenate([beta_tilde[1:2], beta_tilde[1:]])),
        coef1_x0=np.sqrt(1 / abar),
        coef2_x0=np.sqrt(1 / abar - 1),
        coef1_q=betas * np.sqrt(abar_prev) / (1 - abar),
        coef2_q=(1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar),
    )


@torch.no_grad()
def sample_frame(
    model: nn.Module,
    coefficients: dict[str, np.ndarray],
    x_T: torch.Tensor,
    noises: Sequence[torch.Tensor],
    x_cond: torch.Tensor,
    motion_frames: torch.Tensor,
    audio_emb: torch.Tensor,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The official reverse chain for one frame: ancestral steps with the learned-range variance.

    Args:
      model: the U-Net (called as the authors' model).
      coefficients: ``respaced_coefficients(n)``.
      x_T: [B, 3, H, W] initial noise.
      noises: n tensors [B, 3, H, W]; ``noises[j]`` is added at schedule index j (none at j = 0).
      x_cond, motion_frames, audio_emb: as ``ReferenceUNet.forward``.

    Returns:
      (x_0, the n states after each step in the order taken).
    """
    c = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in coefficients.items() if k != "timesteps"}
    batch = x_T.shape[0]
    x = x_T
    trajectory = []
    for j in reversed(range(len(coefficients["timesteps"]))):
        t = torch.full((batch,), int(coefficients["timesteps"][j]), dtype=torch.long)
        eps, v = model(x, t, x_cond, motion_frames, audio_emb).chunk(2, dim=1)
        nu = (v + 1) / 2
        log_var = nu * c["log_beta"][j] + (1 - nu) * c["log_beta_tilde_clipped"][j]
        x0 = (c["coef1_x0"][j] * x - c["coef2_x0"][j] * eps).clamp(-1, 1)
        mean = c["coef1_q"][j] * x0 + c["coef2_q"][j] * x
        x = mean + torch.exp(0.5 * log_var) * noises[j] if j > 0 else mean
        trajectory.append(x)
    return x, trajectory
