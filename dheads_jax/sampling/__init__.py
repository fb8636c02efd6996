"""Sampling videos: the options value, the frame-conditioning rules and the frame loop.

The reverse chain of one frame lives with the diffusion code (``dheads_jax.diffusion.chain``);
this package adds what makes a video of frames: ``SamplingOptions`` (how to sample),
``conditioning`` (audio window, motion buffer) and ``video`` (the autoregressive loop).
"""

from dheads_jax.diffusion.chain import (
    frame_keys,
    guided_output,
    guided_steps,
    region_weight,
    sample_frame,
    step_noise,
)
from dheads_jax.sampling.conditioning import (
    audio_window,
    audio_window_indices,
    init_motion_buffer,
    push_motion_frame,
    stabilize_motion_buffer,
)
from dheads_jax.sampling.options import SamplingOptions
from dheads_jax.sampling.video import (
    UNetApply,
    VideoBatch,
    frame_step,
    jitted_frame_step,
    place,
    sample_videos,
    video_frames,
)

__all__ = [
    "SamplingOptions",
    "UNetApply",
    "VideoBatch",
    "audio_window",
    "audio_window_indices",
    "frame_keys",
    "frame_step",
    "guided_output",
    "guided_steps",
    "region_weight",
    "init_motion_buffer",
    "jitted_frame_step",
    "place",
    "push_motion_frame",
    "sample_frame",
    "sample_videos",
    "stabilize_motion_buffer",
    "step_noise",
    "video_frames",
]
