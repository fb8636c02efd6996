"""Dataset preparation speed: the local process pool against Apache Beam's DirectRunner.

  python -m benchmarks.prepare_engines     # writes benchmarks/results/prepare_engines.txt

Builds the 11 bundled GRID clips (3 s, 360x288, 75 frames each) at 128 px with the default
mel encoder through ``builder.prepare_dataset`` (worker start-up, the clips, and TFDS writing
the shards all included), once per engine and worker count, and with sparse face detection
(``--detect_every``) on the local pool. Each configuration runs ``--repeats`` times; the
table gives the median and the range. From the per-frame cost it estimates what preparing
LRW and VoxCeleb2 costs in worker-hours (one worker = one core like these). About 4 minutes
on a 2-core CPU.
"""

from __future__ import annotations

import os
import statistics
import tempfile

from absl import flags, logging

from benchmarks import common
from dheads_jax.data import builder, process, sources

FLAGS = flags.FLAGS
flags.DEFINE_string("videos_dir", common.GRID_DIR, "Clips to prepare.")
flags.DEFINE_string("output", common.result_path("prepare_engines"), "The result table.")
flags.DEFINE_integer("repeats", 2, "Builds per configuration.")
flags.DEFINE_list("detect_every", ["5"], "Sparse-detection k values to time on the local pool (2 workers).")

FRAMES_PER_GRID_CLIP = 75
# Public sizes: LRW about 500,000 clips of 29 frames (1.16 s); VoxCeleb2 about 2,400 hours.
LRW_FRAMES = 500_000 * 29
VOXCELEB2_FRAMES = 2_400 * 3600 * 25


def beam_options(workers: int) -> str:
    if workers == 1:
        return "runner=DirectRunner,direct_num_workers=1"
    return f"runner=DirectRunner,direct_num_workers={workers},direct_running_mode=multi_processing"


def copies(folder: str, times: int) -> str:
    """A folder holding ``times`` symbolic links to every clip of --videos_dir."""
    for t in range(times):
        for name in sorted(os.listdir(FLAGS.videos_dir)):
            if name.endswith(".mpg"):
                os.symlink(os.path.join(FLAGS.videos_dir, name), os.path.join(folder, f"copy{t}_{name}"))
    return folder


def build(engine: str, workers: int, detect_every: int = 1, times: int = 1) -> tuple[float, int]:
    """Seconds of one build, and the clips written."""
    settings = process.PrepareSettings(detect_every=detect_every)
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as videos:
        result = builder.prepare_dataset(
            sources.ClipSpec(copies(videos, times) if times > 1 else FLAGS.videos_dir),
            out,
            settings=settings,
            engine=builder.Engine(
                num_workers=workers, beam_options=beam_options(workers) if engine == "beam" else None
            ),
        )
    return result.seconds, sum(result.written.values())


def main() -> common.Lines:
    logging.set_verbosity(logging.WARNING)
    configs = [("local", 1, 1, 1), ("local", 2, 1, 1), ("beam", 1, 1, 1), ("beam", 2, 1, 1)]
    configs += [("local", 2, 1, 3), ("beam", 2, 1, 3)]
    configs += [("local", 2, int(k), 1) for k in FLAGS.detect_every]
    rows, medians = [], {}
    for engine, workers, k, times_over in configs:
        times = []
        for _ in range(FLAGS.repeats):
            seconds, n = build(engine, workers, k, times_over)
            times.append(seconds)
            print(f"{engine} workers={workers} detect_every={k}: {n} clips in {seconds:.1f} s", flush=True)
        med = statistics.median(times)
        medians[(engine, workers, k, n)] = med
        rows.append((engine, workers, k, n, med, min(times), max(times), n / med))
    names = {"local": "local pool", "beam": "Beam DirectRunner"}
    # The machine line after the builds: it starts JAX, and the workers are forked.
    emit = common.start_table(
        "load avg: at the end (other work on the machine slows every row)",
        f"data: {FLAGS.videos_dir} (11 clips of {FRAMES_PER_GRID_CLIP} frames; 33 = three links to each), "
        f"128 px, mel 64x4; {FLAGS.repeats} builds per row: median [min, max]",
        "",
        f"{'engine':<20} {'workers':>7} {'detect_every':>12} {'clips':>5} {'seconds':>20} {'clips/s':>8}",
        versions=("apache_beam", "tensorflow", "tensorflow_datasets", "dlib", "av"),
    )
    for engine, workers, k, n, med, lo, hi, rate in rows:
        span = f"{med:.1f} [{lo:.1f}, {hi:.1f}]"
        emit(f"{names[engine]:<20} {workers:>7} {k:>12} {n:>5} {span:>20} {rate:>8.2f}")
    emit()
    for workers in (1, 2):
        ratio = medians[("beam", workers, 1, 11)] / medians[("local", workers, 1, 11)]
        emit(f"11 clips, DirectRunner / local pool, {workers} worker(s): {ratio:.2f}x the time")
    marginal = {}
    for engine in ("local", "beam"):
        per_clip = (medians[(engine, 2, 1, 33)] - medians[(engine, 2, 1, 11)]) / 22
        marginal[engine] = per_clip
        fixed = medians[(engine, 2, 1, 11)] - 11 * per_clip
        emit(
            f"{names[engine]}, 2 workers: {per_clip:.2f} s per extra clip ({1 / per_clip:.2f} clips/s) "
            f"+ {fixed:.1f} s fixed (start-up, writing)"
        )
    ratio = marginal["beam"] / marginal["local"]
    emit(f"per extra clip, DirectRunner / local pool, 2 workers: {ratio:.2f}x the time")
    for k in FLAGS.detect_every:
        speedup = medians[("local", 2, 1, 11)] / medians[("local", 2, int(k), 11)]
        emit(f"sparse detection k={k}, local pool 2 workers: {speedup:.2f}x faster per build")
    # Cost per frame and worker: the local pool's seconds per extra clip times its 2 workers,
    # over the frames of a clip (start-up excluded: it does not grow with the set).
    per_frame = marginal["local"] * 2 / FRAMES_PER_GRID_CLIP
    emit(
        "",
        f"one worker, per-frame detection: {per_frame * 1e3:.1f} ms per frame of 360x288 video (whole clip)",
        f"estimate, LRW (500,000 clips x 29 frames): {LRW_FRAMES * per_frame / 3600:,.0f} worker-hours",
        f"estimate, VoxCeleb2 (2,400 h of video): {VOXCELEB2_FRAMES * per_frame / 3600:,.0f} worker-hours",
        "(estimates scale the measured per-frame cost; larger source frames cost more detection)",
    )
    return emit


common.run(main)
