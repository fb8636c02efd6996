"""Sparse face detection: speed and accuracy of detecting every k-th frame and tracking between.

  python -m benchmarks.sparse_detection    # writes benchmarks/results/sparse_detection.txt

On the 11 bundled GRID clips (3 s, 25 fps, 360x288 MPEG-1), for each k of ``--every``
(``PrepareSettings.detect_every``):
  * seconds per clip of the face stage (``process.detect_all``: HOG detection where it runs,
    68 landmarks on every frame) and of the whole ``process.process_clip`` at 128 px, fastest
    of ``--repeats`` runs, and the speedup against k = 1;
  * detector runs per clip (scheduled ones plus fallbacks when the tracked face looked lost);
  * the difference from per-frame detection (k = 1) of what the dataset stores: mouth boxes
    (``dheads_jax.mouth.mouth_box`` of the aligned crop landmarks, 128 px; largest absolute
    difference of a box side, in pixels) and the crop landmarks (Euclidean distance, pixels),
    and the share of frames whose raw landmarks are bit-identical to per-frame detection's.
Then a profile of ``process_clip``'s stages at k = 1 and k = ``--profile_every``, each stage timed
alone with the same functions. About 4 minutes on a 2-core CPU with the default flags.
"""

from __future__ import annotations

import glob
import os
import time

import numpy as np
from absl import app, flags

from benchmarks import common
from dheads_jax import media
from dheads_jax.data import align, faces, process, sources
from dheads_jax.mouth import mouth_box

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 128, "Crop side.")
flags.DEFINE_string("videos_dir", common.GRID_DIR, "Clips to process.")
flags.DEFINE_string("output", common.result_path("sparse_detection"), "The result table.")
flags.DEFINE_list("every", ["1", "3", "5", "10", "25"], "Values of detect_every; the first must be 1.")
flags.DEFINE_integer("repeats", 3, "Timed runs per clip and k (the fastest is kept).")
flags.DEFINE_integer("profile_every", 10, "The k profiled stage by stage next to k = 1.")

GOAL_SPEEDUP, GOAL_BOX_PX = 3.0, 2


def best_seconds(fn, repeats: int) -> tuple[float, object]:
    """Fewest wall seconds of ``repeats`` calls of ``fn`` (the least disturbed by other load), last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def clip_sources(videos_dir: str) -> list[sources.ClipSource]:
    paths = sorted(glob.glob(os.path.join(videos_dir, "*.mpg")))
    return [sources.ClipSource("train", i, os.path.basename(p), p, None, "grid") for i, p in enumerate(paths)]


def stage_profile(source, settings, detector, repeats: int) -> dict[str, float]:
    """Seconds of each stage of ``process_clip``, each timed alone (fastest of ``repeats``)."""
    t = {}
    t["decode video"], (frames, start) = best_seconds(lambda: media.read_video(source.video_path), repeats)

    def audio_stage():
        waveform = process.load_waveform(source, start)
        process.check_lengths(len(frames), len(waveform), settings)
        waveform = media.fit_waveform(waveform, len(frames))
        return process.embed_audio(source, waveform, settings)

    t["audio + mel"], _ = best_seconds(audio_stage, repeats)
    t["faces"], landmarks = best_seconds(
        lambda: process.detect_all(frames, detector, settings.detect_every), repeats
    )
    t["align + crop"], (aligned, crop) = best_seconds(
        lambda: align.align_frames(frames, landmarks, settings.image_size, settings.smoothing_sigma), repeats
    )
    t["mouth boxes"], _ = best_seconds(
        lambda: [mouth_box(lm, settings.image_size, settings.lip_box_margin) for lm in crop], repeats
    )
    t["encode PNG"], _ = best_seconds(lambda: process.encode_frames(aligned, settings.image_format), repeats)
    return t


def main() -> common.Lines:
    emit = common.start_table("", versions=("numpy", "dlib", "av", "PIL", "scipy"))
    every = [int(k) for k in FLAGS.every]
    if every[0] != 1:
        raise app.UsageError("--every must start with 1 (the reference)")
    clips = clip_sources(FLAGS.videos_dir)
    detector = faces.LandmarkDetector()
    # per k, one entry per clip
    face_s, clip_s, runs, box_diff, lm_dist, same = ({k: [] for k in every} for _ in range(6))
    frames_total = 0
    reference = {}
    for k in (every[0], every[-1]):  # warm-up: first calls load models and fill caches
        process.process_clip(clips[0], process.PrepareSettings(image_size=FLAGS.image_size, detect_every=k))
    for source in clips:
        frames, _ = media.read_video(source.video_path)
        frames_total += len(frames)
        for k in every:
            settings = process.PrepareSettings(image_size=FLAGS.image_size, detect_every=k)
            detector.detections = 0
            seconds, raw = best_seconds(lambda: process.detect_all(frames, detector, k), FLAGS.repeats)  # noqa: B023
            face_s[k].append(seconds)
            if k == 1:
                raw_reference = raw
            same[k].append((raw == raw_reference).all((1, 2)))
            runs[k].append(detector.detections / FLAGS.repeats)
            seconds, example = best_seconds(
                lambda: process.process_clip(source, settings, detector),  # noqa: B023
                FLAGS.repeats,
            )
            clip_s[k].append(seconds)
            if k == 1:
                reference[source.clip_id] = example
            ref = reference[source.clip_id]
            box_diff[k].append(np.abs(example["mouth_boxes"] - ref["mouth_boxes"]).max(1))
            lm_dist[k].append(np.linalg.norm(example["landmarks"] - ref["landmarks"], axis=-1))
    n = len(clips)
    emit(
        f"## {n} GRID clips, {frames_total} frames ({frames_total / n:.0f} per clip), "
        f"{FLAGS.image_size} px crops, fastest of {FLAGS.repeats} runs per clip"
    )
    emit("face = process.detect_all (detection + 68 landmarks); clip = process.process_clip; s = s/clip")
    emit("box = largest |side difference| of a mouth box vs k=1 (px); lm = landmark distance (crop px)")
    emit("same lm = frames whose 68 landmarks (frame pixels, before alignment) equal k=1's exactly")
    emit()
    cols = (
        f"{'k':>3} {'detections':>10} {'face s':>7} {'speedup':>7} {'clip s':>7} {'speedup':>7} "
        f"{'box max':>7} {'box mean':>8} {'box>2px':>7} {'lm mean':>7} {'lm max':>7} {'same lm':>7}"
    )
    emit(cols)
    emit("-" * len(cols))
    summary = {}
    for k in every:
        f, c = sum(face_s[k]) / n, sum(clip_s[k]) / n
        f1, c1 = sum(face_s[1]) / n, sum(clip_s[1]) / n
        boxes, dists = np.concatenate(box_diff[k]), np.concatenate(lm_dist[k])
        summary[k] = (f1 / f, c1 / c, int(boxes.max()))
        emit(
            f"{k:>3} {sum(runs[k]) / n:>10.1f} {f:>7.3f} {f1 / f:>6.2f}x {c:>7.3f} {c1 / c:>6.2f}x "
            f"{boxes.max():>7d} {boxes.mean():>8.3f} {(boxes > GOAL_BOX_PX).mean():>7.1%} "
            f"{dists.mean():>7.3f} {dists.max():>7.3f} {np.concatenate(same[k]).mean():>7.1%}"
        )
    emit()
    emit(f"Goal: >= {GOAL_SPEEDUP:.0f}x faster per clip with mouth boxes within {GOAL_BOX_PX} px of k=1.")
    for k in every[1:]:
        face_x, clip_x, box = summary[k]
        ok_box = box <= GOAL_BOX_PX
        emit(
            f"  k={k:<2}: face stage {'meets' if face_x >= GOAL_SPEEDUP and ok_box else 'misses'} it "
            f"({face_x:.2f}x, boxes within {box} px); whole clip "
            f"{'meets' if clip_x >= GOAL_SPEEDUP and ok_box else 'misses'} it ({clip_x:.2f}x)"
        )
    emit()
    emit("## Where process_clip's time goes (s/clip, each stage timed alone, mean over clips)")
    profiles = {}
    for k in (1, FLAGS.profile_every):
        settings = process.PrepareSettings(image_size=FLAGS.image_size, detect_every=k)
        per_clip = [stage_profile(source, settings, detector, FLAGS.repeats) for source in clips]
        profiles[k] = {name: sum(p[name] for p in per_clip) / n for name in per_clip[0]}
    names = list(profiles[1])
    emit(f"{'stage':<14} " + " ".join(f"{f'k={k} s':>8} {'share':>6}" for k in profiles))
    for name in [*names, "sum"]:
        cells = []
        for prof in profiles.values():
            total = sum(prof.values())
            value = total if name == "sum" else prof[name]
            cells.append(f"{value:>8.3f} {value / total:>6.1%}")
        emit(f"{name:<14} " + " ".join(cells))
    return emit


common.run(main)
