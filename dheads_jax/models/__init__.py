"""Flax modules."""

from dheads_jax.models.unet import UNet, timestep_embedding

__all__ = ["UNet", "timestep_embedding"]
