"""Sampling speed: ms per denoising step, frames/s and the cost of one second of video.

  python benchmarks/sampling.py                      # writes benchmarks/results/sampling.txt
  python benchmarks/sampling.py --batches=1,16 --timed_steps=2 --configs=paper64

For each model config (the tiny test config and a reduced paper-shaped one: the
configs/crema.py architecture at 64 px with 64 base channels), compute dtype (float32,
bfloat16), sampler (ddpm, ddim) and batch size it times ``sample_frame`` (one jitted
``lax.scan`` over ``--timed_steps`` reverse steps; compilation and a warm-up run
excluded) and reports:
  * ms per denoising step (one network evaluation for the whole batch plus the step);
  * frames/s at 100 steps: batch / (100 x step time);
  * device seconds per second of video (25 frames x 100 steps), per video in the batch;
  * XLA's estimated FLOPs of one step (``jit(...).lower(...).compile().cost_analysis()``),
    the achieved FLOP/s and its fraction of a dense-matmul peak measured in the same run
    with the same dtype.
It also times ``sample_video`` end to end (host loop, transfers) on the test config.
Random parameters: speed does not depend on their values. About 6 minutes on a 2-core CPU.
"""

from __future__ import annotations

import io
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from configs import crema  # noqa: E402
from configs import test as test_config  # noqa: E402
from dheads_jax import sampling  # noqa: E402
from dheads_jax.diffusion import ddpm_step, schedule_from_config  # noqa: E402
from dheads_jax.media import FPS  # noqa: E402
from dheads_jax.models.factory import build_unet, input_specs, param_shapes  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["test", "paper64"], "Model configs to time: test, paper64.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes.")
flags.DEFINE_list("samplers", ["ddpm", "ddim"], "Samplers.")
flags.DEFINE_list("batches", ["1", "8"], "Batch sizes (videos sampled together).")
flags.DEFINE_integer("timed_steps", 0, "Reverse steps per timed chain; 0: 10 for test, 3 for paper64.")
flags.DEFINE_integer("repeats", 2, "Timed runs per setting (the fastest is reported).")
flags.DEFINE_string("output", os.path.join(ROOT, "benchmarks", "results", "sampling.txt"), "Report file.")

STEPS_PER_FRAME = 100  # the official demo


def paper64_config():
    """configs/crema.py's architecture at 64 px and 64 base channels (attention at 16 px)."""
    config = crema.get_config()
    config.name = "paper64"
    config.data.image_size = 64
    config.model.model_channels = 64
    # The paper's attention level is the lowest resolution (32 of 128 px): 16 of 64 px here.
    config.model.attention_resolutions = (16,)
    return config


CONFIGS = {"test": test_config.get_config, "paper64": paper64_config}


def random_params(config, seed=0):
    """Random float32 parameters of ``config``'s model, made with numpy (nothing to compile)."""
    rng = np.random.default_rng(seed)

    def init(path, leaf):
        if path[-1].key == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return (0.5 * rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
        base = 1.0 if path[-1].key == "scale" else 0.0
        return (base + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree.map(jnp.asarray, jax.tree_util.tree_map_with_path(init, param_shapes(config)))


def random_inputs(config, batch, seed=0):
    """identity [B,H,W,3], motion [B,m_x,H,W,mc], audio [B,2m_y+1,D] as device arrays."""
    rng = np.random.default_rng(seed)
    specs = input_specs(config, batch)
    return [
        jnp.asarray(rng.uniform(-1, 1, specs[k].shape), jnp.float32) for k in ("identity", "motion", "audio")
    ]


def cost_flops(compiled) -> float:
    ca = compiled.cost_analysis()
    ca = ca[0] if isinstance(ca, list | tuple) else ca
    return float(ca.get("flops", float("nan"))) if ca else float("nan")


def matmul_peak(dtype: str, sizes=(1024, 2048), repeats: int = 5) -> float:
    """Best measured dense matmul FLOP/s of square n x n products in ``dtype``."""
    peak = 0.0
    f = jax.jit(lambda x: x @ x)
    for n in sizes:
        a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
        f(a).block_until_ready()
        for _ in range(repeats):
            t = time.perf_counter()
            f(a).block_until_ready()
            peak = max(peak, 2.0 * n**3 / (time.perf_counter() - t))
    return peak


def step_flops(apply_fn, params, schedule, config, batch) -> float:
    """XLA's FLOP estimate of one reverse step (network + DDPM update) at ``batch``."""
    identity, motion, audio = random_inputs(config, batch)

    def one_step(params, x, identity, motion, audio):
        t = jnp.full((batch,), schedule.num_steps - 1, jnp.int32)
        out = apply_fn(params, x, schedule.timesteps[t], identity, motion, audio)
        return ddpm_step(schedule, out, x, t, jnp.zeros_like(x))[0]

    lowered = jax.jit(one_step).lower(params, identity, identity, motion, audio)
    return cost_flops(lowered.compile())


def time_chain(apply_fn, params, schedule, config, batch, sampler, repeats):
    """Fastest wall time of a whole ``sample_frame`` chain at ``batch``; compile excluded."""
    identity, motion, audio = random_inputs(config, batch)
    keys = sampling.frame_keys(jax.random.key(0), jnp.arange(batch), 0)
    options = sampling.SamplingOptions.from_config(config, steps=schedule.num_steps, sampler=sampler, eta=0.0)
    run = jax.jit(lambda p, k, i, m, a: sampling.sample_frame(apply_fn, p, schedule, k, (i, m, a), options))
    compiled = run.lower(params, keys, identity, motion, audio).compile()
    compiled(params, keys, identity, motion, audio).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        compiled(params, keys, identity, motion, audio).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return best


def time_video(config, batch, frames, steps):
    """Frames/s of the video loop end to end (after its first, compiling frame)."""
    apply_fn = sampling.UNetApply(build_unet(config))
    params = random_params(config)
    options = sampling.SamplingOptions.from_config(config, steps=steps)
    identity, _, _ = random_inputs(config, batch)
    audio = np.random.default_rng(1).normal(size=(batch, frames, config.data.audio_dim)).astype(np.float32)
    videos, motion, params, schedule = sampling.place(
        sampling.VideoBatch.create(identity, audio), options, params, options.make_schedule()
    )
    step = lambda *args: sampling.jitted_frame_step(apply_fn, options, *args)  # noqa: E731
    stamps = []
    for _, frame in sampling.video_frames(step, params, schedule, jax.random.key(0), videos, motion):
        jax.device_get(frame)
        stamps.append(time.perf_counter())
    return batch * (len(stamps) - 1) / (stamps[-1] - stamps[0])


def machine_lines() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    dev = jax.devices()[0]
    return [
        f"machine: {platform.node()}, {cpu}, {os.cpu_count()} CPU cores visible",
        f"jax device: {dev.platform} {dev.device_kind} x{jax.device_count()}",
        f"python {platform.python_version()}, jax {jax.__version__}, jaxlib {jax.lib.__version__}, "
        f"flax {flax.__version__}, numpy {np.__version__}",
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
    ]


def main(argv):
    del argv
    out = io.StringIO()

    def emit(line=""):
        print(line, flush=True)
        out.write(line + "\n")

    start = time.perf_counter()
    emit("# Sampling benchmark (benchmarks/sampling.py)")
    for line in machine_lines():
        emit(line)
    emit(f"load average at start (1/5/15 min): {load_average()}")
    # Measured before and after the runs; the better of the two is the reference.
    peaks = {d: matmul_peak(d) for d in FLAGS.dtypes}
    rows = []
    header = (
        f"{'config':8} {'dtype':8} {'sampler':7} {'batch':>5} {'steps':>5} {'ms/step':>9} "
        f"{'frames/s@100':>12} {'s/video-s@100':>13} {'GFLOP/step':>10} {'GFLOP/s':>8} {'%peak':>6}"
    )
    for name in FLAGS.configs:
        base = CONFIGS[name]()
        steps = FLAGS.timed_steps or (10 if name == "test" else 3)
        schedule = schedule_from_config(base.diffusion, steps)
        params = random_params(base)
        for dtype in FLAGS.dtypes:
            config = CONFIGS[name]()
            config.model.dtype = dtype
            apply_fn = sampling.UNetApply(build_unet(config))
            for batch in map(int, FLAGS.batches):
                flops = step_flops(apply_fn, params, schedule, config, batch)
                for sampler in FLAGS.samplers:
                    chain = time_chain(apply_fn, params, schedule, config, batch, sampler, FLAGS.repeats)
                    step_s = chain / steps
                    frames_per_s = batch / (STEPS_PER_FRAME * step_s)
                    video_s = FPS * STEPS_PER_FRAME * step_s / batch
                    rows.append((name, dtype, sampler, batch, steps, step_s, frames_per_s, video_s, flops))
                    print(
                        f"  timed {name} {dtype} {sampler} batch {batch}: {1e3 * step_s:.2f} ms/step",
                        flush=True,
                    )
    for d in FLAGS.dtypes:
        peaks[d] = max(peaks[d], matmul_peak(d))
        emit(f"dense matmul peak ({d}, best of 1024^3 and 2048^3 products): {peaks[d] / 1e9:.1f} GFLOP/s")
    emit()
    emit(header)
    emit("-" * len(header))
    for name, dtype, sampler, batch, steps, step_s, frames_per_s, video_s, flops in rows:
        achieved = flops / step_s
        emit(
            f"{name:8} {dtype:8} {sampler:7} {batch:5d} {steps:5d} {1e3 * step_s:9.2f} "
            f"{frames_per_s:12.3f} {video_s:13.1f} {flops / 1e9:10.2f} {achieved / 1e9:8.1f} "
            f"{100 * achieved / peaks[dtype]:5.1f}%"
        )
    emit()
    emit("sample_video end to end (test config, float32, ddpm, 10 steps, 12 frames; first frame excluded):")
    for batch in map(int, FLAGS.batches):
        fps = time_video(test_config.get_config(), batch, frames=12, steps=10)
        emit(f"  batch {batch}: {fps:.1f} frames/s (= {fps * 10 / 100:.2f} frames/s at 100 steps)")
    emit()
    emit("ms/step: one network evaluation of the whole batch plus the update, from a timed lax.scan chain.")
    emit("frames/s@100 = batch / (100 x step); s/video-s@100 = 25 x 100 x step / batch (per video).")
    emit("GFLOP/step: XLA cost_analysis of one step; %peak: achieved FLOP/s over the matmul peak above.")
    count = param_count(paper64_config())
    emit(f"paper64 = configs/crema.py at 64 px, 64 base channels: {count:,} parameters.")
    emit(f"load average at end (1/5/15 min): {load_average()}; a load above the core count means")
    emit("other processes shared the CPU and the timings above are pessimistic and noisy.")
    emit(f"total benchmark time: {time.perf_counter() - start:.0f} s")

    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    with open(FLAGS.output, "w") as f:
        f.write(out.getvalue())
    print(f"wrote {FLAGS.output}")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def param_count(config) -> int:
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(param_shapes(config))))


if __name__ == "__main__":
    app.run(main)
