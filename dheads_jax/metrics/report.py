"""The evaluation report: report.json, report.md and three PNG plots.

- ``report.json``: settings, the per-row summary (mean over videos; FVD and FID over the
  set), every video's metrics per row and its per-frame curves, what was not computed and why.
- ``report.md``: the summary as two Markdown tables, a per-video table and the notes a
  reader needs (clip length and resolution of FVD, frames of FID, units).
- ``per_frame_metrics.png``: PSNR, SSIM, LPIPS and LMD against the frame index, averaged
  over videos (drift over time), generated vs the identity-repeated baseline.
- ``mouth_opening.png``: mouth opening of the generated, real and baseline videos with the
  audio energy envelope, for up to ``MAX_PLOTTED`` videos.
- ``frame_grid.png``: eight evenly spaced frames of real and generated videos.

Every file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from matplotlib.figure import Figure

MAX_PLOTTED = 4
ROW_LABELS = {
    "generated": "generated",
    "ground_truth": "ground truth",
    "identity_repeated": "identity frame repeated",
}
QUALITY_COLUMNS = (
    ("psnr", "PSNR (dB) ↑", 2),
    ("ssim", "SSIM ↑", 3),
    ("lpips", "LPIPS ↓", 3),
    ("lmd", "LMD (px) ↓", 2),
    ("fvd", "FVD ↓", 1),
    ("fid", "FID ↓", 1),
)
MOTION_COLUMNS = (
    ("blinks_per_s", "Blinks/s", 2),
    ("blink_duration_s", "Blink (s)", 2),
    ("ofm", "OFM", 2),
    ("fmse", "F-MSE", 2),
    ("ofm_clean", "OFM clean (px)", 3),
    ("fmse_clean", "F-MSE clean", 1),
    ("av_offset", "AV offset", 2),
    ("av_confidence", "AV conf ↑", 2),
    ("av_correlation", "AV corr ↑", 3),
    ("mouth_correlation", "Mouth corr vs GT ↑", 3),
    ("mouth_offset", "Mouth offset vs GT", 2),
    ("mouth_confidence", "Mouth conf vs GT ↑", 2),
)
PER_VIDEO_COLUMNS = (
    ("psnr", "PSNR", 2),
    ("ssim", "SSIM", 3),
    ("lpips", "LPIPS", 3),
    ("lmd", "LMD", 2),
    ("av_offset", "AV offset", 0),
    ("av_confidence", "AV conf", 2),
    ("mouth_correlation", "Mouth corr", 3),
    ("ofm", "OFM", 2),
    ("fmse", "F-MSE", 2),
)


def to_json(x):
    """``x`` with numpy types turned into Python ones and NaN / inf into None."""
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_json(x.tolist())
    if isinstance(x, np.integer | bool | np.bool_):
        return x.item() if isinstance(x, np.generic) else x
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def _replace(path: str, write) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def _table(rows: list[tuple[str, dict]], columns) -> list[str]:
    lines = ["| | " + " | ".join(c[1] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(_fmt(values.get(k), d) for k, _, d in columns) + " |")
    return lines


def markdown(result: dict) -> str:
    """The Markdown report of an evaluation result (the dict of report.json)."""
    s = result["settings"]
    rows = [(ROW_LABELS[r], result["summary"][r]) for r in ROW_LABELS]
    sizes = ", ".join("x".join(map(str, z)) for z in s["reference_sizes"])
    fvd, fid = s["fvd"], s["fid"]
    lines = [
        "# Evaluation report",
        "",
        f"{result['num_videos']} generated videos from `{result['generated']}` against `{result['reference']}`"
        + (f" (split `{result['split']}`)" if result.get("split") else "")
        + f"; frames compared at the reference resolution ({sizes}), {s['fps']} fps.",
        "",
        "## Image quality and distributions (against the ground truth)",
        "",
        *_table(rows, QUALITY_COLUMNS),
        "",
        "## Motion, smoothness and lip sync",
        "",
        *_table(rows, MOTION_COLUMNS),
        "",
        "## Per video (generated)",
        "",
        *_table([(v["name"], v["rows"]["generated"]) for v in result["videos"]], PER_VIDEO_COLUMNS),
        "",
        "## Notes",
        "",
        "- Rows: *generated* against the ground truth; *ground truth* is the real video itself, "
        "shown only for measures that do not compare with the ground truth (comparing it with itself "
        "gives PSNR at the cap, SSIM 1, LPIPS, LMD, FVD and FID 0); *identity frame repeated* is the "
        "trivial baseline, the reference's first frame shown for every frame. — means not defined or "
        "not meaningful for that row.",
        f"- PSNR per frame is capped at {s['psnr_cap_db']:.0f} dB (identical frames); SSIM and LPIPS "
        "(AlexNet) per frame; all three averaged over frames, then over videos.",
        f"- FVD: I3D (Kinetics-400) logits of non-overlapping {fvd['clip_length']}-frame clips resized to "
        f"{fvd['resolution']}x{fvd['resolution']}; clips per set: "
        + ", ".join(f"{ROW_LABELS[k]} {v}" for k, v in fvd["clips"].items())
        + ". With few clips FVD is dominated by the sample size: compare rows, not papers.",
        f"- FID: Inception-v3 pool3 features of {fid['frames_per_video'] or 'all'} evenly spaced frames per "
        f"video at {fid['resolution']}x{fid['resolution']}; frames per set: "
        + ", ".join(f"{ROW_LABELS[k]} {v}" for k, v in fid["frames"].items())
        + ".",
        "- LMD: mean distance of the 20 mouth landmarks (48..67, dlib 68-point model) in pixels of the "
        "reference resolution.",
        "- Blinks from the eye aspect ratio: a blink is a run of at most 15 frames below 0.75 x the "
        "video's median EAR.",
        "- OFM and F-MSE are computed exactly as the official `smoothness_eval.py` (128 px frames; OFM is "
        "the mean of per-frame min-max normalised, JET colour-mapped Farneback magnitudes, so zero "
        "flow scores 42.67 and a still video about 43.6; F-MSE wraps around in uint8). Closer to the ground truth is better. The clean "
        "versions: mean flow magnitude in pixels per frame at 128 px, and the float mean squared "
        "difference of consecutive frames (0..255 scale).",
        "- Lip sync (no SyncNet): mouth opening (inner-lip gap / eye-corner distance) against the audio "
        "energy envelope (per-frame RMS; AV) and against the ground truth's mouth opening (Mouth). Offset: lag in frames "
        "of the peak of the correlation over ±15 frames (positive: the video is late; both signals high-passed by a 9-frame moving average first); confidence: peak "
        "over the mean absolute correlation; corr: correlation at lag 0. A still video has correlation 0 "
        "and no offset.",
    ]
    for reason in result["not_computed"].values():
        lines.append(f"- **{reason}**")
    if result["unmatched_generated"]:
        lines.append(
            f"- Generated videos without a reference (skipped): {', '.join(result['unmatched_generated'])}"
        )
    if result["references_without_generated"]:
        lines.append(
            f"- References without a generated video: {', '.join(result['references_without_generated'])}"
        )
    lines += [
        "",
        "Plots: `per_frame_metrics.png` (drift over time), `mouth_opening.png`, `frame_grid.png`.",
        "",
    ]
    return "\n".join(lines)


def _padded_mean(curves: list[np.ndarray]) -> np.ndarray:
    n = max(len(c) for c in curves)
    stack = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        stack[i, : len(c)] = c
    with np.errstate(all="ignore"):
        counts = np.isfinite(stack).sum(0)
        return np.where(counts > 0, np.nansum(stack, 0) / np.maximum(counts, 1), np.nan)


def plot_per_frame(videos: list[dict], path: str) -> None:
    """PSNR, SSIM, LPIPS and LMD per frame index, mean over videos, generated vs baseline."""
    fig = Figure(figsize=(11, 7), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    names = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("lpips", "LPIPS"), ("lmd", "LMD (px)"))
    for ax, (key, label) in zip(axes, names, strict=True):
        for row, style in (("generated", "-"), ("identity_repeated", "--")):
            curves = [np.asarray(v["curves"]["rows"][row][key], np.float64) for v in videos]
            ax.plot(_padded_mean(curves), style, label=ROW_LABELS[row])
        ax.set_xlabel("frame")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    # Frame 0 of the baseline is the identity frame itself (PSNR at the cap): keep the scale.
    axes[0].set_ylim(top=min(axes[0].get_ylim()[1], 60.0))
    axes[0].legend()
    fig.suptitle(f"Per-frame metrics, mean over {len(videos)} videos")
    _replace(path, lambda p: fig.savefig(p, format="png", dpi=100))


def plot_mouth_opening(videos: list[dict], path: str) -> None:
    """Mouth opening of generated, real and baseline videos, with the audio envelope."""
    shown = videos[:MAX_PLOTTED]
    fig = Figure(figsize=(11, 2.8 * len(shown)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(shown), 1))
    for ax, v in zip(axes, shown, strict=True):
        rows = v["curves"]["rows"]
        for row, style in (("ground_truth", "k-"), ("generated", "C0-"), ("identity_repeated", "C2--")):
            ax.plot(rows[row]["mouth_opening"], style, label=ROW_LABELS[row])
        ax.set_ylabel("mouth opening")
        ax.set_xlabel("frame")
        ax.set_title(v["name"])
        env = v["curves"]["audio_envelope"]
        if env is not None:
            ax2 = ax.twinx()
            ax2.plot(env, "C3:", alpha=0.8, label="audio RMS")
            ax2.set_ylabel("audio RMS")
            ax2.legend(loc="upper right")
        ax.legend(loc="upper left")
    _replace(path, lambda p: fig.savefig(p, format="png", dpi=100))


def plot_frame_grid(videos: list[dict], path: str) -> None:
    """Eight evenly spaced frames per video: real above generated."""
    shown = videos[:MAX_PLOTTED]
    strips, labels = [], []
    for v in shown:
        for key in ("real", "generated"):
            frames = v["thumbs"][key]
            gap = np.full((frames.shape[1], 2, 3), 255, np.uint8)
            strips.append(np.concatenate([x for f in frames for x in (f, gap)][:-1], 1))
            labels.append(f"{v['name']} {key}")
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(s, ((0, 2), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    grid = np.concatenate(strips, 0)
    fig = Figure(figsize=(min(16, 2 + width / 40), 0.6 + grid.shape[0] / 40), layout="constrained")
    ax = fig.subplots()
    ax.imshow(grid, interpolation="nearest")
    h = shown[0]["thumbs"]["real"].shape[1] + 2
    ax.set_yticks([h * i + h / 2 for i in range(len(labels))], labels)
    idx = shown[0]["thumbs"]["index"]
    w = shown[0]["thumbs"]["real"].shape[2] + 2
    ax.set_xticks([w * i + w / 2 for i in range(len(idx))], [f"frame {i}" for i in idx])
    ax.tick_params(length=0)
    _replace(path, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))


def json_content(result: dict) -> dict:
    """The report as JSON values: the evaluation result without the videos' ``thumbs`` frames."""
    return to_json(
        {**result, "videos": [{k: v for k, v in x.items() if k != "thumbs"} for x in result["videos"]]}
    )


def write_report(result: dict, output_dir: str) -> dict:
    """Writes report.json, report.md and the PNGs; returns the JSON content as a dict.

    Args:
      result: the evaluation result of ``dheads_jax.evaluate.evaluate`` (videos carry
        ``thumbs`` frames for the grid, left out of the JSON).
      output_dir: an existing folder.
    """
    videos = result["videos"]
    plot_per_frame(videos, os.path.join(output_dir, "per_frame_metrics.png"))
    plot_mouth_opening(videos, os.path.join(output_dir, "mouth_opening.png"))
    plot_frame_grid(videos, os.path.join(output_dir, "frame_grid.png"))
    content = json_content(result)

    def write_json(p):
        with open(p, "w", encoding="utf-8") as f:
            json.dump(content, f, indent=1, allow_nan=False)

    def write_md(p):
        with open(p, "w", encoding="utf-8") as f:
            f.write(markdown(content))

    _replace(os.path.join(output_dir, "report.json"), write_json)
    _replace(os.path.join(output_dir, "report.md"), write_md)
    return content
