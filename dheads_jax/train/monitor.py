"""What a person looks at during training: console lines, TensorBoard, a loss curve, sample strips."""

from __future__ import annotations

import csv
import json
import os

import jax
import numpy as np
from absl import logging

from dheads_jax import sampling
from dheads_jax.data import arrays
from dheads_jax.imaging import from_uint8, to_uint8
from dheads_jax.progress import Progress, format_seconds

CURVE_KEYS = ("loss", "simple", "vlb", "lip")


class MetricLogger:
    """Console lines, TensorBoard events, metrics.csv and loss_curve.png (process 0 only)."""

    def __init__(self, workdir: str, enabled: bool = True, prefix: str = "training", curve_keys=CURVE_KEYS):
        self.enabled = enabled
        self.workdir = workdir
        self.prefix = prefix
        self.curve_keys = tuple(curve_keys)
        self.csv_path = os.path.join(workdir, "metrics.csv")
        self.writer = None
        if not enabled:
            return
        try:
            from tensorboardX import SummaryWriter
        except ImportError:  # an accelerator image may lack it; metrics.csv and the curve remain
            logging.warning("tensorboardX is not installed: no TensorBoard events (metrics.csv is written)")
            return
        self.writer = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def log(
        self, step: int, metrics: dict[str, float], progress: Progress, line: str, batch_size: int
    ) -> None:
        """One console line, TensorBoard scalars, a metrics.csv row and the refreshed curve.

        Args:
          step: the step just finished.
          metrics: the step's scalar metrics.
          progress: the run's step counter (its rate and ETA go into the line).
          line: the metrics as the job words them (``step N | <line> | rate | ETA``).
          batch_size: the global batch, for examples/s.
        """
        if not self.enabled:
            return
        # The rate and ETA once there is a rate (the first step includes compilation).
        speed = {}
        tail = progress.speed()
        if progress.has_rate:
            rate = progress.rate
            speed = dict(steps_per_s=rate, examples_per_s=rate * batch_size, eta_s=progress.eta_s)
            tail = f"{rate:.2f} steps/s {rate * batch_size:.1f} ex/s | ETA {format_seconds(progress.eta_s)}"
        logging.info("step %d | %s%s", step, line, f" | {tail}" if tail else "")
        self.scalars(self.prefix, {**metrics, **speed}, step)
        new = not os.path.exists(self.csv_path)
        with open(self.csv_path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", *sorted(metrics)])
            w.writerow([step, *(metrics[k] for k in sorted(metrics))])
        plot_loss_curve(self.csv_path, os.path.join(self.workdir, "loss_curve.png"), self.curve_keys)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        """TensorBoard scalars ``prefix/name`` (the finite ones), when TensorBoard is on."""
        if self.writer is None:
            return
        for k, v in values.items():
            if np.isfinite(v):
                self.writer.add_scalar(f"{prefix}/{k}", v, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class BatchRecord:
    """batches.jsonl: the clips and target frames of every step's batch (``train.record_batches``)."""

    def __init__(self, workdir: str, enabled: bool):
        self.file = open(os.path.join(workdir, "batches.jsonl"), "a") if enabled else None

    def write(self, step: int, batch: dict) -> None:
        if self.file:
            ids = dict(step=step, clip=batch["clip_index"].tolist(), target=batch["target_index"].tolist())
            self.file.write(json.dumps(ids) + "\n")

    def close(self) -> None:
        if self.file:
            self.file.close()


def read_metrics(csv_path: str) -> dict[str, np.ndarray]:
    """Columns of metrics.csv; a resumed run's repeated steps keep their last value."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_step = {int(r["step"]): r for r in rows}
    steps = sorted(by_step)
    return {k: np.array([float(by_step[s][k]) for s in steps]) for k in rows[0]} if rows else {}


def plot_loss_curve(csv_path: str, png_path: str, keys=CURVE_KEYS) -> None:
    """The metrics ``keys`` (those present) over steps, log scale, written atomically."""
    cols = read_metrics(csv_path)
    keys = [k for k in keys if k in cols]
    if not keys or len(cols["step"]) < 2:
        return
    try:
        import matplotlib
    except ImportError:  # an accelerator image may lack it: metrics.csv holds the same numbers
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(cols["step"], cols[key])
        ax.set_yscale("log")
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path + ".tmp.png"
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, png_path)


def save_png(path: str, image: np.ndarray) -> None:
    """Writes an RGB (or RGBA/gray) uint8 image atomically."""
    from PIL import Image

    tmp = path + ".tmp.png"
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)


class SampleWriter:
    """Every few steps: a few frames sampled with the current (EMA) weights beside the real ones.

    Writes samples/step_<7-digit step>.png: top row the real frames, bottom row the frames the
    model makes from the clip's first frame (identity) and its audio.
    """

    def __init__(self, workdir: str, config, dataset_dir: str, model, mesh):
        self.dir = os.path.join(workdir, "samples")
        self.enabled = jax.process_index() == 0
        self.config = config
        # One process samples the strip on its default device; several processes sample it
        # together on the training mesh, where the parameters live.
        self.mesh = mesh if jax.process_count() > 1 else None
        self.apply_fn = sampling.UNetApply(model)
        self.options = sampling.SamplingOptions.from_config(config, steps=config.train.sample_steps)
        frames, audio = first_clip(dataset_dir)
        n = min(config.train.sample_frames, frames.shape[0])
        self.real = frames[:n]
        self.videos = sampling.VideoBatch.create(from_uint8(frames[0:1]), audio[None], lengths=[n])
        os.makedirs(self.dir, exist_ok=True)

    def write(self, step: int, state) -> None:
        params = state.ema_params if state.ema_params is not None else state.params
        # Every process takes part (the parameters may be sharded over all of them).
        video = sampling.sample_videos(
            self.apply_fn, params, self.options, self.videos, jax.random.key(self.config.seed + 1), self.mesh
        )
        if not self.enabled:
            return
        fake = to_uint8(video[0, : len(self.real)])
        strip = np.concatenate([np.concatenate(list(self.real), 1), np.concatenate(list(fake), 1)], 0)
        save_png(os.path.join(self.dir, f"step_{step:07d}.png"), strip)


def first_clip(dataset_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [T, S, S, 3], audio [T, D]) of the training clip with the first clip id,
    from a TFDS dataset or an arrays folder."""
    if arrays.is_arrays_dir(dataset_dir):
        split = arrays.SplitArrays.load(dataset_dir, "train")
        clip = split.clip(min(range(len(split.clips)), key=lambda i: split.clips[i]["clip_id"]))
        return clip["frames"], clip["audio"]
    from dheads_jax.data import reader

    clip = reader.load_clips(dataset_dir, "train", limit=1)[0]
    return clip.frames, clip.audio
