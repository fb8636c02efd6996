"""Diffusion schedules, losses and single sampling steps."""

from dheads_jax.diffusion.gaussian import (
    box_mask,
    ddim_step,
    ddpm_step,
    lip_loss,
    network_input,
    output_to_eps,
    p_mean_variance,
    q_posterior_mean_variance,
    q_sample,
    training_losses,
    v_target,
    vb_terms_bpd,
)
from dheads_jax.diffusion.schedule import (
    Schedule,
    build_schedule,
    make_schedule,
    schedule_from_config,
    space_timesteps,
)

__all__ = [
    "Schedule",
    "box_mask",
    "build_schedule",
    "ddim_step",
    "ddpm_step",
    "lip_loss",
    "make_schedule",
    "network_input",
    "output_to_eps",
    "p_mean_variance",
    "q_posterior_mean_variance",
    "q_sample",
    "schedule_from_config",
    "space_timesteps",
    "training_losses",
    "v_target",
    "vb_terms_bpd",
]
