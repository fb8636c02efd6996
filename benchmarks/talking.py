"""Does the face talk? Held-out photos x held-out speech against real GRID videos.

  python -m benchmarks.talking [--export=EXPORT] [--seeds=0,1] [--output=benchmarks/results/talking.txt]
      [--figures=docs/talking] [--pairs=N] [--long_seconds=30] [--long_photos=1] [--s1_clips=10]
      [--speech=grid_swwp2s,fr_espeak,...] [--sampler=ddim --steps=10 --eta=0 --audio_guidance=5]

Every photo of data/samples/photos (none from GRID or CREMA-D training data) speaks every
held-out speech clip of ``SPEECH`` (GRID clip swwp2s held out from the bundled model's
training, French, German and Spanish from espeak-ng, LibriVox read English with pink noise at
5 dB SNR; see data/samples/speech/README.md), one video per pair and seed. Each video is
measured as ``dheads_jax.metrics.talking`` says: 68-point landmarks of the generated frames
(``landmarks.video_landmarks``), then

* lip-gap std: std over frames of the inner-lip gap / outer eye-corner distance;
* AV corr and lag: the largest Pearson correlation, over lags -3..3 frames, of the
  high-passed lip gap with the high-passed audio RMS envelope at 25 fps, and its lag
  (positive: lips late);
* bilabial closure rate and closed-in-speech fraction, from the speech's phone alignment
  (data/samples/speech/align: espeak-ng's own phoneme timings, pocketsphinx alignments of
  the English speech): the fraction of /p b m/ onsets with a lip gap below 0.045 within one
  frame of the onset, and the fraction of speech frames below it (its chance level);
* identity PSNR outside the lower face (dB): each frame against the aligned photo, over the
  pixels outside rows [0.55, 1) x columns [0.15, 0.85) of the aligned frame, mean over frames;
* with ``--long_seconds`` (default 30) the first ``--long_photos`` photos also speak that
  long a chain of all the held-out speech: the drift is the mean LPIPS to the identity over
  its last 5 s divided by that over its first 5 s.

Real references, measured the same way on aligned crops at the model's resolution (the
clip's landmarks, ``align.align_frames`` as the data preparation does, landmarks again on the
crops): the held-out clips bbaf2n and swwp2s of data/samples/grid, one clip each of 4 more GRID
speakers in data/samples/grid_more (their phone alignments are in data/samples/speech/align), and ``--s1_clips`` clips of speaker s1 with GRID's own word
alignments (speaker s1 is the bulk of the next recipe's training data: a calibration
reference, not a held-out one; it is where the closure threshold comes from).

Writes the table to ``--output`` and into ``--figures``: talking_mouth_strip.png (consecutive
mouth crops of one pair, the generated video above the real one) and talking_gap_energy.png
(lip gap and audio energy over time, generated and real).
"""

from __future__ import annotations

import glob
import os
import time

import numpy as np
from absl import app, flags, logging

from dheads_jax import bundled, files, generate, media
from dheads_jax.data import align
from dheads_jax.data import audio as audio_lib
from dheads_jax.imaging import to_uint8
from dheads_jax.metrics import landmarks, talking
from dheads_jax.progress import Progress, format_seconds, quiet_library_logs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "data", "samples")
ALIGN_DIR = os.path.join(SAMPLES, "speech", "align")
GRID_MORE = os.path.join(SAMPLES, "grid_more")
# Real clips of four more GRID speakers (name: file under data/samples/grid_more); their phone
# alignments are data/samples/speech/align/grid_<name>.phones.align.
OTHER_REAL = {
    "bbab8n": "sx/bbab8n.mp4",
    "s16_bgal9n": "s16/bgal9n.mp4",
    "s25_bbwx8n": "s25/bbwx8n.mp4",
    "s27_bbbp8n": "s27/bbbp8n.mp4",
}

# name: (language, file under data/samples). Alignments: ALIGN_DIR/<name>.phones.align.
SPEECH = {
    "grid_swwp2s": ("en (GRID)", "grid/swwp2s.mpg"),
    "en_librivox": ("en (LibriVox)", "speech/en_librivox.flac"),
    "en_librivox_noisy": ("en, 5 dB noise", "speech/en_librivox_noisy.flac"),
    "fr_espeak": ("fr (espeak)", "speech/fr_espeak.wav"),
    "de_espeak": ("de (espeak)", "speech/de_espeak.wav"),
    "es_espeak": ("es (espeak)", "speech/es_espeak.wav"),
}
DEFAULT_SPEECH = ["grid_swwp2s", "en_librivox_noisy", "fr_espeak", "de_espeak", "es_espeak"]
REAL_HELD_OUT = [os.path.join(SAMPLES, "grid", c + ".mpg") for c in ("bbaf2n", "swwp2s")]
SMOOTHING_SIGMA = 2.0  # the data preparation's (PrepareSettings.smoothing_sigma)

FLAGS = flags.FLAGS
flags.DEFINE_string("export", None, "Export to measure (default: the bundled model).")
flags.DEFINE_string("photos", os.path.join(SAMPLES, "photos"), "Folder of held-out photos.")
flags.DEFINE_list("speech", DEFAULT_SPEECH, f"Held-out speech clips, of: {', '.join(SPEECH)}.")
flags.DEFINE_list("seeds", ["0"], "Sampling seeds (a row shows the mean over them).")
flags.DEFINE_integer("pairs", 0, "Measure only this many photo x speech pairs (0: all), spread over both.")
flags.DEFINE_list(
    "only", [], "Measure only these PHOTO:SPEECH pairs, each with the noise it has in the full run."
)
flags.DEFINE_string(
    "figure_photo",
    "cremad_1001.jpg",
    "The photo of the figures' pair (with grid_swwp2s; else the first such pair).",
)
flags.DEFINE_integer("long_seconds", 30, "Seconds of chained held-out speech for the drift; 0 skips it.")
flags.DEFINE_integer("long_photos", 1, "Photos (the first, in name order) that speak the long speech.")
flags.DEFINE_integer(
    "s1_clips", 10, "Real clips of GRID speaker s1 (evenly spread) for the reference; 0: none."
)
flags.DEFINE_boolean("real", True, "Measure the real GRID reference clips.")
flags.DEFINE_string("output", os.path.join(ROOT, "benchmarks", "results", "talking.txt"), "Result table.")
flags.DEFINE_string("figures", os.path.join(ROOT, "docs", "talking"), "Folder of the PNG figures ('' skips).")
flags.DEFINE_enum("sampler", None, ["ddpm", "ddim", "dpmpp"], "Override the export's sampler.")
flags.DEFINE_integer("steps", None, "Override the export's steps per frame.")
flags.DEFINE_float("eta", None, "Override the export's DDIM eta.")
flags.DEFINE_float("audio_guidance", None, "Override the export's audio guidance.")
flags.DEFINE_list("guidance_region", None, "Override the export's guidance region (top,bottom,left,right).")
flags.DEFINE_list("guidance_interval", None, "Override the export's guidance interval (lo,hi of t/T).")
flags.DEFINE_bool("guidance_grey", None, "Override the export's guidance_grey.")

COLUMNS = [
    ("video", "", 34),
    ("speech", "", 17),
    ("frames", "n", 6),
    ("lip-gap std", "gap/eyes", 11),
    ("AV corr", "Pearson", 8),
    ("AV lag", "frames", 7),
    ("AV raw", "Pearson", 8),
    ("AV null", "Pearson", 8),
    ("bilabials", "n", 9),
    ("closure rate", "fraction", 12),
    ("closed in speech", "fraction", 16),
    ("id PSNR outside", "dB", 15),
    ("drift LPIPS", "last/first 5 s", 14),
]
MEASURES = [
    "frames",
    "gap_std",
    "av_corr",
    "av_lag",
    "av_corr_raw",
    "av_null",
    "onsets",
    "closure",
    "closed_in_speech",
    "psnr",
    "drift",
]


# ------------------------------------------------------------------------------ inputs


def load_speech(path: str) -> np.ndarray:
    """16 kHz speech cut to whole 25 fps frames; a video's sound shifted to its first frame."""
    waveform, audio_start = media.read_audio(path)
    if path.endswith(media.VIDEO_EXTENSIONS):
        frames, start = media.read_video(path)
        return media.fit_waveform(media.shift_waveform(waveform, audio_start - start), len(frames))
    n = len(waveform) // media.SAMPLES_PER_FRAME
    return waveform[: n * media.SAMPLES_PER_FRAME]


def alignment(name: str) -> tuple[list[talking.Segment] | None, bool]:
    """(segments, phones) of ALIGN_DIR/<name>.phones.align, (None, False) without one."""
    path = os.path.join(ALIGN_DIR, name + ".phones.align")
    return (talking.read_align(path), True) if os.path.exists(path) else (None, False)


def pair_order(num_photos: int, num_speech: int) -> list[tuple[int, int]]:
    """All (photo, speech) index pairs, diagonals first, so that any prefix spreads over both."""
    pairs = [(p, s) for p in range(num_photos) for s in range(num_speech)]
    return sorted(pairs, key=lambda ps: ((ps[0] - ps[1]) % num_photos, ps[1], ps[0]))


def real_crops(path: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(aligned uint8 [T, S, S, 3] crops, waveform) of a real clip, aligned like the training data."""
    frames, start = media.read_video(path)
    waveform, audio_start = media.read_audio(path)
    waveform = media.fit_waveform(media.shift_waveform(waveform, audio_start - start), len(frames))
    lm = landmarks.video_landmarks(frames)
    if not np.isfinite(lm).all():
        raise ValueError(f"{path}: no face found")
    crops, _ = align.align_frames(frames, lm, size, SMOOTHING_SIGMA)
    return crops, waveform


# ------------------------------------------------------------------------------ measuring


def sample(sampler: generate.Sampler, jobs: list[generate.Job], label: str) -> list[np.ndarray]:
    """uint8 [T_i, S, S, 3] per job, sampled as one batch (one compilation)."""
    progress = Progress(sum(len(j.audio) for j in jobs), "frames", label=label)
    progress.begin()
    return sampler.collect(jobs, on_frames=lambda k, active: progress.update(int(active.sum())))


def measure(video, waveform, segments, phones, identity=None, others=()) -> dict:
    lm = landmarks.video_landmarks(video)
    stats = talking.talking_stats(lm, waveform, segments, phones)
    stats["av_null"] = talking.null_av_correlation(stats["gap"], list(others)) if len(others) else None
    stats["frames"] = len(video)
    stats["psnr"] = talking.psnr_outside_lower_face(video, identity) if identity is not None else None
    stats["drift"] = None
    stats["missing"] = float(np.isnan(lm).any(axis=(1, 2)).mean())
    return stats


def mean_over(rows: list[dict], key: str):
    values = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(values)) if values else None


def fmt(value, key: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if key in ("frames", "onsets"):
        return f"{value:.0f}"
    if key == "av_lag":
        return f"{value:+.1f}" if value != int(value) else f"{int(value):+d}"
    if key == "psnr":
        return f"{value:.2f}"
    return f"{value:.3f}"


def line(name: str, speech: str, stats: dict) -> str:
    cells = [f"{name:<{COLUMNS[0][2]}}", f"{speech:<{COLUMNS[1][2]}}"]
    for (_, _, width), key in zip(COLUMNS[2:], MEASURES, strict=True):
        cells.append(f"{fmt(stats.get(key), key):>{width}}")
    return " ".join(cells)


def header() -> list[str]:
    names = [f"{n:<{w}}" if i < 2 else f"{n:>{w}}" for i, (n, _, w) in enumerate(COLUMNS)]
    units = [
        f"{'(' + u + ')' if u else '':<{w}}" if i < 2 else f"{'(' + u + ')':>{w}}"
        for i, (_, u, w) in enumerate(COLUMNS)
    ]
    return [" ".join(names), " ".join(units), "-" * len(" ".join(names))]


def summary_lines(label: str, rows: list[dict]) -> list[str]:
    if not rows:
        return []
    mean = {k: mean_over(rows, k) for k in MEASURES}
    lines = [line(f"{label}: mean", "", mean)]
    lo, hi = {}, {}
    for k in MEASURES:
        values = [r[k] for r in rows if r.get(k) is not None and np.isfinite(r[k])]
        lo[k], hi[k] = (min(values), max(values)) if values else (None, None)
    cells = [f"{label + ': range':<{COLUMNS[0][2]}}", " " * COLUMNS[1][2]]
    for (_, _, width), k in zip(COLUMNS[2:], MEASURES, strict=True):
        text = "n/a" if lo[k] is None else f"{fmt(lo[k], k)}..{fmt(hi[k], k)}"
        cells.append(f"{text:>{width}}")
    lines.append(" ".join(cells))
    return lines


def average_seeds(per_seed: list[dict]) -> dict:
    out = {k: mean_over(per_seed, k) for k in MEASURES}
    out["gap"] = per_seed[0]["gap"]
    return out


# ------------------------------------------------------------------------------ main


def main(argv):
    del argv
    quiet_library_logs()
    t_start = time.time()
    from benchmarks import common

    unknown = [s for s in FLAGS.speech if s not in SPEECH]
    if unknown:
        raise app.UsageError(f"unknown speech {unknown}; known: {', '.join(SPEECH)}")
    export_dir = FLAGS.export or bundled.default_export()
    overrides = dict(
        sampler=FLAGS.sampler,
        steps=FLAGS.steps,
        eta=FLAGS.eta,
        audio_guidance=FLAGS.audio_guidance,
        guidance_region=FLAGS.guidance_region,
        guidance_interval=FLAGS.guidance_interval,
        guidance_grey=FLAGS.guidance_grey,
    )
    base = generate.Sampler.from_export(export_dir, overrides)
    if base.encoder.mel is None:
        raise app.UsageError(f"{export_dir}: needs an export with the mel audio encoder")
    size = base.image_size
    photos = sorted(
        glob.glob(os.path.join(FLAGS.photos, "*.jpg")) + glob.glob(os.path.join(FLAGS.photos, "*.png"))
    )
    identities = np.stack([generate.load_identity(p, size) for p in photos])
    ident_u8 = to_uint8(identities)
    speech = {name: load_speech(os.path.join(SAMPLES, SPEECH[name][1])) for name in FLAGS.speech}
    names = list(speech)
    pairs = pair_order(len(photos), len(speech))
    index = {pair: i for i, pair in enumerate(pairs)}  # a job's noise: its place in the full run
    if FLAGS.pairs:
        pairs = sorted(pairs[: FLAGS.pairs], key=lambda ps: (ps[1], ps[0]))
        index = {pair: i for i, pair in enumerate(pairs)}
    if FLAGS.only:
        pairs = [(p, s) for p, s in pairs if f"{os.path.basename(photos[p])}:{names[s]}" in FLAGS.only]
        if len(pairs) != len(set(FLAGS.only)):
            raise app.UsageError(f"--only: not all of {FLAGS.only} are PHOTO:SPEECH pairs of this run")
    embeddings = {n: audio_lib.encode_waveform(w, base.encoder.mel) for n, w in speech.items()}
    seeds = [int(s) for s in FLAGS.seeds]

    # Generated pairs: all pairs of a seed in one batch.
    results = {pair: [] for pair in pairs}
    t0 = time.time()
    sampled = 0
    for seed in seeds:
        sampler = generate.Sampler(base.config, base.params, base.meta, base.options, seed)
        jobs = [generate.Job(identities[p], embeddings[names[s]], None, "", index[(p, s)]) for p, s in pairs]
        videos = sample(sampler, jobs, f"seed {seed}: {len(pairs)} pairs")
        sampled += sum(len(v) for v in videos)
        progress = Progress(len(pairs), "videos", label=f"seed {seed}: landmarks")
        for (p, s), video in zip(pairs, videos, strict=True):
            segments, phones = alignment(names[s])
            others = [speech[n] for n in names if n != names[s]]
            results[(p, s)].append(measure(video, speech[names[s]], segments, phones, ident_u8[p], others))
            results[(p, s)][-1]["video"] = video
            progress.update()
    sampling_fps = sampled / max(time.time() - t0, 1e-9)
    rows = {pair: average_seeds(r) for pair, r in results.items()}

    # Drift: the first photos speak a long chain of all the held-out speech.
    long_rows = {}
    if FLAGS.long_seconds:
        from dheads_jax.metrics import perceptual

        chain = np.concatenate([load_speech(os.path.join(SAMPLES, f)) for _, f in SPEECH.values()])
        chain = np.concatenate([load_speech(REAL_HELD_OUT[0]), chain])
        need = FLAGS.long_seconds * media.SAMPLE_RATE
        chain = np.tile(chain, -(-need // len(chain)))[:need]
        emb = audio_lib.encode_waveform(chain, base.encoder.mel)
        picks = list(range(min(FLAGS.long_photos, len(photos))))
        sampler = generate.Sampler(base.config, base.params, base.meta, base.options, seeds[0])
        jobs = [generate.Job(identities[p], emb, None, "", 1000 + p) for p in picks]
        videos = sample(sampler, jobs, f"{FLAGS.long_seconds} s drift")
        for p, video in zip(picks, videos, strict=True):
            stats = measure(video, chain, None, False, ident_u8[p])
            target = np.ascontiguousarray(np.broadcast_to(ident_u8[p], video.shape))
            stats["drift"] = talking.drift_ratio(perceptual.lpips(video, target))
            long_rows[p] = stats

    # Real references.
    real_rows, s1_rows, real_named = [], [], {}
    if FLAGS.real:
        named = {os.path.basename(p)[: -len(".mpg")]: p for p in REAL_HELD_OUT}
        named.update({name: os.path.join(GRID_MORE, f) for name, f in OTHER_REAL.items()})
        clips = list(named.values())
        s1 = sorted(glob.glob(os.path.join(GRID_MORE, "s1", "*.mp4")))
        if FLAGS.s1_clips and s1:
            s1 = s1[:: max(1, len(s1) // FLAGS.s1_clips)][: FLAGS.s1_clips]
        else:
            s1 = []
        progress = Progress(len(clips) + len(s1), "clips", label="real references")
        sounds = {path: load_speech(path) for path in clips + s1}
        for name, path in named.items():
            crops, waveform = real_crops(path, size)
            segments, phones = alignment("grid_" + name)
            others = [sounds[c] for c in clips if c != path]
            stats = measure(crops, waveform, segments, phones, others=others)
            stats["video"], stats["waveform"], stats["segments"] = crops, waveform, segments
            real_rows.append(stats)
            real_named[name] = stats
            progress.update()
        for path in s1:
            name = os.path.splitext(os.path.basename(path))[0]
            crops, waveform = real_crops(path, size)
            align_path = os.path.join(GRID_MORE, "s1_align", name + ".align")
            segments = talking.read_align(align_path) if os.path.exists(align_path) else None
            others = [sounds[c] for c in s1 if c != path]
            s1_rows.append(measure(crops, waveform, segments, False, others=others))
            progress.update()

    # The table.
    lines = [
        common.command_line(),
        common.machine_line(),
        "does the face talk? held-out photos x held-out speech, and real GRID videos",
        f"export: {os.path.relpath(export_dir, ROOT)} ({size} px; sampler {base.options.sampler}, "
        f"{base.options.steps} steps, eta {base.options.eta}, audio guidance {base.options.audio_guidance}"
        f"{' in ' + str(base.options.guidance_region) if base.options.guidance_region else ''}"
        f"{' at t/T in ' + str(base.options.guidance_interval) if base.options.guidance_interval else ''}"
        f"{', grey' if base.options.guidance_grey else ''}); "
        f"seeds {seeds} (a row is their mean); sampling {sampling_fps:.2f} frames/s",
        f"photos: {os.path.relpath(FLAGS.photos, ROOT)} ({len(photos)}); speech: {', '.join(names)}; "
        f"{len(pairs)} pairs",
        "lip gap: inner-lip gap / outer eye-corner distance (dlib 68 points on the aligned "
        f"{size} px frames); AV corr: largest Pearson correlation over lags -3..3 frames of the",
        "high-passed (minus a 9-frame moving average) lip gap and audio RMS envelope at 25 fps; AV lag: its lag "
        "(+: lips late); AV raw: the same without",
        "the high-pass; AV null: AV corr against the other clips' speech (chance level); bilabials: /p b m/ onsets",
        f"in the alignment; closure rate: fraction of them with a lip gap < {talking.CLOSURE_THRESHOLD} within "
        "1 frame; closed in speech: fraction of speech frames",
        "below it (chance level); id PSNR outside: PSNR to the aligned photo outside the lower-face box "
        "(rows 0.55-1, columns 0.15-0.85 of the frame);",
        f"drift LPIPS: LPIPS to the photo, last 5 s / first 5 s of {FLAGS.long_seconds} s of chained "
        "held-out speech. n/a: undefined (no alignment, constant signal).",
        "",
        *header(),
    ]
    for (p, s), stats in rows.items():
        lines.append(line(f"{os.path.basename(photos[p])}", names[s], stats))
    lines.append("")
    lines += summary_lines("generated", list(rows.values()))
    for p, stats in long_rows.items():
        lines.append(line(f"{os.path.basename(photos[p])}", f"{FLAGS.long_seconds} s chain", stats))
    if real_rows:
        lines += [
            "",
            "real GRID clips held out from the bundled model's training (bbaf2n, swwp2s) and of other speakers:",
        ]
        for name, stats in real_named.items():
            lines.append(line(f"real {name}", "its own (en)", stats))
        lines += summary_lines("real held-out", real_rows)
    if s1_rows:
        lines += [
            "",
            f"real GRID speaker s1 (training speaker of the next recipe; GRID's word alignments), {len(s1_rows)} clips:",
        ]
        lines += summary_lines("real s1", s1_rows)
    missing = max([r["missing"] for rs in results.values() for r in rs] + [0.0])
    lines += [
        "",
        f"frames without a detected face (landmarks from the nearest detection): at most {missing:.1%} of a video",
    ]
    lines.append(f"runtime: {format_seconds(time.time() - t_start)}")
    text = "\n".join(lines) + "\n"
    print(text)
    files.makedirs(os.path.dirname(FLAGS.output))
    files.write_text_atomic(FLAGS.output, text)
    logging.info("wrote %s", FLAGS.output)
    if FLAGS.figures:
        swwp2s = [(p, s) for p, s in pairs if names[s] == "grid_swwp2s"]
        chosen = [(p, s) for p, s in swwp2s if os.path.basename(photos[p]) == FLAGS.figure_photo]
        pick = (chosen or swwp2s or pairs)[0]
        generated = results[pick][0]
        write_figures(
            generated["video"],
            speech[names[pick[1]]],
            rows[pick]["gap"],
            alignment(names[pick[1]])[0],
            f"{os.path.basename(photos[pick[0]])} x {names[pick[1]]}",
            real_named.get("swwp2s") if names[pick[1]] == "grid_swwp2s" else None,
        )


def _save(fig, path: str) -> None:
    tmp = media.temp_name(path)
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


def write_figures(video, waveform, gap, segments, label, real) -> None:
    """The mouth strip and the lip gap / energy plot of one pair (and its real video)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dheads_jax.metrics import lipsync

    files.makedirs(FLAGS.figures)
    onsets = talking.bilabial_onsets(segments, True) if segments else np.zeros(0)
    # The strip: 12 consecutive frames from 4 before the first bilabial onset after frame 10.
    later = [t for t in onsets if t * media.FPS >= 10]
    start = max(0, int(round(later[0] * media.FPS)) - 4) if later else 10
    start = min(start, len(video) - 12)
    size = video.shape[1]
    rows_, cols_ = slice(int(0.55 * size), int(0.95 * size)), slice(int(0.2 * size), int(0.8 * size))
    strips = [("generated", video)] + ([("real swwp2s", real["video"])] if real is not None else [])
    fig, axes = plt.subplots(len(strips), 1, figsize=(12, 1.6 * len(strips) + 0.6), squeeze=False)
    for ax, (name, frames) in zip(axes[:, 0], strips, strict=True):
        crops = [frames[k][rows_, cols_] for k in range(start, start + 12)]
        ax.imshow(np.concatenate(crops, 1), interpolation="nearest")
        w = crops[0].shape[1]
        ax.set_xticks([w * (i + 0.5) for i in range(12)], [str(start + i) for i in range(12)], fontsize=7)
        ax.set_yticks([])
        ax.set_ylabel(name, fontsize=8)
        for t in onsets:
            k = int(round(t * media.FPS)) - start
            if 0 <= k < 12:
                ax.axvline(w * k, color="red", lw=1)
    axes[-1, 0].set_xlabel("frame (red line: start of the frame of a /p b m/ onset)")
    fig.suptitle(f"Mouth region, {label}", fontsize=9)
    fig.tight_layout()
    _save(fig, os.path.join(FLAGS.figures, "talking_mouth_strip.png"))
    plt.close(fig)

    panels = [("generated: " + label, gap, waveform)]
    if real is not None:
        panels.append(("real swwp2s", real["gap"], real["waveform"]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    for ax, (name, g, w) in zip(axes[:, 0], panels, strict=True):
        t = np.arange(len(g)) / media.FPS
        ax.plot(t, g, color="C0", label="lip gap")
        ax.axhline(talking.CLOSURE_THRESHOLD, color="C0", ls=":", lw=1, label="closure threshold")
        for x in onsets:
            ax.axvline(x, color="red", lw=0.8, alpha=0.6)
        ax.set_ylabel("lip gap / eye distance")
        ax.set_ylim(0, max(0.16, float(np.nanmax(g)) * 1.1))
        ax2 = ax.twinx()
        ax2.plot(t, lipsync.audio_envelope(w, len(g)), color="C1", alpha=0.8, label="audio RMS")
        ax2.set_ylabel("audio RMS")
        corr, lag = talking.av_correlation(g, w)
        ax.set_title(
            f"{name}: lip-gap std {talking.lip_gap_std(g):.3f}, AV corr {corr:.2f} at lag {lag}", fontsize=9
        )
        ax.legend(loc="upper left", fontsize=7)
        ax2.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("time (s); red: /p b m/ onsets")
    fig.tight_layout()
    _save(fig, os.path.join(FLAGS.figures, "talking_gap_energy.png"))
    plt.close(fig)


if __name__ == "__main__":
    app.run(main)
