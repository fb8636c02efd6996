"""Training and sampling speed and memory on whatever device JAX sees, beside the PyTorch reference.

  python -m benchmarks.accelerator                          # configs/crema.py, bf16: one GPU/TPU, < 8 min
  python -m benchmarks.accelerator --config=configs/test.py # the same table on a CPU in about 1.5 minutes

Imports only jax, flax, optax, numpy, ml_collections and the package's model, diffusion,
training-step and sampling code (plus torch for the reference rows, when it is installed):
no TensorFlow, dlib or PyAV, so it runs on a bare accelerator image. Prints one table and
writes it to benchmarks/results/accelerator_<platform>.txt.

Rows:
- peak: a large bf16 (fp32 on CPU) matrix product, the roof the MFU column is measured against;
- train: one jitted train step (bf16 compute, fp32 parameters and Adam) at per-device batch
  10 (the paper's) and the largest of 16/32/64 that fits, with and without
  rematerialisation: step time, examples/s, TFLOP/s from XLA's own FLOP count of the step,
  MFU, peak device memory, compile time;
- sample: one denoising step for 1, 8 and 32 videos at once (the reverse chain's scan,
  timed over several steps), and from it the device seconds per second of video at 100
  DDPM steps and 25 / 10 DDIM steps, with and without audio guidance (two passes);
- video: frames/s end to end through the autoregressive loop for a 4 s clip at 10 DDIM steps,
  and how many compilations a set of clips of three lengths costs;
- torch: the same architecture in PyTorch (tests/torch_reference.py) on the same device,
  batch and precision: bf16 autocast in eager mode, as the authors run it, and
  ``torch.compile`` when it works; ours over theirs.
"""

from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from benchmarks import common  # noqa: E402
from dheads_jax.diffusion import schedule_from_config  # noqa: E402
from dheads_jax.diffusion.chain import frame_keys, sample_frame  # noqa: E402
from dheads_jax.models import factory  # noqa: E402
from dheads_jax.progress import quiet_library_logs  # noqa: E402
from dheads_jax.sampling.options import SamplingOptions  # noqa: E402
from dheads_jax.sampling.video import UNetApply, VideoBatch, jitted_frame_step, place, video_frames  # noqa: E402
from dheads_jax.train import optimizer  # noqa: E402
from dheads_jax.train.state import init_state  # noqa: E402
from dheads_jax.train.step import make_train_step  # noqa: E402
from tests import helpers  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(ROOT, "configs", "crema.py"), "Model config."
)
flags.DEFINE_list("train_batches", None, "Per-device training batches (default 10,16,32,64; CPU: 2).")
flags.DEFINE_list("sample_batches", None, "Videos sampled at once (default 1,8,32; CPU: 1,2).")
flags.DEFINE_integer("timed_steps", None, "Denoising steps per timed chain (default 10; CPU: 2).")
flags.DEFINE_integer("video_frames", 100, "Frames of the end-to-end video (4 s at 25 fps).")
flags.DEFINE_string("dtype", None, "Compute dtype, parameters stay float32 (default bfloat16; CPU: float32).")
flags.DEFINE_bool("torch", True, "Time the PyTorch reference too (when torch is installed).")
flags.DEFINE_bool("torch_compile", None, "Also time torch.compile (default: on accelerators only).")
flags.DEFINE_string("output", None, "Report file (default benchmarks/results/accelerator_<platform>.txt).")
FLAGS = flags.FLAGS

# The table's columns, each with its unit; a row leaves empty what does not apply to it.
COLUMNS = (
    "kind",
    "case",
    "ms/step",
    "throughput",
    "TFLOP/s",
    "MFU (% of peak)",
    "device s per s of video at 100 / 25 / 10 steps",
    "peak memory GiB",
    "compile s",
    "notes",
)
LEGEND = """\
ms/step: one train step, or one denoising step of the whole batch (sample, torch rows).
throughput: examples/s (train), frame-steps/s (sample: frames x denoising steps), frames/s
  end to end (video). TFLOP/s: XLA's FLOP count of the step over its time; the peak row is
  the roof. MFU: the train row's TFLOP/s over the peak row's. device s per s of video: the
  sample row's step time x 25 frames x steps / videos. ours/theirs time < 1: ours is faster.
"""


def row(kind: str, case: str, **cells: str) -> list[str]:
    """A table row: ``cells`` by column (ms_step, throughput, tflops, mfu, video_s, memory,
    compile_s, notes), "" for the others."""
    keys = ("ms_step", "throughput", "tflops", "mfu", "video_s", "memory", "compile_s", "notes")
    unknown = set(cells) - set(keys)
    if unknown:
        raise KeyError(f"no such column: {sorted(unknown)}")
    return [kind, case, *(cells.get(k, "") for k in keys)]


def format_table(rows: list[list[str]]) -> list[str]:
    """The header row, a rule and the rows, numbers right-aligned under their headers."""
    table = [list(COLUMNS), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    left = {0, 1, len(COLUMNS) - 1}  # kind, case, notes

    def line(r):
        cells = [
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return " | ".join(cells).rstrip()

    return [line(table[0]), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)]


def peak_memory() -> str:
    """The device's peak memory in GiB ("n/a" where it does not tell, as on a CPU)."""
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return f"{peak / 2**30:.1f}" if peak else "n/a"


def compiled_flops(lowered) -> float:
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"])


def train_row(config, batch: int, remat: bool, peak: float) -> list[str]:
    config = config.copy_and_resolve_references()
    config.model.remat = remat
    model = factory.build_unet(config)
    tx = optimizer.make_optimizer(config.optim, 1000)
    lr_fn = optimizer.lr_schedule(config.optim, 1000)
    step = make_train_step(model, schedule_from_config(config.diffusion), tx, lr_fn, config)
    params = jax.jit(lambda k: model.init(k, **factory.dummy_inputs(config, 1))["params"])(jax.random.key(0))
    state = init_state(params, tx, ema=False)
    data = jax.device_put(helpers.random_batch(config, batch))
    t0 = time.perf_counter()
    lowered = jax.jit(step, donate_argnums=(0,)).lower(state, data)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    flops = compiled_flops(lowered)
    state, _ = compiled(state, data)
    jax.block_until_ready(state)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        state, metrics = compiled(state, data)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t)
    dt = min(times)
    achieved = flops / dt
    return row(
        "train",
        f"batch {batch}{' remat' if remat else ''}",
        ms_step=f"{1e3 * dt:.1f}",
        throughput=f"{batch / dt:.1f} ex/s",
        tflops=f"{achieved / 1e12:.2f}",
        mfu=f"{100 * achieved / peak:.0f}%",
        memory=peak_memory(),
        compile_s=f"{compile_s:.1f}",
    )


def sampling_rows(config, params, batches, steps: int) -> list[list[str]]:
    model = factory.build_unet(config)
    apply_fn = UNetApply(model)
    rows = []
    for b in batches:
        inputs = helpers.random_batch(config, b)
        keys = frame_keys(jax.random.key(0), jnp.arange(b), 0)
        cond = (inputs["identity"], inputs["motion"], inputs["audio"])
        per_step = {}
        for guided in (False, True):
            opts = SamplingOptions.from_config(config, steps=steps, sampler="ddim", audio_guidance=1.0)
            if guided:
                opts = opts.replace(audio_guidance=2.0, null_audio=(0.0,) * config.data.audio_dim)
            schedule = opts.make_schedule()
            chain = jax.jit(lambda p, k, c, o=opts, s=schedule: sample_frame(apply_fn, p, s, k, c, o))
            per_step[guided] = common.time_call(chain, params, keys, cond, min_seconds=0.5) / steps
        for guided, s in per_step.items():
            video_s = [25 * n * s / b for n in (100, 25, 10)]
            rows.append(
                row(
                    "sample",
                    f"{b} video(s){' +guidance' if guided else ''}",
                    ms_step=f"{1e3 * s:.2f}",
                    throughput=f"{b / s:.1f} frame-steps/s",
                    video_s=" / ".join(f"{v:.2f}" for v in video_s),
                    memory=peak_memory(),
                )
            )
    return rows


def video_rows(config, params, num_frames: int) -> list[list[str]]:
    apply_fn = UNetApply(factory.build_unet(config))
    options = SamplingOptions.from_config(config, steps=10, sampler="ddim", audio_guidance=1.0)
    rng = np.random.default_rng(0)
    s, d = config.data.image_size, config.data.audio_dim

    def run(length):
        # As run_sample.py does for a set: the audio padded to the set's longest clip.
        videos = VideoBatch.create(
            rng.uniform(-1, 1, (1, s, s, 3)), rng.normal(size=(1, num_frames, d)), [length]
        )
        placed, motion, p, schedule = place(videos, options, params, options.make_schedule())
        step = lambda *a: jitted_frame_step(apply_fn, options, *a)  # noqa: E731
        stamps = []
        for _, f in video_frames(step, p, schedule, jax.random.key(0), placed, motion):
            jax.block_until_ready(f)
            stamps.append(time.perf_counter())
        return stamps

    stamps = run(num_frames)
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    before = jitted_frame_step._cache_size()
    for length in (num_frames // 2, num_frames // 3, num_frames - 1):
        run(length)
    compiles = jitted_frame_step._cache_size() - before
    return [
        row(
            "video",
            f"1 x {num_frames} frames, 10 DDIM",
            throughput=f"{fps:.2f} frames/s",
            memory=peak_memory(),
        ),
        row("video", "3 more clip lengths", notes=f"{compiles} new compilation(s)"),
    ]


def torch_rows(config, batch: int, ours_train_s: float | None, ours_step_s: float | None, compile_too: bool):
    try:
        import torch

        from tests import torch_reference as ref
    except ImportError as e:
        return [row("torch", "not run", notes=f"({e})")]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ref.randomize_(ref.from_config(config)).to(device)
    s = config.data.image_size
    mc = 1 if config.data.grayscale_motion else 3
    x = torch.randn(batch, 3, s, s, device=device)
    motion = torch.randn(batch, mc * config.data.motion_frames, s, s, device=device)
    audio = torch.randn(batch, 2 * config.data.audio_context + 1, config.data.audio_dim, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=config.model.dtype == "bfloat16")

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def timed(fn, repeats=3):
        fn()
        sync()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
        return best

    def train_step(net):
        def fn():
            with autocast:
                loss = net(x, t, x, motion, audio).float().pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return fn

    def denoise(net):
        @torch.no_grad()
        def fn():
            with autocast:
                net(x, t, x, motion, audio)

        return fn

    rows = []
    for name, net in (("eager", model), ("compile", None))[: 2 if compile_too else 1]:
        if name == "compile":
            try:
                net = torch.compile(model)
                timed(denoise(net), repeats=1)
            except Exception as e:  # noqa: BLE001 - report, do not fail the benchmark
                rows.append(row("torch", "torch.compile", notes=f"failed: {type(e).__name__}"))
                continue
        tr, fw = timed(train_step(net)), timed(denoise(net))
        ratio = lambda ours, theirs: f"ours/theirs time {ours / theirs:.2f}" if ours else ""  # noqa: E731
        rows.append(
            row(
                "torch",
                f"{name} train batch {batch}",
                ms_step=f"{1e3 * tr:.1f}",
                notes=ratio(ours_train_s, tr),
            )
        )
        rows.append(
            row(
                "torch",
                f"{name} denoise batch {batch}",
                ms_step=f"{1e3 * fw:.2f}",
                notes=ratio(ours_step_s, fw),
            )
        )
    return rows


def main(argv):
    del argv
    quiet_library_logs()
    config: ml_collections.ConfigDict = _CONFIG.value.copy_and_resolve_references()
    platform = jax.devices()[0].platform
    on_cpu = platform == "cpu"
    config.model.dtype = FLAGS.dtype or ("float32" if on_cpu else "bfloat16")
    train_batches = [int(b) for b in FLAGS.train_batches or (["2"] if on_cpu else ["10", "16", "32", "64"])]
    sample_batches = [int(b) for b in FLAGS.sample_batches or (["1", "2"] if on_cpu else ["1", "8", "32"])]
    steps = FLAGS.timed_steps or (2 if on_cpu else 10)
    start = time.perf_counter()
    # The roof MFU is measured against: a large matrix product in the compute dtype.
    peak = (
        common.matmul_peak_gflops(1024, jnp.float32) * 1e9
        if on_cpu
        else common.matmul_peak_gflops(8192, jnp.bfloat16) * 1e9
    )
    model = factory.build_unet(config)
    params = jax.jit(lambda k: model.init(k, **factory.dummy_inputs(config, 1))["params"])(jax.random.key(0))
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    forward = compiled_flops(
        jax.jit(lambda p, x: model.apply({"params": p}, **x)).lower(params, factory.input_specs(config, 1))
    )

    rows = [row("peak", f"{'fp32' if on_cpu else 'bf16'} matmul", tflops=f"{peak / 1e12:.1f}")]
    train_s = None
    for b in train_batches:
        for remat in (False, True):
            try:
                train = train_row(config, b, remat, peak)
            except Exception as e:  # noqa: BLE001 - an out-of-memory batch ends the search
                if "RESOURCE_EXHAUSTED" not in str(e) and "out of memory" not in str(e).lower():
                    raise
                rows.append(row("train", f"batch {b}{' remat' if remat else ''}", notes="out of memory"))
                continue
            rows.append(train)
            if b == train_batches[0] and not remat:
                train_s = float(train[2]) / 1e3
        print(f"  train batch {b} done ({time.perf_counter() - start:.0f} s)", flush=True)
    rows += sampling_rows(config, params, sample_batches, steps)
    print(f"  sampling done ({time.perf_counter() - start:.0f} s)", flush=True)
    rows += video_rows(config, params, FLAGS.video_frames if not on_cpu else min(FLAGS.video_frames, 20))
    if FLAGS.torch:
        # One denoising step of ours at the reference's batch: a forward pass.
        b = train_batches[0]
        x = helpers.random_batch(config, b)
        t = jnp.full((b,), 500, jnp.int32)
        apply_fn = jax.jit(UNetApply(model))
        step_s = common.time_call(apply_fn, params, x["target"], t, x["identity"], x["motion"], x["audio"])
        compile_too = FLAGS.torch_compile if FLAGS.torch_compile is not None else not on_cpu
        rows += torch_rows(config, b, train_s, step_s, compile_too)

    dev = jax.devices()[0]
    import flax

    header = [
        f"# benchmarks/accelerator.py: {config.get('name', '?')}, {n_params:,} parameters, "
        f"{config.data.image_size} px, compute {config.model.dtype}, parameters float32",
        f"device: {dev.platform} {dev.device_kind} x{jax.device_count()}; jax {jax.__version__}, "
        f"flax {flax.__version__}, python {sys.version.split()[0]}",
        f"forward FLOPs per frame and step (XLA cost analysis, batch 1): {forward / 1e9:.2f} GFLOP; "
        f"one second of video at 100 steps: {25 * 100 * forward / 1e15:.3f} PFLOP",
        f"wall time of this benchmark: {time.perf_counter() - start:.0f} s",
        "",
    ]
    text = "\n".join(header + format_table(rows)) + "\n\n" + LEGEND
    print(text)
    out = FLAGS.output or os.path.join(ROOT, "benchmarks", "results", f"accelerator_{platform}.txt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        f.write(text)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    app.run(main)
