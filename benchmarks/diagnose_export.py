"""What a trained export has learned, measured on one training clip (the demo's diagnostics).

  python -m benchmarks.diagnose_export --export=WORKDIR/export --dataset=DIR

Prints and writes to ``--output``, for frame 20 of the first training clip (identity = frame
50, ground-truth motion frames, so no autoregressive drift):
  - the slope of eps_hat regressed on eps at several t (1.0 = the noise fully predicted);
  - the PSNR of one teacher-forced sampled frame for DDPM 50 and DDIM 10;
  - how much the predicted x0 in the mouth box changes when the audio window is replaced
    by silence, or the motion frames by the identity, against its error there (mean
    absolute values on the [-1, 1] scale, over 9 frames).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from benchmarks import common
from dheads_jax import export, sampling
from dheads_jax.data import reader
from dheads_jax.diffusion import output_to_eps, schedule_from_config
from dheads_jax.imaging import from_uint8
from dheads_jax.models import factory

flags.DEFINE_string("export", None, "Export folder.", required=True)
flags.DEFINE_string("dataset", None, "Prepared dataset folder (its train split).", required=True)
flags.DEFINE_string("output", common.result_path("diagnose_export"), "The result table.")
FLAGS = flags.FLAGS


def psnr(a, b) -> float:
    return float(10 * np.log10(4.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def main() -> common.Lines:
    config, params, _ = export.load_export(FLAGS.export)
    par = config.diffusion.parametrization
    apply_fn = sampling.UNetApply(factory.build_unet(config))
    full = schedule_from_config(config.diffusion)
    abar = np.asarray(full.alphas_cumprod, np.float64)
    clip = reader.load_clips(FLAGS.dataset, "train", limit=1)[0]
    frames = from_uint8(clip.frames)
    rng = np.random.default_rng(0)

    @jax.jit
    def eps_hat(x_t, t, identity, motion, audio):
        out = apply_fn(params, x_t, t, identity, motion, audio)
        return output_to_eps(full, out, x_t, t, par)[..., :3]

    def inputs(k):
        return frames[k][None], frames[50][None], frames[k - 2 : k][None], clip.audio[k - 2 : k + 3][None]

    out = common.start_table()
    out(f"export {FLAGS.export} (parametrization {par}), clip {clip.clip_id}")
    target, identity, motion, audio = inputs(20)
    for t in (100, 300, 500, 700, 900, 999):
        eps = rng.standard_normal(target.shape).astype(np.float32)
        x_t = np.sqrt(abar[t]) * target + np.sqrt(1 - abar[t]) * eps
        e = np.asarray(eps_hat(x_t.astype(np.float32), jnp.array([t]), identity, motion, audio))
        out(f"  t={t:4d}: slope of eps_hat on eps {np.sum(e * eps) / np.sum(eps * eps):.3f}")

    keys = sampling.frame_keys(jax.random.key(0), jnp.array([0]), 0)
    for steps, sampler in ((50, "ddpm"), (10, "ddim")):
        options = sampling.SamplingOptions.from_config(
            config, steps=steps, sampler=sampler, audio_guidance=1.0
        )
        x0 = sampling.sample_frame(
            apply_fn, params, options.make_schedule(), keys, (identity, motion, audio), options
        )
        out(
            f"  teacher-forced frame, {sampler} {steps}: PSNR {psnr(x0, target):.2f} dB "
            f"(previous real frame: {psnr(motion[:, -1], target):.2f} dB)"
        )

    silence = clip.audio[[0] * audio.shape[1]][None]
    for t in (100, 300, 600):
        err, d_audio, d_motion = [], [], []
        for k in range(5, 70, 8):
            target, identity, motion, audio = inputs(k)
            eps = rng.standard_normal(target.shape).astype(np.float32)
            x_t = (np.sqrt(abar[t]) * target + np.sqrt(1 - abar[t]) * eps).astype(np.float32)

            def x0(a, m, x_t=x_t, t=t, identity=identity):
                e = np.asarray(eps_hat(x_t, jnp.array([t]), identity, m, a))
                return (x_t - np.sqrt(1 - abar[t]) * e) / np.sqrt(abar[t])

            top, bottom, left, right = clip.mouth_boxes[k]
            box = (0, slice(top, bottom), slice(left, right))
            real = x0(audio, motion)
            err.append(np.abs(real - target)[box].mean())
            d_audio.append(np.abs(real - x0(silence, motion))[box].mean())
            d_motion.append(np.abs(real - x0(audio, np.repeat(identity[:, None], 2, 1)))[box].mean())
        out(
            f"  t={t}: mouth box |x0_hat - x0| {np.mean(err):.4f}; change with silence "
            f"{np.mean(d_audio):.4f}; with identity motion frames {np.mean(d_motion):.4f}"
        )
    return out


common.run(main)
