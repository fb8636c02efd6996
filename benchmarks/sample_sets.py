"""Sampling a dataset split with run_sample.py on 1 and 2 processes: videos/s and balance.

  python benchmarks/sample_sets.py [--steps=10] [--repeats=2]   # writes benchmarks/results/sample_sets.txt

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

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import common  # noqa: E402
from configs import test as test_config  # noqa: E402
from dheads_jax import export  # noqa: E402
from dheads_jax.data import cache  # noqa: E402
from tests import helpers  # noqa: E402

flags.DEFINE_integer("steps", 10, "Denoising steps per frame.")
flags.DEFINE_integer("repeats", 2, "Runs of each process count.")
flags.DEFINE_string("split", "train", "Split of the prepared GRID clips.")
flags.DEFINE_string("output", os.path.join(ROOT, "benchmarks", "results", "sample_sets.txt"), "Report file.")
FLAGS = flags.FLAGS

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
        os.path.join(ROOT, "run_sample.py"),
        f"--export={export_dir}",
        f"--dataset={dataset}",
        f"--split={FLAGS.split}",
        f"--output_dir={out}",
        f"--steps={FLAGS.steps}",
    ]
    port = helpers.free_port()
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


def main(argv):
    del argv
    config = test_config.get_config()
    dataset = cache.ensure_dataset(config)
    lines = [
        "# Sampling a set on 1 and 2 processes (benchmarks/sample_sets.py)",
        common.machine_line(),
        f"set: GRID {FLAGS.split} split at {config.data.image_size} px, configs/test.py export, "
        f"{FLAGS.steps} DDPM steps per frame, batch 1 per process, 1 CPU device per process",
        "",
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = export.write_export(
            os.path.join(tmp, "export"), helpers.random_params(config), config, weights="raw", provenance={}
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
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = " | ".join(f"{{:>{w}}}" for w in widths)
    lines += [fmt.format(*header), "-+-".join("-" * w for w in widths), *[fmt.format(*r) for r in rows]]
    lines += ["", f"{FLAGS.repeats} runs each; the 2 processes share the machine's 2 cores."]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    with open(FLAGS.output + ".tmp", "w") as f:
        f.write(text)
    os.replace(FLAGS.output + ".tmp", FLAGS.output)


if __name__ == "__main__":
    app.run(main)
