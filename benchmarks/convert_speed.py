"""JAX vs PyTorch on equal hardware: the full-size CREMA U-Net, converted, side by side.

  python -m benchmarks.convert_speed            # writes benchmarks/results/convert_speed.txt
  python -m benchmarks.convert_speed --chain_steps=3 --output=/tmp/speed.txt

Builds this project's PyTorch U-Net with the official tensor names at the released size
(215,748,614 parameters, random non-zero weights), traces it to TorchScript (as the
authors ship ``crema_script.pt``), converts the file with ``python -m dheads_jax.convert``'s
code and loads the export. Then, in the same process on the same cores:

* one denoising step: one network evaluation at batch 1, 128 px (median of several);
* one frame at 100 steps: the respaced ancestral chain (the official sampler) timed over
  ``--chain_steps`` steps (JAX: one jitted ``lax.scan``; PyTorch: the official Python loop
  over the TorchScript module under ``no_grad``) and EXTRAPOLATED linearly to 100 steps;
* the output difference of the two at full size, as a parity check.

Speed does not depend on the weights' values. PyTorch uses its default CPU threads
(``torch.get_num_threads()``), JAX/XLA its default CPU thread pool. About 6 minutes and
4 GB of memory on a 2-core CPU, plus 1.7 GB of temporary disk.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import time

import jax
import numpy as np
import torch
from absl import flags

from benchmarks import common
from configs import crema
from dheads_jax import export
from dheads_jax.convert import converter
from dheads_jax.convert import torch_reference as ref
from dheads_jax.diffusion import build_schedule
from dheads_jax.models import factory
from dheads_jax.sampling import SamplingOptions, UNetApply, sample_frame, step_noise

FLAGS = flags.FLAGS
flags.DEFINE_string("output", common.result_path("convert_speed"), "The result table.")
flags.DEFINE_integer("chain_steps", 5, "Steps timed per chain (then x 100/n).")
flags.register_validator(
    "chain_steps",
    lambda n: n >= 2,
    "--chain_steps must be at least 2 (the official chain's variance needs two steps)",
)


def main() -> common.Lines:
    out = common.start_table(
        "JAX vs PyTorch, converted full-size CREMA U-Net",
        f"torch threads: {torch.get_num_threads()}",
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC",
        versions=("torch", "numpy"),
    )

    with tempfile.TemporaryDirectory() as tmp:
        config = crema.get_config()
        torch.manual_seed(0)
        model = ref.randomize_(ref.from_config(config), seed=0).eval()
        n_params = sum(p.numel() for p in model.parameters())
        s = config.data.image_size
        rng = np.random.default_rng(0)
        inputs = {
            k: rng.uniform(-1, 1, v.shape).astype(np.float32)
            for k, v in factory.input_specs(config, 1).items()
            if k != "timesteps"
        }
        nchw = lambda a: torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))  # noqa: E731
        x, x_cond = nchw(inputs["x_t"]), nchw(inputs["identity"])
        m = inputs["motion"]
        motion = torch.from_numpy(np.ascontiguousarray(m.transpose(0, 1, 4, 2, 3).reshape(1, -1, s, s)))
        audio = torch.from_numpy(inputs["audio"])
        t = torch.tensor([500])
        with torch.no_grad():
            traced = torch.jit.trace(model, (x, t, x_cond, motion, audio), check_trace=False)
        script = os.path.join(tmp, "crema_script.pt")
        traced.save(script)
        del model, traced

        t0 = time.perf_counter()
        converter.convert_checkpoint(script, os.path.join(tmp, "export"), "crema")
        convert_s = time.perf_counter() - t0
        config, params, _ = export.load_export(os.path.join(tmp, "export"))
        out(f"model: configs/crema.py, {n_params:,} parameters, random weights; batch 1, {s} px, float32")
        out(f"conversion (TorchScript -> export, official table check): {convert_s:.1f} s")
        out()

        scripted = torch.jit.load(script)
        apply_fn = jax.jit(UNetApply(factory.build_unet(config)))
        timesteps = np.array([500], np.int32)
        jax_out = np.asarray(
            apply_fn(params, inputs["x_t"], timesteps, inputs["identity"], m, inputs["audio"])
        )
        with torch.no_grad():
            torch_out = scripted(x, t, x_cond, motion, audio).numpy().transpose(0, 2, 3, 1)
        err = float(np.abs(jax_out - torch_out).max())
        out(f"parity at full size, t=500: max |JAX - PyTorch| = {err:.2e} (output std {torch_out.std():.2f})")

        jax_step = common.time_call(
            apply_fn, params, inputs["x_t"], timesteps, inputs["identity"], m, inputs["audio"]
        )
        with torch.no_grad():
            torch_step = common.time_call(scripted, x, t, x_cond, motion, audio)

        n = FLAGS.chain_steps
        schedule = build_schedule(config.diffusion.schedule, config.diffusion.num_timesteps, n)
        keys = jax.random.split(jax.random.key(0), 1)
        options = SamplingOptions.from_config(config, steps=n, sampler="ddpm", audio_guidance=1.0)
        condition = (inputs["identity"], m, inputs["audio"])
        chain = jax.jit(
            lambda p: sample_frame(
                UNetApply(factory.build_unet(config)), p, schedule, keys, condition, options
            )
        )
        chain.lower(params).compile()
        jax_chain = common.time_call(chain, params, min_seconds=0.0, min_calls=2)
        coefficients = ref.respaced_coefficients(n)
        shape = (s, s, 3)
        x_T = nchw(step_noise(keys, n, shape))
        noises = [nchw(step_noise(keys, j, shape)) for j in range(n)]
        with torch.no_grad():
            torch_chain = common.time_call(
                lambda: ref.sample_frame(scripted, coefficients, x_T, noises, x_cond, motion, audio),
                min_seconds=0.0,
                min_calls=2,
            )

    rows = [
        [
            "one denoising step (network, batch 1)",
            f"{jax_step:.3f}",
            f"{torch_step:.3f}",
            torch_step / jax_step,
        ],
        [
            f"one frame, 100 steps (from {n} timed steps)",
            f"{jax_chain / n * 100:.1f}",
            f"{torch_chain / n * 100:.1f}",
            torch_chain / jax_chain,
        ],
        [
            "one second of video (25 frames x 100 steps)",
            f"{jax_chain / n * 2500:.0f}",
            f"{torch_chain / n * 2500:.0f}",
            torch_chain / jax_chain,
        ],
    ]
    out()
    out(f"{'measurement':<46} | {'JAX s':>8} | {'PyTorch s':>9} | PyTorch/JAX")
    out("-" * 82)
    for name, jax_s, torch_s, ratio in rows:
        out(f"{name:<46} | {jax_s:>8} | {torch_s:>9} | {ratio:.2f}x")
    out()
    out(
        f"100-step figures are extrapolated: {n} steps timed (median of 2 runs after a warm-up), "
        "times 100/n; the step time is the median of repeated calls."
    )
    return out


common.run(main)
