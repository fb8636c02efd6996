"""Samplers against quality: every sampler of a teacher export and its distilled students.

  # one teacher (and its students), every row and sampling seed; resumable:
  python -m benchmarks.samplers --teacher=T/export --students=S4/export,S2/export,S1/export \
      --workdir=/tmp/samplers/seed0
  # several teachers (training seeds) into one table, plot and frame grid:
  python -m benchmarks.samplers --combine=/tmp/samplers/seed0,/tmp/samplers/seed1 \
      --output=docs/samplers/samplers.txt --figures=docs/samplers

Rows (all on the teacher's held-out split, each with the teacher's audio guidance):
DDPM 100 and 50 (the official sampler), DDIM 25, 10 and 5, DPM-Solver++(2M) 10 and 5, and
each student's own steps (one network pass per step, guidance distilled in). For every row
and sampling seed it samples the split with ``generate.Sampler``, evaluates it with the
evaluation suite (``dheads_jax.evaluate``: mouth correlation with the ground truth, AV
correlation and offset, LPIPS, LMD, FVD, OFM and F-MSE) and times the sampling on this
machine (frames/s after the first frame, which carries the compilation).

Network passes per frame: steps x 2 with audio guidance (two passes), else steps. The
accelerator column is an estimate, not a measurement (this machine has none): per pass,
the larger of the XLA FLOP count at 30 % of an H200's dense bf16 peak (989 TFLOP/s) and
0.5 ms (a 64 px U-Net of this size is bound by kernel launches, not FLOPs), times the
passes of 25 frames.

A run writes ``results.json`` in its workdir, and every (row, seed) keeps its videos and
report there, so an interrupted run resumes where it stopped; a later run in the same
workdir (other ``--rows``, ``--seeds`` or students) adds its rows to the earlier ones.
"""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np
from absl import app, flags, logging

from benchmarks import common
from dheads_jax import describe, evaluate, generate, media

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher", None, "The teacher export.")
flags.DEFINE_list(
    "students",
    [],
    "Student exports distilled from the teacher: PATH (row 'student N') or NAME=PATH (row NAME, "
    "for several students of the same step count, e.g. 'student 4 (1500)=D/export').",
)
flags.DEFINE_string("dataset", None, "Prepared dataset (default: the teacher config's cached one).")
flags.DEFINE_string("split", "test", "Held-out split.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Sampling seeds.")
flags.DEFINE_list(
    "rows", [], "Only these teacher rows (e.g. ddim10,dpmpp5); none: only the students; default all."
)
flags.DEFINE_string("workdir", None, "Where videos, reports and results.json go.")
flags.DEFINE_list("combine", [], "Workdirs of finished runs to merge into one table.")
flags.DEFINE_string("output", common.result_path("samplers"), "The combined table.")
flags.DEFINE_string(
    "figures", os.path.join(common.ROOT, "docs", "samplers"), "Folder of the combined plot and frame grid."
)

# (key, name, sampling overrides), from the most steps to the fewest per sampler.
TEACHER_ROWS = tuple(
    (f"{sampler}{steps}", f"{name} {steps}", dict(sampler=sampler, steps=steps))
    for sampler, name, counts in (
        ("ddpm", "DDPM", (100, 50)),
        ("ddim", "DDIM", (25, 10, 5)),
        ("dpmpp", "DPM++", (10, 5)),
    )
    for steps in counts
)
MEASURES = (
    ("mouth_correlation", "mouth corr", 3),
    ("av_correlation", "AV corr", 3),
    ("av_offset", "AV offset", 1),
    ("lpips", "LPIPS", 4),
    ("lmd", "LMD", 3),
    ("fvd", "FVD", 0),
    ("ofm", "OFM", 1),
    ("fmse", "F-MSE", 2),
    ("psnr", "PSNR", 2),
)
PEAK_FLOPS = 989e12  # H200 dense bf16
UTILISATION = 0.3
LAUNCH_FLOOR_S = 5e-4


def sample_split(sampler: generate.Sampler, dataset: str, split: str, out_dir: str) -> dict:
    """Samples every clip of the split in one batch into ``out_dir``; returns the timing."""
    request = generate.Request(dataset=dataset, split=split, output_dir=out_dir)
    entries, _ = generate.plan_dataset(sampler, request)
    jobs, failed = generate.load_entries(sampler, request, entries)
    if failed or not jobs:
        raise RuntimeError(f"{dataset}: clips that cannot be sampled: {failed}")
    timing = dict(done=0, start=time.perf_counter(), first=None)

    def frame_done(k, active):
        if k == 0:
            timing["first"] = time.perf_counter()
        else:
            timing["done"] += int(active.sum())

    sampler.write(jobs, on_frames=frame_done)
    end, first = time.perf_counter(), timing["first"]
    return dict(frames_per_s=timing["done"] / max(end - first, 1e-9), first_frame_s=first - timing["start"])


def accelerator_estimate(flops: float, passes: int) -> float:
    """Estimated accelerator seconds per second of video (see the module docstring)."""
    per_pass = max(flops / (UTILISATION * PEAK_FLOPS), LAUNCH_FLOOR_S)
    return per_pass * passes * media.FPS


def run_rows(workdir: str) -> None:
    teacher = generate.Sampler.from_export(FLAGS.teacher)
    dataset = FLAGS.dataset
    if dataset is None:
        from dheads_jax.data import cache

        dataset = cache.ensure_dataset(teacher.config)
    rows = [(key, name, FLAGS.teacher, over) for key, name, over in TEACHER_ROWS]
    if FLAGS.rows:
        unknown = set(FLAGS.rows) - {key for key, _, _ in TEACHER_ROWS} - {"none"}
        if unknown:
            raise app.UsageError(f"--rows: unknown rows {sorted(unknown)}")
        rows = [r for r in rows if r[0] in FLAGS.rows]
    for entry in FLAGS.students:
        rows.append(student_row(entry))
    flops = describe.forward_flops(teacher.config)
    results_path = os.path.join(workdir, "results.json")
    results = dict(
        teacher=os.path.abspath(FLAGS.teacher),
        workdir=os.path.abspath(workdir),
        dataset=dataset,
        split=FLAGS.split,
        machine=common.machine_line(),
        pass_gflops=flops / 1e9,
        rows={},
    )
    if os.path.exists(results_path):  # an earlier run here: keep its rows, add or redo these
        with open(results_path, encoding="utf-8") as f:
            earlier = json.load(f)
        if earlier["teacher"] != results["teacher"]:
            raise app.UsageError(f"{workdir} holds the rows of another teacher: {earlier['teacher']}")
        results["rows"] = earlier["rows"]
    for key, name, path, over in rows:
        for seed in (int(s) for s in FLAGS.seeds):
            sampler = generate.Sampler.from_export(path, over, seed)
            o = sampler.options
            row = results["rows"].setdefault(
                key,
                dict(
                    name=name,
                    export=os.path.abspath(path),
                    **{field: getattr(o, field) for field in ("sampler", "steps", "eta", "audio_guidance")},
                    passes=o.passes_per_frame(),
                    accelerator_s_per_s=accelerator_estimate(flops, o.passes_per_frame()),
                    seeds={},
                ),
            )
            here = os.path.join(workdir, key, f"seed{seed}")
            done = os.path.join(here, "measures.json")
            if not os.path.exists(done):
                logging.info("%s, seed %d: sampling", name, seed)
                timing = sample_split(sampler, dataset, FLAGS.split, os.path.join(here, "videos"))
                report = evaluate.evaluate(
                    os.path.join(here, "videos"), dataset, os.path.join(here, "report"), FLAGS.split
                )
                measures = {k: report["summary"]["generated"].get(k) for k, _, _ in MEASURES} | timing
                common.write_text(done, json.dumps(measures, indent=1))
            with open(done, encoding="utf-8") as f:
                row["seeds"][str(seed)] = json.load(f)
            logging.info("%s, seed %d: %s", name, seed, row["seeds"][str(seed)])
            common.write_text(results_path, json.dumps(results, indent=1))


def student_row(entry: str) -> tuple[str, str, str, dict]:
    """(key, name, export, overrides) of a --students entry, PATH or NAME=PATH."""
    name, _, path = entry.rpartition("=")
    steps = generate.Sampler.from_export(path).options.steps
    if not name:
        return f"student{steps}", f"student {steps}", path, {}
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return f"student{steps}_{slug}", name, path, {}


def spread(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.3g} [{min(values):.3g}, {max(values):.3g}]"


def row_order(keys) -> list[str]:
    """From the most passes per frame to the fewest: the teacher's rows, then students 4, 2, 1."""
    order = [key for key, _, _ in TEACHER_ROWS]

    def rank(k):
        if k in order:
            return (order.index(k), 0, k)
        steps = re.match(r"student(\d+)", k)
        return (len(order), -int(steps.group(1)) if steps else 0, k)

    return sorted(keys, key=rank)


def combine(workdirs: list[str], figures: str) -> common.Lines:
    runs = []
    for w in workdirs:
        with open(os.path.join(w, "results.json"), encoding="utf-8") as f:
            runs.append(json.load(f))
    keys = []
    for r in runs:
        keys += [k for k in r["rows"] if k not in keys]
    keys = row_order(keys)
    lines = [
        "# python -m benchmarks.samplers --combine=" + ",".join(workdirs),
        # the machine of the first run; the line of an older run lacks the "machine: " head
        f"machine: {runs[0]['machine'].removeprefix('machine: ')}",
        f"teachers: {', '.join(r['teacher'] for r in runs)}",
        f"held-out split {runs[0]['split']} of {runs[0]['dataset']}; one pass {runs[0]['pass_gflops']:.2f} GFLOP",
        "each cell: mean [min, max] over its runs (every teacher and sampling seed done); frames/s on this CPU;",
        f"accel s/s: ESTIMATED accelerator seconds per second of video (max(FLOPs / {UTILISATION:.0%} of "
        f"{PEAK_FLOPS / 1e12:.0f} TFLOP/s, {LAUNCH_FLOOR_S * 1e3:.1f} ms) per pass), not measured",
        "",
    ]
    from configs import crema

    paper_flops = describe.forward_flops(crema.get_config())
    lines.insert(
        -1,
        f"accel s/s 128 px: the same estimate for the paper-scale model (configs/crema.py, one pass "
        f"{paper_flops / 1e9:.0f} GFLOP) sampled with the row's sampler; 1 = real time",
    )
    header = (
        ["row", "passes/frame", "runs"]
        + [label for _, label, _ in MEASURES]
        + ["CPU frames/s", "accel s/s", "accel s/s 128 px"]
    )
    table, summary = [], {}
    for k in keys:
        rows = [r["rows"][k] for r in runs if k in r["rows"]]
        cells = [m for row in rows for m in row["seeds"].values()]
        summary[k] = dict(
            name=rows[0]["name"],
            passes=rows[0]["passes"],
            n=len(cells),
            **{m: [c.get(m) for c in cells] for m, _, _ in MEASURES},
            fps=[c["frames_per_s"] for c in cells],
        )
        table.append(
            [rows[0]["name"], str(rows[0]["passes"]), str(len(cells))]
            + [spread(summary[k][m]) for m, _, _ in MEASURES]
            + [
                spread(summary[k]["fps"]),
                f"{rows[0]['accelerator_s_per_s']:.3g}",
                f"{accelerator_estimate(paper_flops, rows[0]['passes']):.3g}",
            ]
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    lines.append(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines += [" | ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)) for t in table]
    lines += ["", *goal_lines(runs)]
    os.makedirs(figures, exist_ok=True)
    plot(summary, os.path.join(figures, "samplers.png"))
    frame_grid(runs[0], keys, os.path.join(figures, "samplers_frames.png"))
    return common.Lines(*lines)


GOAL = dict(mouth_correlation=0.9, av_correlation=0.9, lpips=1.1)  # ratios to the guided DDIM 10
GOAL_LABELS = (("mouth_correlation", "mouth corr"), ("av_correlation", "AV corr"), ("lpips", "LPIPS"))


def pm(se: float) -> str:
    return "" if np.isnan(se) else f" +-{se:.2f}"


def goal_lines(runs: list[dict]) -> list[str]:
    """Every row against the guided 10-step DDIM row of its own teacher (means over the
    sampling seeds), per teacher, each ratio with its standard error (the seed-to-seed spread
    of both means, taken as independent); then every row's ratios averaged over the teachers;
    then the rows within the goal for every teacher that has them, fastest first."""
    lines, within, ratios = (
        ["ratios to the same teacher's DDIM 10 (goal: mouth corr >= 0.90, AV corr >= 0.90, LPIPS <= 1.10)"],
        {},
        {},
    )
    for i, run in enumerate(runs):
        rows = run["rows"]
        if "ddim10" not in rows:
            lines.append(f"teacher {i}: no DDIM 10 row")
            continue

        def values(k, m, rows=rows):
            return np.array([c[m] for c in rows[k]["seeds"].values() if c.get(m) is not None])

        def rel_se(k, m):
            """The standard error of the row's seed mean, relative to that mean."""
            v = values(k, m)
            return np.std(v, ddof=1) / np.sqrt(len(v)) / abs(np.mean(v)) if len(v) > 1 else np.nan

        noise = {m: values("ddim10", m) / np.mean(values("ddim10", m)) for m in GOAL}
        lines.append(
            f"teacher {i}, DDIM 10 (n={len(values('ddim10', 'lpips'))}) one seed / its own mean: "
            + ", ".join(f"{label} [{min(noise[m]):.2f}, {max(noise[m]):.2f}]" for m, label in GOAL_LABELS)
            + "; standard error of the mean: "
            + ", ".join(f"{label} {rel_se('ddim10', m):.0%}" for m, label in GOAL_LABELS)
        )
        for k in row_order(rows):
            if k == "ddim10":
                continue
            r = {m: np.mean(values(k, m)) / np.mean(values("ddim10", m)) for m in GOAL}
            se = {m: r[m] * np.hypot(rel_se(k, m), rel_se("ddim10", m)) for m in GOAL}
            ok = (
                all(r[m] >= GOAL[m] for m in ("mouth_correlation", "av_correlation"))
                and r["lpips"] <= GOAL["lpips"]
            )
            within.setdefault(k, []).append(ok)
            ratios.setdefault(k, []).append((r, se))
            lines.append(
                f"teacher {i}, {rows[k]['name']:<22} (n={len(values(k, 'lpips'))}) / DDIM 10: "
                + ", ".join(f"{label} {r[m]:.2f}{pm(se[m])}" for m, label in GOAL_LABELS)
                + f": {'within' if ok else 'outside'} the goal"
            )
    names = {k: r["rows"][k]["name"] for r in runs for k in r["rows"]}
    for k in row_order(ratios):
        if len(ratios[k]) < 2:
            continue
        mean = {m: np.mean([r[m] for r, _ in ratios[k]]) for m in GOAL}
        se = {m: np.sqrt(np.sum([s[m] ** 2 for _, s in ratios[k]])) / len(ratios[k]) for m in GOAL}
        lines.append(
            f"mean over {len(ratios[k])} teachers, {names[k]:<22} / DDIM 10: "
            + ", ".join(f"{label} {mean[m]:.2f}{pm(se[m])}" for m, label in GOAL_LABELS)
        )
    passes = {k: r["rows"][k]["passes"] for r in runs for k in r["rows"]}
    keep = sorted((k for k, oks in within.items() if all(oks)), key=lambda k: passes[k])
    lines.append(
        "within the goal for every teacher that has the row: "
        + (", ".join(f"{k} ({passes[k]} passes, {len(within[k])} teachers)" for k in keep) or "none")
    )
    return lines


def plot(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (m, label) in zip(
        axes,
        [("mouth_correlation", "mouth corr"), ("av_correlation", "AV corr"), ("lpips", "LPIPS")],
        strict=True,
    ):
        seen = {}
        for k, r in summary.items():
            vals = [v for v in r[m] if v is not None]
            if not vals:
                continue
            # rows of the same pass count (students of one step count) side by side, not on top
            x = r["passes"] * 1.15 ** seen.get(r["passes"], 0)
            seen[r["passes"]] = seen.get(r["passes"], 0) + 1
            family = (
                "o"
                if k.startswith("ddpm")
                else "s"
                if k.startswith("ddim")
                else "^"
                if k.startswith("dpmpp")
                else "*"
            )
            ax.errorbar(
                x,
                np.mean(vals),
                yerr=[[np.mean(vals) - min(vals)], [max(vals) - np.mean(vals)]],
                fmt=family,
                capsize=3,
            )
            ax.annotate(r["name"], (x, np.mean(vals)), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("network passes per frame")
        ax.set_title(label)
    fig.suptitle("Quality against network passes per frame (mean and range over teachers and seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def frame_grid(run: dict, keys: list[str], path: str) -> None:
    """Frames 0, 1 s, 2 s of the first held-out clip: the real clip, then one row per sampler
    (seed 0 of the first teacher), shown at twice their size."""
    from PIL import Image, ImageDraw

    from dheads_jax.data import reader
    from dheads_jax.evaluate import read_clip

    picks = (0, 25, 50)

    def strip_of(frames: np.ndarray, name: str) -> np.ndarray:
        strip = np.concatenate([frames[i] for i in picks if i < len(frames)], 1)
        strip = strip.repeat(2, 0).repeat(2, 1)
        label = Image.new("RGB", (140, strip.shape[0]), "white")
        ImageDraw.Draw(label).text((4, strip.shape[0] // 2 - 6), name, fill="black")
        return np.concatenate([np.asarray(label), strip], 1)

    strips, clip = [], None
    for k in keys:
        seed = sorted(run["rows"][k]["seeds"])[0] if k in run["rows"] else None
        if seed is None:
            continue
        videos = os.path.join(run["workdir"], k, f"seed{seed}", "videos")
        clip = clip or sorted(f for f in os.listdir(videos) if f.endswith(".mp4"))[0]
        frames, _ = read_clip(os.path.join(videos, clip))
        strips.append(strip_of(frames, run["rows"][k]["name"]))
    real = next(c for c in reader.load_clips(run["dataset"], run["split"]) if f"{c.clip_id}.mp4" == clip)
    strips.insert(0, strip_of(real.frames, f"real {real.clip_id}"))
    widths = {s.shape[1] for s in strips}
    if len(widths) > 1:
        raise ValueError(f"videos of different lengths or sizes: {sorted(widths)}")
    Image.fromarray(np.concatenate(strips, 0)).save(path)


def main() -> common.Lines | None:
    """The combined table (``--combine``), or None: a run's rows go to its workdir."""
    if FLAGS.combine:
        return combine(FLAGS.combine, FLAGS.figures)
    if not FLAGS.teacher or not FLAGS.workdir:
        raise app.UsageError("--teacher and --workdir are required (or --combine)")
    os.makedirs(FLAGS.workdir, exist_ok=True)
    run_rows(FLAGS.workdir)
    return None


common.run(main)
