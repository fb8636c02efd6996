"""How fast a training recipe starts to use the audio, measured cheaply on lower-face crops.

  python -m benchmarks.audio_use [--config=configs/grid_demo.py] [--config.X=...] \
      [--steps=1000] [--every=250] [--jsonl=FILE.jsonl] [--output=benchmarks/results/audio_use.txt]

Trains the config on 32 x 32 crops of the lower face of the 64 px GRID clips (rows 24..55,
columns 16..47 of the aligned frames: nose tip to chin, so the mouth keeps the demo's pixel
scale while a step costs a quarter) and, every ``--every`` steps, asks the EMA model (raw
if EMA is off) what the audio does to its prediction of the clean frame. For the two
held-out clips and two training clips, frames 2..T-3, identity = frame 0 in the identity
and both motion slots (as at a video's start), x_t made from the real frame at t = 600 and
900 with a fixed noise draw:

- d_k = x0_hat(audio of frame k) - x0_hat(audio of frame k'), k' = the frame 20 later
  (cyclically), with everything else equal, so d_k is what the audio alone changes;
- g_k = frame k - frame k', the real change of the mouth between those two moments;
- over the median mouth box: alignment = sum <d, g> / sqrt(sum |d|^2 sum |g|^2) (the
  cosine between what the audio does and what it should do; 0 for a model that ignores
  the audio or moves the mouth at random) and gain = sum <d, g> / sum |g|^2 (the share of
  the real change the audio reproduces; 1 is all of it).

With ``config.model.motion_mask`` the box is given in fractions of the full 64 px frame and
moved into the crop here. Prints one JSON line per probe (and writes them to ``--jsonl``),
then writes the table of all probes to ``--output``. Results of the recipes compared for the
demo: benchmarks/results/audio_use.txt.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks import common
from dheads_jax import input_pipeline, sampling
from dheads_jax.data import cache, reader
from dheads_jax.diffusion import output_to_eps, schedule_from_config
from dheads_jax.imaging import from_uint8
from dheads_jax.models import factory
from dheads_jax.train import optimizer
from dheads_jax.train.loop import state_initializer
from dheads_jax.train.runner import MODEL_INPUTS
from dheads_jax.train.step import make_train_step

config_flags.DEFINE_config_file("config", os.path.join(common.ROOT, "configs", "grid_demo.py"))
flags.DEFINE_integer("steps", 1000, "Training steps.")
flags.DEFINE_string("jsonl", "", "Optional JSON-lines file for the probes.")
flags.DEFINE_integer("every", 250, "Steps between probes.")
flags.DEFINE_string("output", common.result_path("audio_use"), "The result table.")
FLAGS = flags.FLAGS

FULL, CROP, TOP, LEFT = 64, 32, 24, 16
LAG = 20
PROBE_T = (600, 900)


def crop(a):
    return a[..., TOP : TOP + CROP, LEFT : LEFT + CROP, :]


def crop_box(box):
    """A (top, bottom, left, right) pixel box of the full frame, moved into the crop and clipped."""
    top, bottom, left, right = box
    clip = lambda v, o: int(np.clip(v - o, 0, CROP))  # noqa: E731
    return clip(top, TOP), clip(bottom, TOP), clip(left, LEFT), clip(right, LEFT)


def crop_mask(fractions):
    """model.motion_mask of the full frame as fractions of the crop."""
    if not fractions:
        return ()
    top, bottom, left, right = (f * FULL for f in fractions)
    return (
        float(np.clip((top - TOP) / CROP, 0, 1)),
        float(np.clip((bottom - TOP) / CROP, 0, 1)),
        float(np.clip((left - LEFT) / CROP, 0, 1)),
        float(np.clip((right - LEFT) / CROP, 0, 1)),
    )


def probe_inputs(dataset_dir):
    rng = np.random.default_rng(0)
    out = []
    for clip in reader.load_clips(dataset_dir, "test") + reader.load_clips(dataset_dir, "train", limit=2):
        frames = crop(from_uint8(clip.frames))
        n = len(frames)
        ks = np.arange(2, n - 2)
        later = (ks - 2 + LAG) % len(ks) + 2
        window = np.clip(ks[:, None] + np.arange(-2, 3)[None], 0, n - 1)
        first = np.repeat(frames[:1], len(ks), 0)
        out.append(
            dict(
                clip=clip.clip_id,
                identity=first,
                motion=np.repeat(first[:, None], 2, 1),
                audio=clip.audio[window],
                audio_later=clip.audio[np.clip(later[:, None] + np.arange(-2, 3)[None], 0, n - 1)],
                frames=frames[ks],
                frames_later=frames[later],
                noise=rng.standard_normal(frames[ks].shape).astype(np.float32),
                box=crop_box(np.median(clip.mouth_boxes, 0).astype(int)),
            )
        )
    return out


def main() -> common.Lines:
    config = FLAGS.config
    if config.data.image_size != FULL:
        raise app.UsageError(
            f"the crops are cut from {FULL} px frames; the config has {config.data.image_size}"
        )
    dataset_dir = cache.ensure_dataset(config)
    it = input_pipeline.make_train_iterator(config, process_index=0, process_count=1, dataset_dir=dataset_dir)
    config.data.image_size = CROP
    config.model.attention_resolutions = tuple(r // 2 for r in config.model.attention_resolutions)
    config.model.motion_mask = crop_mask(tuple(config.model.get("motion_mask", ())))
    model = factory.build_unet(config)
    schedule = schedule_from_config(config.diffusion)
    tx = optimizer.make_optimizer(config.optim, FLAGS.steps)
    lr_fn = optimizer.lr_schedule(config.optim, FLAGS.steps)
    state = jax.jit(state_initializer(config, model, tx))(jax.random.key(config.seed))
    train_step = jax.jit(make_train_step(model, schedule, tx, lr_fn, config), donate_argnums=0)
    apply_fn = sampling.UNetApply(model)
    par = config.diffusion.get("parametrization", "eps")
    abar = np.asarray(schedule.alphas_cumprod, np.float64)
    probes = probe_inputs(dataset_dir)

    @jax.jit
    def x0_hat(params, x_t, t, identity, motion, audio):
        eps = output_to_eps(schedule, apply_fn(params, x_t, t, identity, motion, audio), x_t, t, par)[..., :3]
        a = jnp.asarray(abar, jnp.float32)[t][:, None, None, None]
        return (x_t - jnp.sqrt(1 - a) * eps) / jnp.sqrt(a)

    def probe(params, step):
        rec = dict(step=step)
        for t in PROBE_T:
            align, gain = {}, {}
            for p in probes:
                n = len(p["frames"])
                x_t = (np.sqrt(abar[t]) * p["frames"] + np.sqrt(1 - abar[t]) * p["noise"]).astype(np.float32)
                args = (params, x_t, jnp.full((n,), t), p["identity"], p["motion"])
                d = np.asarray(x0_hat(*args, p["audio"])) - np.asarray(x0_hat(*args, p["audio_later"]))
                g = p["frames"] - p["frames_later"]
                top, bottom, left, right = p["box"]
                d, g = d[:, top:bottom, left:right], g[:, top:bottom, left:right]
                dg = float((d * g).sum())
                align[p["clip"]] = round(dg / float(np.sqrt((d * d).sum() * (g * g).sum()) + 1e-12), 4)
                gain[p["clip"]] = round(dg / float((g * g).sum()), 4)
            rec[f"t{t}"] = dict(alignment=align, gain=gain)
        return rec

    out = open(FLAGS.jsonl, "w", encoding="utf-8") if FLAGS.jsonl else None
    start = time.perf_counter()
    records = []
    for step in range(1, FLAGS.steps + 1):
        batch = {k: v for k, v in next(it).items() if k in MODEL_INPUTS}
        batch.update(
            target=crop(batch["target"]), identity=crop(batch["identity"]), motion=crop(batch["motion"])
        )
        batch["mouth_box"] = np.array([crop_box(b) for b in batch["mouth_box"]], np.int32)
        state, _ = train_step(state, batch)
        if step % FLAGS.every == 0 or step == FLAGS.steps:
            rec = probe(state.ema_params if state.ema_params is not None else state.params, step)
            rec["seconds"] = round(time.perf_counter() - start)
            records.append(rec)
            line = json.dumps(rec)
            print(line, flush=True)
            if out:
                out.write(line + "\n")
                out.flush()
    if out:
        out.close()
    return table(records)


def table(records) -> common.Lines:
    emit = common.start_table()
    clips = list(records[0][f"t{PROBE_T[0]}"]["alignment"])
    head = " | ".join(f"align {c} (cos)" for c in clips)
    # align: the cosine of the audio's change with the real one; gain: the share of it (1 = all).
    emit(f"| step | elapsed s | probe t | mean align (cos) | mean gain (share) | {head} |")
    emit("|---|---|---|---|---|" + "---|" * len(clips))
    for rec in records:
        for t in PROBE_T:
            align, gain = rec[f"t{t}"]["alignment"], rec[f"t{t}"]["gain"]
            cells = " | ".join(f"{align[c]:.3f}" for c in clips)
            emit(
                f"| {rec['step']} | {rec['seconds']} | {t} | {np.mean(list(align.values())):.3f} | "
                f"{np.mean(list(gain.values())):.3f} | {cells} |"
            )

    return emit


common.run(main)
