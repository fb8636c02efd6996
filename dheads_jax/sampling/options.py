"""One value that says how frames are sampled, built once from a config plus overrides.

``SamplingOptions`` is frozen and hashable: it travels whole from the command to the
per-frame scan and is a static argument of the jitted frame step, so jax's own compile
cache is keyed on it. Its defaults are those of ``configs/default.py`` (an export's config
is merged over them when it is read), never restated here.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
from absl import logging

from dheads_jax.diffusion.chain import SAMPLERS, guided_steps
from dheads_jax.diffusion.gaussian import PARAMETRIZATIONS
from dheads_jax.diffusion.schedule import Schedule, build_schedule, get_betas, make_schedule, respaced_betas

# The config.sampling fields a command may override.
OVERRIDABLE = (
    "steps",
    "sampler",
    "eta",
    "audio_guidance",
    "guidance_region",
    "guidance_interval",
    "guidance_grey",
    "shared_noise",
    "stabilize",
    "stabilize_every",
)


@dataclasses.dataclass(frozen=True)
class SamplingOptions:
    """Everything that decides how a video is sampled, apart from the network and inputs.

    Attributes:
      sampler: "ddpm" (official: ancestral with the learned variance) or "ddim".
      steps: reverse steps per frame (respaced from ``num_timesteps``).
      eta: DDIM's noise scale (0 deterministic); unused by "ddpm".
      parametrization: what the network predicts, "eps" (official) or "v" [ours].
      audio_guidance: [ours] classifier-free guidance scale on the audio; 1 is off.
      null_audio: [ours] the per-frame embedding of silence that guidance compares with,
        as a tuple of D floats; None when ``audio_guidance`` is 1.
      shared_noise: [ours] every frame of a video draws frame 0's noise.
      stabilize_every: the official "stabilize" option: N > 0 puts x_Id in the oldest
        motion slot before every frame k > 0 with k % N == 0; 0 is off.
      motion_frames: m_x, the number of previous frames the network sees.
      audio_context: m_y, audio frames on each side of the current one.
      grayscale: motion frames are luma (the model's mc = 1).
      schedule: the noise schedule's name ("cosine" or "linear").
      num_timesteps: T of the training schedule.
      timesteps: [ours] the chain's timesteps on the 0..T-1 grid, increasing, one per step,
        instead of the official respacing; () (the default) respaces. A distilled student
        (run_distill.py) samples on every 2^k-th timestep of its teacher's chain, which
        the official respacing of fewer steps does not give. An override of ``steps`` to
        another count drops them (the official respacing of that count).
      identity_relative: [ours] the network sees x_t - sqrt(abar_t) x_Id (the model's
        ``diffusion.identity_relative``; ``dheads_jax.diffusion.network_input``).
      guidance_region: [ours] () guides the whole frame; a box (top, bottom, left, right in
        fractions of the side) guides only there, with soft edges (``chain.region_weight``).
      guidance_interval: [ours] () guides every step; (lo, hi) guides only the steps whose
        original timestep t has lo <= t / num_timesteps <= hi, the others take one plain
        conditional pass (``chain.guided_steps``).
      guidance_grey: [ours] guide with the channel mean of the two passes' difference.
      identity_mask: [ours] the model's ``diffusion.identity_mask``: () or the box of the
        identity frame that the chain fills with its mean colour (as in training).
    """

    sampler: str
    steps: int
    eta: float
    parametrization: str
    audio_guidance: float
    null_audio: tuple[float, ...] | None
    shared_noise: bool
    stabilize_every: int
    motion_frames: int
    audio_context: int
    grayscale: bool
    schedule: str
    num_timesteps: int
    timesteps: tuple[int, ...] = ()
    identity_relative: bool = False
    guidance_region: tuple[float, ...] = ()
    guidance_interval: tuple[float, ...] = ()
    guidance_grey: bool = False
    identity_mask: tuple[float, ...] = ()

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; expected one of {SAMPLERS}")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"unknown parametrization {self.parametrization!r}; expected one of {PARAMETRIZATIONS}"
            )
        if not 1 <= self.steps <= self.num_timesteps:
            raise ValueError(f"steps must be in 1..{self.num_timesteps}, got {self.steps}")
        if self.audio_guidance != 1.0 and self.null_audio is None:
            raise ValueError(
                f"audio_guidance {self.audio_guidance} needs null_audio (the embedding of silence)"
            )
        if self.guidance_region and len(self.guidance_region) != 4:
            raise ValueError(
                f"guidance_region must be () or (top, bottom, left, right), got {self.guidance_region}"
            )
        if self.guidance_interval and (
            len(self.guidance_interval) != 2
            or not 0.0 <= self.guidance_interval[0] <= self.guidance_interval[1]
        ):
            raise ValueError(
                f"guidance_interval must be () or (lo, hi) with 0 <= lo <= hi, got {self.guidance_interval}"
            )
        if self.timesteps and (
            len(self.timesteps) != self.steps
            or list(self.timesteps) != sorted(set(self.timesteps))
            or not 0 <= self.timesteps[0] <= self.timesteps[-1] < self.num_timesteps
        ):
            raise ValueError(
                f"timesteps must be {self.steps} increasing values in 0..{self.num_timesteps - 1}, "
                f"got {self.timesteps}"
            )

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, **overrides) -> SamplingOptions:
        """The options of an experiment or export config, with ``overrides`` of config.sampling.

        Args:
          config: a config merged over ``configs/default.py`` (its data, diffusion and
            sampling blocks are read).
          **overrides: config.sampling fields (``OVERRIDABLE``) that replace the config's;
            None values are ignored, so unset command-line flags can be passed as they are.

        Returns:
          The options; when audio guidance is on, ``null_audio`` is the silence embedding
          of the config's audio encoder.

        Raises:
          ValueError: an unknown override, sampler or parametrization, or audio guidance
            with an encoder that cannot embed silence here.
        """
        unknown = set(overrides) - set(OVERRIDABLE)
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}; expected some of {OVERRIDABLE}")
        s = config.sampling.to_dict() | {k: v for k, v in overrides.items() if v is not None}
        guidance = float(s["audio_guidance"])
        null_audio = None
        if guidance != 1.0:
            # Imported here: the audio stack (librosa) is needed only for the silence embedding,
            # so a bare accelerator image can build options without it.
            from dheads_jax.data.audio import AudioEncoderSpec

            silence = AudioEncoderSpec.from_data_config(config.data).silence_embedding()
            null_audio = tuple(float(v) for v in np.asarray(silence, np.float32))
        timesteps = tuple(int(t) for t in s["timesteps"])
        if len(timesteps) != int(s["steps"]):
            if timesteps:
                # A distilled student was trained on its own timesteps; another step count
                # samples it on the official respacing, which it never learnt.
                logging.warning(
                    "sampling %d steps instead of the %d this export was trained on (timesteps %s): "
                    "the official respacing of %d steps is used, which a distilled student never saw",
                    int(s["steps"]),
                    len(timesteps),
                    list(timesteps),
                    int(s["steps"]),
                )
            timesteps = ()
        return cls(
            sampler=str(s["sampler"]),
            steps=int(s["steps"]),
            eta=float(s["eta"]),
            parametrization=str(config.diffusion.parametrization),
            audio_guidance=guidance,
            null_audio=null_audio,
            shared_noise=bool(s["shared_noise"]),
            stabilize_every=int(s["stabilize_every"]) if s["stabilize"] else 0,
            motion_frames=int(config.data.motion_frames),
            audio_context=int(config.data.audio_context),
            grayscale=bool(config.data.grayscale_motion),
            schedule=str(config.diffusion.schedule),
            num_timesteps=int(config.diffusion.num_timesteps),
            timesteps=timesteps,
            identity_relative=bool(config.diffusion.identity_relative),
            guidance_region=tuple(float(v) for v in s["guidance_region"]),
            guidance_interval=tuple(float(v) for v in s["guidance_interval"]),
            guidance_grey=bool(s["guidance_grey"]),
            identity_mask=tuple(float(v) for v in config.diffusion.identity_mask),
        )

    def passes_per_frame(self) -> int:
        """Network passes a frame costs: one a step, two on each guided step."""
        if self.audio_guidance == 1.0:
            return self.steps
        if not self.guidance_interval:
            return 2 * self.steps
        timesteps = np.asarray(self.make_schedule().timesteps)
        return self.steps + int(np.sum(guided_steps(timesteps, self.guidance_interval, self.num_timesteps)))

    def replace(self, **changes) -> SamplingOptions:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def make_schedule(self) -> Schedule:
        """The respaced schedule of ``steps`` steps (on ``timesteps`` when given)."""
        if self.timesteps:
            betas = respaced_betas(get_betas(self.schedule, self.num_timesteps), list(self.timesteps))
            return make_schedule(betas, timesteps=np.asarray(self.timesteps))
        return build_schedule(self.schedule, self.num_timesteps, self.steps)
