"""Drift over a long video: 30 s of speech from one held-out identity, per sampler, with and without stabilize.

  python -m benchmarks.long_video --exports=TEACHER/export,STUDENT/export [--seconds=30] \
      [--output=benchmarks/results/long_video.txt] [--figures=docs/samplers]

The speech is the audio of the bundled GRID clips joined in name order, cut to
``--seconds``; the identity is the first frame of the first held-out clip of the export's
dataset. Every export samples it with its own sampler, once with the official ``stabilize``
option off and once on (``sampling.stabilize_every`` of the export), each as ``--copies``
videos in one batch (video ids 0..copies-1: independent noise, the spread shown as a range).

Per second of video:
* LPIPS of each frame to the identity, averaged over the second;
* landmark geometry: the mean distance of the 68 landmarks of each frame to the identity's,
  in units of the identity's outer eye-corner distance (mouth included: a speaking face is
  never 0; drift shows as growth);
and per 5 s window, the correlation at lag 0 of the mouth opening with the audio energy
(both high-passed, as the evaluation suite's AV correlation).

"Drifts from" is the first second from which the per-second LPIPS stays above 1.10 times
the mean of the first 5 s; "-" when it never does. Writes the table to ``--output`` and
long_video.png into ``--figures``.
"""

from __future__ import annotations

import glob
import os

import numpy as np
from absl import app, flags

from benchmarks import common
from dheads_jax import generate, media
from dheads_jax.data import audio as audio_lib
from dheads_jax.imaging import from_uint8
from dheads_jax.progress import Progress

FLAGS = flags.FLAGS
flags.DEFINE_list("exports", None, "Exports to compare (a teacher and its students).")
flags.DEFINE_integer("seconds", 30, "Seconds of speech.")
flags.DEFINE_integer("copies", 2, "Videos per setting (independent noise).")
flags.DEFINE_string("output", common.result_path("long_video"), "The result table.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_string("figures", os.path.join(common.ROOT, "docs", "samplers"), "Folder of long_video.png.")

WINDOW_S = 5
DRIFT = 1.10


def joined_speech(seconds: int) -> np.ndarray:
    parts = [media.read_audio(p)[0] for p in sorted(glob.glob(os.path.join(common.GRID_DIR, "*.mpg")))]
    waveform = np.concatenate(parts)
    need = seconds * media.SAMPLE_RATE
    if len(waveform) < need:
        raise app.UsageError(f"the bundled clips hold {len(waveform) / media.SAMPLE_RATE:.1f} s of speech")
    return waveform[:need]


def held_out_identity(sampler: generate.Sampler) -> tuple[np.ndarray, str]:
    from dheads_jax.data import cache, reader

    dataset = cache.ensure_dataset(sampler.config)
    clip = next(iter(reader.load_clips(dataset, "test")))
    return clip.frames[0], clip.clip_id


def per_second(values: np.ndarray) -> np.ndarray:
    n = len(values) // media.FPS * media.FPS
    return np.nanmean(values[:n].reshape(-1, media.FPS), axis=1)


def measure(video: np.ndarray, identity: np.ndarray, waveform: np.ndarray) -> dict:
    """Per-second LPIPS and landmark distance to the identity, per-window mouth-audio correlation."""
    from dheads_jax.metrics import landmarks, lipsync, perceptual

    target = np.ascontiguousarray(np.broadcast_to(identity, video.shape))
    lp = perceptual.lpips(video, target)
    lm = landmarks.video_landmarks(video)
    ref = landmarks.video_landmarks(identity[None])[0]
    eyes = np.linalg.norm(ref[36] - ref[45])
    geometry = np.linalg.norm(lm - ref[None], axis=-1).mean(-1) / eyes
    opening = lipsync.mouth_opening(lm)
    energy = lipsync.audio_envelope(waveform, len(video))
    w = WINDOW_S * media.FPS
    windows = [
        lipsync.sync_stats(opening[i : i + w], energy[i : i + w])["correlation"]
        for i in range(0, len(video) - w + 1, w)
    ]
    return dict(
        lpips=per_second(lp),
        geometry=per_second(geometry),
        av=np.array([np.nan if c is None else c for c in windows]),
    )


def drifts_from(curve: np.ndarray) -> str:
    base = curve[:WINDOW_S].mean()
    above = curve > DRIFT * base
    for s in range(WINDOW_S, len(curve)):
        if above[s:].all():
            return f"{s} s"
    return "-"


def table(results: list[dict], clip_id: str) -> common.Lines:
    emit = common.start_table(
        f"identity: first frame of held-out clip {clip_id}; {FLAGS.seconds} s of joined GRID speech; "
        f"{FLAGS.copies} videos per row (seed {FLAGS.seed}, video ids 0..{FLAGS.copies - 1}): mean [min, max]",
        f"drifts from: first second after which LPIPS to the identity stays > {DRIFT:.2f} x its first-5-s mean",
        "",
        f"{'row':<28} {'LPIPS first 5 s':>16} {'LPIPS last 5 s':>16} {'last/first':>18} {'drifts from':>12} "
        f"{'landmarks last/first':>22} {'AV corr per 5 s window':>40}",
    )
    for r in results:
        lp = r["lpips"]
        first, last = lp[:, :WINDOW_S].mean(1), lp[:, -WINDOW_S:].mean(1)
        ratio = last / first
        g = r["geometry"]
        g_ratio = np.nanmean(g[:, -WINDOW_S:], 1) / np.nanmean(g[:, :WINDOW_S], 1)
        av = " ".join(f"{v:+.2f}" for v in np.nanmean(r["av"], 0))
        emit(
            f"{r['name']:<28} {first.mean():>16.4f} {last.mean():>16.4f} "
            f"{ratio.mean():>7.3f} [{ratio.min():.3f}, {ratio.max():.3f}] {drifts_from(lp.mean(0)):>12} "
            f"{g_ratio.mean():>22.3f} {av:>40}"
        )
    return emit


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for r in results:
        style = "--" if r["stabilize"] else "-"
        for ax, m in zip(axes, ("lpips", "geometry", "av"), strict=True):
            curves = r[m]
            x = np.arange(1, curves.shape[1] + 1) * (WINDOW_S if m == "av" else 1)
            (line,) = ax.plot(x, np.nanmean(curves, 0), style, label=r["name"])
            ax.fill_between(x, np.nanmin(curves, 0), np.nanmax(curves, 0), alpha=0.15, color=line.get_color())
    axes[0].set_ylabel("LPIPS to the identity")
    axes[1].set_ylabel("landmark distance / eye distance")
    axes[2].set_ylabel("mouth-audio correlation (5 s window)")
    for ax in axes:
        ax.set_xlabel("second of video")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Drift over {FLAGS.seconds} s (mean and range over {FLAGS.copies} videos)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> common.Lines:
    if not FLAGS.exports:
        raise app.UsageError("--exports is required")
    waveform = joined_speech(FLAGS.seconds)
    results = []
    identity = None
    for path in FLAGS.exports:
        for stabilize in (False, True):
            sampler = generate.Sampler.from_export(path, dict(stabilize=stabilize), FLAGS.seed)
            if identity is None:
                identity, clip_id = held_out_identity(sampler)
            emb = audio_lib.encode_waveform(waveform, sampler.encoder.mel)
            jobs = [generate.Job(from_uint8(identity), emb, None, "", i) for i in range(FLAGS.copies)]
            progress = Progress(FLAGS.copies * len(emb), "frames", label=f"{path} stabilize={stabilize}")
            progress.begin()
            videos = sampler.collect(
                jobs, on_frames=lambda k, active, p=progress: p.update(int(active.sum()))
            )
            o = sampler.options
            if "distillation" in sampler.meta.get("provenance", {}):
                name = f"student {o.steps}"
            else:
                name = f"teacher {o.sampler.upper()} {o.steps}" + (
                    f", guidance {o.audio_guidance:g}" if o.audio_guidance != 1 else ""
                )
            per_copy = [measure(v, identity, waveform) for v in videos]
            results.append(
                dict(
                    name=name + (", stabilize" if stabilize else ""),
                    export=path,
                    stabilize=stabilize,
                    **{m: np.stack([c[m] for c in per_copy]) for m in ("lpips", "geometry", "av")},
                )
            )
    plot(results, os.path.join(FLAGS.figures, "long_video.png"))
    return table(results, clip_id)


common.run(main)
