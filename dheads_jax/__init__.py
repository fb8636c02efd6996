"""dheads_jax: Diffused Heads talking-face diffusion in JAX/Flax."""

__version__ = "0.1.0"
