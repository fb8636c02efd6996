"""Sampling a dataset split with run_sample.py on 1 and 2 processes: videos/s and balance.

  python -m benchmarks.sample_sets [--steps=10] [--repeats=2]   # writes benchmarks/results/sample_sets.txt

Each process is a real run_sample.py on one CPU device (jax.distributed on localhost for
two). The export is configs/test.py with random weights (speed does not depend on them);
the set is the bundled GRID clips' train split prepared at 32 px (9 clips of 75 frames).
"videos/s" counts from the command's start to its end (start-up and compilation included);
"balance" is the longest process's sampling time over the mean of the processes' (1.00 is
perfect), from each process's last progress line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

from absl import flags

from benchmarks import common
from configs import test as test_config
from dheads_jax import export
from dheads_jax.data import cache
from dheads_jax.distributed import free_port
from dheads_jax.models import synthetic

FLAGS = flags.FLAGS
flags.DEFINE_string("output", common.result_path("sample_sets"), "The result table.")
flags.DEFINE_string("split", "train", "Split of the prepared GRID clips.")
flags.DEFINE_integer("steps", 10, "Denoising steps per frame.")
flags.DEFINE_integer("repeats", 2, "Runs of each process count.")

ELAPSED = re.compile(r"sampling.*: (\d+)/(\d+) frames .*elapsed (?:(\d+)h)?(\d+)m(\d+)s")


def sampling_seconds(stderr: str) -> float:
    """The elapsed time of a process's last progress line."""
    h, m, s = [int(g or 0) for g in ELAPSED.findall(stderr)[-1][2:]]
    return 3600 * h + 60 * m + s


def run(export_dir: str, dataset: str, out: str, processes: int) -> tuple[float, list[float], int]:
    """(wall seconds, per-process sampling seconds, videos written) of one run."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    base = [
        sys.executable,
        os.path.join(common.ROOT, "run_sample.py"),
        f"--export={export_dir}",
        f"--dataset={dataset}",
        f"--split={FLAGS.split}",
        f"--output_dir={out}",
        f"--steps={FLAGS.steps}",
    ]
    port = free_port()
    extra = lambda i: (
        []
        if processes == 1
        else [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}", f"--process_id={i}"]
    )
    start = time.perf_counter()
    procs = [
        subprocess.Popen(base + extra(i), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(processes)
    ]
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - start
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(err[-3000:])
    written = len([f for f in os.listdir(out) if f.endswith(".mp4")])
    return wall, [sampling_seconds(err) for _, err in outs], written


def main() -> common.Lines:
    config = test_config.get_config()
    dataset = cache.ensure_dataset(config)
    emit = common.start_table(
        "Sampling a set on 1 and 2 processes",
        f"set: GRID {FLAGS.split} split at {config.data.image_size} px, configs/test.py export, "
        f"{FLAGS.steps} DDPM steps per frame, batch 1 per process, 1 CPU device per process",
        "",
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = export.write_export(
            os.path.join(tmp, "export"), synthetic.random_params(config), config, weights="raw", provenance={}
        )
        for processes in (1, 2):
            walls, balances, count = [], [], 0
            for r in range(FLAGS.repeats):
                wall, per_process, count = run(
                    export_dir, dataset, os.path.join(tmp, f"out{processes}_{r}"), processes
                )
                walls.append(wall)
                mean = sum(per_process) / len(per_process)
                balances.append(max(per_process) / mean if mean > 0 else float("nan"))
                print(
                    f"{processes} process(es), run {r + 1}: {wall:.1f} s, sampling {per_process} s",
                    flush=True,
                )
            rate = [count / w for w in walls]
            rows.append(
                [
                    str(processes),
                    str(count),
                    f"{sum(rate) / len(rate):.3f} ({min(rate):.3f}-{max(rate):.3f})",
                    f"{sum(walls) / len(walls):.1f} ({min(walls):.1f}-{max(walls):.1f})",
                    f"{sum(balances) / len(balances):.2f} ({min(balances):.2f}-{max(balances):.2f})",
                ]
            )
    header = ["processes", "videos", "videos/s mean (range)", "wall s mean (range)", "balance mean (range)"]
    emit(
        *common.format_table(header, rows),
        "",
        f"{FLAGS.repeats} runs each; the 2 processes share the machine's {os.cpu_count()} cores.",
    )
    return emit


common.run(main)
