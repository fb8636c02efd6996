"""Training and sampling speed and memory on whatever device JAX sees, beside the PyTorch reference.

  python -m benchmarks.accelerator                                   # configs/crema.py in bf16, default rows
  python -m benchmarks.accelerator --config=configs/test.py          # CPU: the test model, in about 2 minutes
  python -m benchmarks.accelerator --rows=peak,train:10,sample:32g,torch:10c --output=OUT --jsonl=OUT.jsonl

Rows (``--rows``, in order). Each row is compiled, timed (median of ``--repeats`` calls after
a warm-up) and then at once printed and appended to ``--output`` and ``--jsonl``, so a run
that is cut short keeps every row it finished; a row that fails (out of memory, a kernel
the device lacks) becomes a ``failed`` row and the next one runs.

  peak                     a large matrix product in the compute dtype: the measured roof
  train:B[r][:ATTN][:POL]  one training step (fp32 parameters and Adam, donated state) at
                           batch B; r: rematerialised blocks; ATTN: einsum, dot_product or
                           cudnn (model.attention); POL: a jax.checkpoint_policies name
  sample:B[g][:ATTN]       one denoising step of B videos (a scan of --timed_steps DDIM steps
                           over the frame's chain); g: with audio guidance (two passes)
  video:N[:S]              N frames of one video end to end through the autoregressive loop
                           at S DDIM steps (default 10), and the compilations that 3 more clip
                           lengths cost
  torch:B[c]               the same network in PyTorch (dheads_jax/convert/torch_reference.py)
                           on the same device: a train step and a denoising step at batch B in
                           eager mode with bf16 autocast (c: torch.compile), and ours over theirs

FLOPs are model FLOPs: XLA's count of the lowered program with einsum attention and no
rematerialisation (the same for every variant of a row kind), so recomputation is not counted
as work; MFU is against the peak row and against the device's datasheet bf16 dense figure.
Memory is XLA's buffer assignment of each compiled program (arguments + temporaries +
outputs - aliased), and the process's peak where the device reports one. Parameters are
random and non-zero everywhere (the real initialisation zeroes the output convs, which a
GPU multiplies faster). JAX does not preallocate device memory here, so the PyTorch rows
find the memory JAX does not use.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time

# Before JAX starts a backend: grow device memory as needed instead of taking 75 % of it at
# start, so that the PyTorch rows of the same process can allocate.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from ml_collections import config_flags

from benchmarks import common
from dheads_jax import describe
from dheads_jax.diffusion import schedule_from_config
from dheads_jax.diffusion.chain import frame_keys, sample_frame
from dheads_jax.models import factory, synthetic
from dheads_jax.models.unet import ATTENTION_IMPLEMENTATIONS, REMAT_POLICIES
from dheads_jax.sampling.options import SamplingOptions
from dheads_jax.sampling.video import UNetApply, VideoBatch, jitted_frame_step, place, video_frames
from dheads_jax.train import optimizer
from dheads_jax.train.state import init_state
from dheads_jax.train.step import make_train_step

ACCELERATOR_ROWS = (
    "peak,train:10,sample:32,torch:10,train:32r,sample:32g,sample:1,sample:8,video:100,"
    "train:10:cudnn,sample:32:cudnn,torch:10c"
)
CPU_ROWS = "peak,train:2,train:2r,sample:1,sample:1g,sample:2,video:20,torch:2"
# Dense bf16 matrix-multiply peaks from the vendors' datasheets (TFLOP/s, no sparsity), by a
# substring of jax's device_kind.
DATASHEET_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L4": 121.0,
    "TPU v4": 275.0,
    "TPU v5 lite": 197.0,
    "TPU v5p": 459.0,
    "TPU v6": 918.0,
}

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(common.ROOT, "configs", "crema.py"), "Model config."
)
flags.DEFINE_integer("repeats", 5, "Timed calls per row (the median is reported).")
flags.DEFINE_integer("timed_steps", None, "DDIM steps in a timed sampling chain (default 10; CPU: 2).")
flags.DEFINE_string("dtype", None, "Compute dtype; parameters stay float32 (default bfloat16; CPU: float32).")
flags.DEFINE_string("rows", None, f"Rows in order (default: {ACCELERATOR_ROWS}; on a CPU: {CPU_ROWS}).")
flags.DEFINE_string("output", None, "Report (default benchmarks/results/accelerator_<platform>.txt).")
flags.DEFINE_string("jsonl", None, "Also append every row as a JSON line here.")
FLAGS = flags.FLAGS

# (header, width, key of the row dict); numbers right-aligned.
COLUMNS = (
    ("kind", 6, "kind"),
    ("case", 36, "case"),
    ("compile s", 9, "compile_s"),
    ("ms/step", 9, "ms"),
    ("throughput", 22, "throughput"),
    ("model TFLOP/s", 13, "tflops"),
    ("MFU % of peak row", 17, "mfu_measured"),
    ("MFU % of datasheet", 18, "mfu_datasheet"),
    ("device s per s of video at 100 / 10 / 4 steps", 46, "video_s"),
    ("XLA memory GiB", 14, "xla_gib"),
    ("process peak GiB", 16, "peak_gib"),
    ("notes", 0, "notes"),
)
LEGEND = """\
compile s: lowering and compiling the row's program. ms/step: median of the timed calls of
  one train step, or one denoising step of the whole batch (sample, torch rows).
throughput: examples/s (train), frame-steps/s (sample: videos x denoising steps / s), frames/s
  end to end (video). model TFLOP/s: XLA's FLOP count of the lowered program (einsum
  attention, no remat) over the time. MFU: that over the peak row, and over the datasheet's
  dense bf16 peak. device s per s of video: ms/step x 25 frames x steps / videos (100: the
  official DDPM; 10: DDIM 10; 4: the 4-step student; a +guidance row counts both passes).
XLA memory: arguments + temporaries + outputs - aliased buffers of the compiled program.
process peak: the device's peak bytes in use so far (n/a where it does not tell).
"""


@dataclasses.dataclass(frozen=True)
class RowSpec:
    """One entry of --rows."""

    kind: str
    batch: int = 0
    remat: bool = False
    guidance: bool = False
    compiled: bool = False
    attention: str = "einsum"
    policy: str = ""
    steps: int = 10

    @property
    def case(self) -> str:
        if self.kind == "peak":
            return "matmul"
        if self.kind == "video":
            return f"1 x {self.batch} frames, DDIM {self.steps}"
        if self.kind == "torch":
            return f"{'compile' if self.compiled else 'eager'} batch {self.batch}"
        parts = [f"batch {self.batch}"]
        parts += ["remat"] * self.remat + ["+guidance"] * self.guidance
        parts += [self.attention] * (self.attention != "einsum") + [self.policy] * bool(self.policy)
        return " ".join(parts)


def parse_row(spec: str) -> RowSpec:
    """``peak``, ``train:10r:cudnn``, ``sample:32g``, ``video:100:10``, ``torch:10c`` -> RowSpec.

    Raises:
      ValueError: naming the entry and what is wrong with it.
    """
    parts = spec.strip().split(":")
    kind = parts[0]
    try:
        if kind == "peak" and len(parts) == 1:
            return RowSpec("peak")
        if kind == "video" and len(parts) in (2, 3):
            return RowSpec("video", int(parts[1]), steps=int(parts[2]) if len(parts) == 3 else 10)
        letters = {"train": "r", "sample": "g", "torch": "c"}.get(kind)
        if letters is None or len(parts) < 2:
            raise ValueError("unknown row kind or no batch")
        digits = parts[1].rstrip(letters)
        flags_ = set(parts[1][len(digits) :])
        batch = int(digits)
        extra = parts[2:]
        attention = next((e for e in extra if e in ATTENTION_IMPLEMENTATIONS), "einsum")
        policy = next((e for e in extra if e in REMAT_POLICIES), "")
        unknown = [e for e in extra if e not in (attention, policy)]
        if unknown or (kind == "torch" and extra) or (kind == "sample" and policy) or batch < 1:
            raise ValueError(f"unexpected {':'.join(unknown or extra) or 'batch'}")
        return RowSpec(
            kind,
            batch,
            remat="r" in flags_,
            guidance="g" in flags_,
            compiled="c" in flags_,
            attention=attention,
            policy=policy,
        )
    except ValueError as e:
        raise ValueError(
            f"--rows entry {spec!r}: {e}; use peak, train:B[r][:ATTN][:POLICY], sample:B[g][:ATTN], "
            "video:N[:STEPS] or torch:B[c]"
        ) from e


def format_row(cells: dict) -> str:
    out = []
    for i, (_, width, key) in enumerate(COLUMNS):
        text = str(cells.get(key, ""))
        out.append(text.ljust(width) if i in (0, 1) or width == 0 else text.rjust(width))
    return " | ".join(out).rstrip()


def header_lines() -> list[str]:
    head = format_row({key: name for name, _, key in COLUMNS})
    return [head, "-" * len(head)]


def environment_lines(config, n_params: int) -> list[str]:
    """What ran: the model, the devices, versions, XLA flags and memory settings, GPU clocks."""
    lines = [
        f"# python -m benchmarks.accelerator: {config.get('name', '?')}, {n_params:,} parameters, "
        f"{config.data.image_size} px, compute {config.model.dtype}, parameters float32",
        common.machine_line("jaxlib", "optax", "numpy"),
        "env: "
        + ", ".join(
            f"{k}={os.environ.get(k, '')!r}"
            for k in ("XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION")
        ),
    ]
    if shutil.which("nvidia-smi"):
        query = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,memory.total"
        proc = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True
        )
        lines.append(f"nvidia-smi ({query}): {proc.stdout.strip() or proc.stderr.strip()}")
    return lines


class Report:
    """The table, written as it grows: header first, then one line (and JSON line) per row."""

    def __init__(self, path: str, jsonl: str | None, head: list[str]):
        self.path, self.jsonl = path, jsonl
        self.lines = [*head, "", *header_lines()]
        self._write()
        print("\n".join(self.lines), flush=True)

    def _write(self, legend: bool = False) -> None:
        common.write_text(self.path, "\n".join(self.lines) + "\n" + ("\n" + LEGEND if legend else ""))

    def add(self, cells: dict) -> None:
        line = format_row(cells)
        self.lines.append(line)
        print(line, flush=True)
        self._write()
        if self.jsonl:
            with open(self.jsonl, "a", encoding="utf-8") as f:
                f.write(json.dumps(cells) + "\n")

    def close(self, seconds: float) -> None:
        self.lines += ["", f"wall time: {seconds:.0f} s"]
        self._write(legend=True)
        print(f"\nwall time: {seconds:.0f} s\n\n{LEGEND}", flush=True)


def gib(nbytes: float | None) -> str:
    return f"{nbytes / 2**30:.3g}" if nbytes else "n/a"


def xla_memory(compiled) -> str:
    m = compiled.memory_analysis()
    if m is None:
        return "n/a"
    total = m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
    return gib(total)


def process_peak() -> str:
    stats = jax.devices()[0].memory_stats() or {}
    return gib(stats.get("peak_bytes_in_use"))


def step_cells(seconds: float, count: int, unit: str, digits: int) -> dict:
    """The ms/step (``digits`` decimals) and throughput (``count`` ``unit`` per step) cells."""
    return dict(ms=f"{1e3 * seconds:.{digits}f}", throughput=f"{count / seconds:.1f} {unit}")


def compile_timed(jitted, *args):
    """``jitted`` lowered and compiled for ``args``, and the cells of that program: compile
    seconds, XLA's memory of it, the process's peak so far (call again after the timing)."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    seconds = time.perf_counter() - t0
    return compiled, lambda: dict(
        compile_s=f"{seconds:.1f}", xla_gib=xla_memory(compiled), peak_gib=process_peak()
    )


def timed_calls(call, repeats: int) -> float:
    """Median seconds of ``call()`` (which blocks on its result) after one warm-up call."""
    call()
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


class Bench:
    """The rows of one run; model FLOPs, parameters and our timings shared between rows."""

    def __init__(self, config, repeats: int, timed_steps: int):
        self.config = config
        self.repeats = repeats
        self.timed_steps = timed_steps
        self.params = jax.device_put(synthetic.random_params(config))
        self.n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(self.params))
        self.forward_flops = describe.forward_flops(config)  # per example, einsum, no remat
        self._train_flops = None
        self.peak_flops = None
        self.datasheet = next(
            (
                v * 1e12
                for k, v in DATASHEET_TFLOPS.items()
                if k.lower() in jax.devices()[0].device_kind.lower()
            ),
            None,
        )
        self.ours = {}  # ("train" | "forward", batch) -> seconds, for the torch rows' ratios

    def variant(self, spec: RowSpec):
        config = self.config.copy_and_resolve_references()
        config.model.attention = spec.attention
        config.model.remat = spec.remat
        config.model.remat_policy = spec.policy
        return config

    def train_parts(self, config):
        model = factory.build_unet(config)
        tx = optimizer.make_optimizer(config.optim, 1000)
        lr_fn = optimizer.lr_schedule(config.optim, 1000)
        return make_train_step(model, schedule_from_config(config.diffusion), tx, lr_fn, config), tx

    @property
    def train_flops(self) -> float:
        """Model FLOPs of one training example: the lowered step at batch 1, einsum, no remat."""
        if self._train_flops is None:
            step, tx = self.train_parts(self.variant(RowSpec("train", 1)))
            state = jax.eval_shape(lambda p: init_state(p, tx, ema=False), self.params)
            data = jax.eval_shape(lambda: synthetic.random_batch(self.config, 1))
            self._train_flops = describe.xla_flops(jax.jit(step).lower(state, data))
        return self._train_flops

    def mfu(self, flops_per_s: float) -> dict:
        return dict(
            tflops=f"{flops_per_s / 1e12:.2f}",
            mfu_measured=f"{100 * flops_per_s / self.peak_flops:.1f}" if self.peak_flops else "",
            mfu_datasheet=f"{100 * flops_per_s / self.datasheet:.1f}" if self.datasheet else "n/a",
        )

    def peak(self, spec: RowSpec) -> dict:
        on_cpu = jax.devices()[0].platform == "cpu"
        n, dtype = (1024, jnp.float32) if on_cpu else (8192, jnp.bfloat16)
        self.peak_flops = common.matmul_peak_gflops(n, dtype) * 1e9
        roof = self.mfu(self.peak_flops)
        del roof["mfu_measured"]  # the row is the measured roof itself
        return dict(case=f"{jnp.dtype(dtype).name} matmul {n}^3", **roof)

    def train(self, spec: RowSpec) -> dict:
        step, tx = self.train_parts(self.variant(spec))
        # A copy: the step donates its state, and the shared parameters must survive the row.
        state = init_state(jax.tree.map(jnp.copy, self.params), tx, ema=False)
        data = jax.device_put(synthetic.random_batch(self.config, spec.batch))
        compiled, program = compile_timed(jax.jit(step, donate_argnums=(0,)), state, data)
        holder = [state]

        def call():
            holder[0], metrics = compiled(holder[0], data)
            jax.block_until_ready(metrics)

        dt = timed_calls(call, self.repeats)
        if spec.attention == "einsum" and not spec.remat:
            self.ours[("train", spec.batch)] = dt
        return (
            step_cells(dt, spec.batch, "ex/s", 1) | self.mfu(self.train_flops * spec.batch / dt) | program()
        )

    def sample(self, spec: RowSpec) -> dict:
        config = self.variant(spec)
        apply_fn = UNetApply(factory.build_unet(config))
        b, steps = spec.batch, self.timed_steps
        inputs = synthetic.random_batch(config, b)
        keys = frame_keys(jax.random.key(0), jnp.arange(b), 0)
        cond = (inputs["identity"], inputs["motion"], inputs["audio"])
        opts = SamplingOptions.from_config(config, steps=steps, sampler="ddim", audio_guidance=1.0)
        if spec.guidance:
            opts = opts.replace(audio_guidance=2.0, null_audio=(0.0,) * config.data.audio_dim)
        schedule = opts.make_schedule()
        chain = jax.jit(lambda p, k, c: sample_frame(apply_fn, p, schedule, k, c, opts))
        compiled, program = compile_timed(chain, self.params, keys, cond)
        per_step = timed_calls(lambda: jax.block_until_ready(compiled(self.params, keys, cond)), self.repeats)
        per_step /= steps
        passes = 2 if spec.guidance else 1
        if spec.attention == "einsum" and not spec.guidance:
            self.ours[("forward", b)] = per_step
        video_s = " / ".join(f"{25 * n * per_step / b:.2f}" for n in (100, 10, 4))
        return (
            step_cells(per_step, b, "frame-steps/s", 2)
            | self.mfu(self.forward_flops * b * passes / per_step)
            | dict(video_s=video_s)
            | program()
        )

    def video(self, spec: RowSpec) -> dict:
        config, params = self.config, self.params
        apply_fn = UNetApply(factory.build_unet(config))
        options = SamplingOptions.from_config(config, steps=spec.steps, sampler="ddim", audio_guidance=1.0)
        rng = np.random.default_rng(0)
        s, d, n = config.data.image_size, config.data.audio_dim, spec.batch

        def run(length):
            # As run_sample.py does for a set: the audio padded to the set's longest clip.
            videos = VideoBatch.create(rng.uniform(-1, 1, (1, s, s, 3)), rng.normal(size=(1, n, d)), [length])
            placed, motion, p, schedule = place(videos, options, params, options.make_schedule())
            step = lambda *a: jitted_frame_step(apply_fn, options, *a)  # noqa: E731
            stamps = []
            for _, f in video_frames(step, p, schedule, jax.random.key(0), placed, motion):
                jax.block_until_ready(f)
                stamps.append(time.perf_counter())
            return stamps

        t0 = time.perf_counter()
        stamps = run(n)
        first_s = stamps[0] - t0
        fps = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        before = jitted_frame_step._cache_size()
        for length in (n // 2, n // 3, n - 1):
            run(length)
        return dict(
            compile_s=f"{first_s:.1f}",
            throughput=f"{fps:.2f} frames/s",
            peak_gib=process_peak(),
            notes=f"first frame incl. compile; {jitted_frame_step._cache_size() - before} new "
            "compilation(s) for 3 more clip lengths",
        )

    def torch(self, spec: RowSpec) -> dict:
        try:
            import torch

            from dheads_jax.convert import torch_reference as ref
        except ImportError as e:
            return dict(notes=f"not run: {e}")
        config, b = self.config, spec.batch
        device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            return self._torch(torch, ref, config, b, device, spec.compiled)
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()

    def _torch(self, torch, ref, config, b, device, compiled) -> dict:
        model = ref.randomize_(ref.from_config(config)).to(device)
        s, mc = config.data.image_size, factory.motion_channels(config)
        x = torch.randn(b, 3, s, s, device=device)
        motion = torch.randn(b, mc * config.data.motion_frames, s, s, device=device)
        audio = torch.randn(b, 2 * config.data.audio_context + 1, config.data.audio_dim, device=device)
        t = torch.randint(0, 1000, (b,), device=device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-5)
        autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=config.model.dtype == "bfloat16")
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        net = model

        def train():
            with autocast:
                loss = net(x, t, x, motion, audio).float().pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()

        def denoise():
            with torch.no_grad(), autocast:
                net(x, t, x, motion, audio)
            sync()

        compile_s = None
        if compiled:
            t0 = time.perf_counter()
            net = torch.compile(model)
            denoise()  # the compilation
            compile_s = time.perf_counter() - t0
        tr, fw = timed_calls(train, self.repeats), timed_calls(denoise, self.repeats)
        ratios = []
        for name, ours, theirs in (("train", ("train", b), tr), ("denoise", ("forward", b), fw)):
            if ours in self.ours:
                ratios.append(f"{name} ours/theirs time {self.ours[ours] / theirs:.2f}")
        return dict(
            compile_s=f"{compile_s:.1f}" if compile_s is not None else "",
            ms=f"{1e3 * tr:.1f} / {1e3 * fw:.2f}",
            throughput=f"{b / tr:.1f} ex/s train",
            **self.mfu(self.train_flops * b / tr),
            notes="ms: train / denoise; " + ("; ".join(ratios) or "no JAX row of this batch to compare"),
        )

    def run(self, spec: RowSpec) -> dict:
        """The row's cells; any failure (out of memory included) becomes a ``failed`` row."""
        t0 = time.perf_counter()
        try:
            cells = getattr(self, spec.kind)(spec)
        except Exception as e:  # noqa: BLE001 - a row's failure is a result, not the end of the run
            message = str(e).splitlines()[0] if str(e) else ""
            oom = "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower()
            cells = dict(notes=f"failed: {'out of memory' if oom else type(e).__name__}: {message[:160]}")
        print(f"  {spec.kind} {spec.case}: {time.perf_counter() - t0:.0f} s", flush=True)
        return dict(dict(kind=spec.kind, case=spec.case), **cells)


def main() -> None:
    start = time.perf_counter()
    on_cpu = jax.devices()[0].platform == "cpu"
    rows = FLAGS.rows or (CPU_ROWS if on_cpu else ACCELERATOR_ROWS)
    specs = [parse_row(r) for r in rows.split(",")]
    config = _CONFIG.value.copy_and_resolve_references()
    config.model.dtype = FLAGS.dtype or ("float32" if on_cpu else "bfloat16")
    bench = Bench(config, FLAGS.repeats, FLAGS.timed_steps or (2 if on_cpu else 10))
    out = FLAGS.output or common.result_path(f"accelerator_{jax.devices()[0].platform}")
    head = environment_lines(config, bench.n_params) + [
        f"model FLOPs per example: forward {bench.forward_flops / 1e9:.2f} GFLOP, training step "
        f"{bench.train_flops / 1e9:.2f} GFLOP ({bench.train_flops / bench.forward_flops:.2f} x forward); "
        f"one second of video at 100 steps: {25 * 100 * bench.forward_flops / 1e15:.4f} PFLOP",
        f"rows: {rows}",
    ]
    report = Report(out, FLAGS.jsonl, head)
    for spec in specs:
        report.add(bench.run(spec))
    report.close(time.perf_counter() - start)


common.run(main)
