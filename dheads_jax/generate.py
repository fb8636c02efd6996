"""Talking-head videos from an export: inputs from files, batched sampling, streamed outputs.

Used by run_sample.py. A job is one output video: an identity frame, per-frame audio
embeddings, the waveform to mux, and where to write. Jobs are sampled in batches; every
frame goes to its writer as soon as it is made, so memory stays flat for long audio.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from dheads_jax import export, sampling, video_io
from dheads_jax.checkpointing import Checkpointer
from dheads_jax.data import align, media
from dheads_jax.data import audio as audio_lib
from dheads_jax.diffusion import schedule_from_config
from dheads_jax.models import factory
from dheads_jax.train.visualize import to_uint8


class InputError(ValueError):
    """A job input that cannot be used; the message names the file and the problem."""


@dataclasses.dataclass
class Job:
    """One video to make.

    Attributes:
      identity: float32 [S, S, 3] aligned identity frame in [-1, 1].
      audio: float32 [T, D] per-frame audio embeddings (T = frames to make).
      waveform: float32 [T * 640] 16 kHz mono to mux, or None.
      output: the output path (.mp4, .npy, or a folder for PNGs).
      video_id: the job's index; with the seed it fixes the video's noise.
    """

    identity: np.ndarray
    audio: np.ndarray
    waveform: np.ndarray | None
    output: str
    video_id: int


def load_identity(path: str, image_size: int) -> np.ndarray:
    """An aligned identity frame from any image or video file, float32 [S, S, 3] in [-1, 1]."""
    try:
        image = video_io.read_identity_image(path)
    except video_io.MediaError as e:
        raise InputError(str(e)) from e
    try:
        aligned = align.align_image(image, image_size)
    except align.NoFaceError as e:
        raise InputError(f"{path}: no face found in the identity image") from e
    return aligned.astype(np.float32) / 127.5 - 1.0


def load_audio(path: str, meta: dict, embeddings: str | None = None, encoder_file: str | None = None):
    """(waveform [T*640], embeddings [T, D]) for an audio file, with the export's encoder.

    T = floor(seconds * 25): a remainder shorter than one frame (40 ms) is dropped, as in
    the training data. ``mel`` exports compute the embeddings here; other encoders need
    ``embeddings`` (a [T, D] .npy) or, for the authors' SDA encoder, ``encoder_file``.
    """
    try:
        waveform, _ = media.read_audio(path)
    except (media.ClipError, OSError) as e:
        raise InputError(f"{path}: unreadable audio ({e})") from e
    num_frames = len(waveform) // audio_lib.SAMPLES_PER_FRAME
    if num_frames < 1:
        raise InputError(f"{path}: audio is shorter than one video frame (40 ms)")
    waveform = waveform[: num_frames * audio_lib.SAMPLES_PER_FRAME]
    spec = meta["audio_encoder"]
    if embeddings:
        try:
            emb = np.load(embeddings).astype(np.float32)
        except (OSError, ValueError) as e:
            raise InputError(f"{embeddings}: unreadable embeddings ({e})") from e
        if emb.ndim != 2 or emb.shape[1] != spec["dim"]:
            raise InputError(f"{embeddings}: embeddings {emb.shape}, the export needs [T, {spec['dim']}]")
        n = min(num_frames, emb.shape[0])
        return waveform[: n * audio_lib.SAMPLES_PER_FRAME], emb[:n]
    if spec["name"] == "mel":
        params = audio_lib.MelParams(num_mels=spec["num_mels"], subframes=spec["subframes"])
        return waveform, audio_lib.encode_waveform(waveform, params)
    if encoder_file:
        from dheads_jax.convert import sda

        try:
            emb = sda.sda_embeddings(waveform, encoder_file)
        except sda.SDAError as e:
            raise InputError(f"{encoder_file}: {e}") from e
        n = min(num_frames, emb.shape[0])
        return waveform[: n * audio_lib.SAMPLES_PER_FRAME], emb[:n]
    raise InputError(
        f"{path}: the export uses the {spec['name']!r} audio encoder; pass --audio_embeddings=FILE.npy "
        "or, for the authors' SDA encoder, --audio_encoder_file=audio_encoder.pt"
    )


def read_manifest(path: str) -> list[dict]:
    """Rows of a CSV with columns id_image, audio, output (relative paths from the CSV's folder)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise InputError(f"{path}: unreadable manifest ({e})") from e
    need = {"id_image", "audio", "output"}
    if not rows or not need <= set(rows[0]):
        raise InputError(f"{path}: a manifest needs a header with columns id_image, audio, output")
    base = os.path.dirname(os.path.abspath(path))
    resolve = lambda p: p if os.path.isabs(p) else os.path.join(base, p)  # noqa: E731
    return [{k: resolve(r[k].strip()) for k in need} | {"row": i} for i, r in enumerate(rows)]


@dataclasses.dataclass
class Sampler:
    """An export ready to sample from."""

    config: ml_collections.ConfigDict
    params: object
    meta: dict
    steps: int
    sampler: str
    eta: float
    seed: int
    mesh: jax.sharding.Mesh | None = None
    audio_guidance: float = 1.0
    shared_noise: bool = False
    null_audio: np.ndarray | None = None  # the silence embedding, when audio_guidance != 1

    @classmethod
    def from_export(
        cls,
        export_dir,
        steps=None,
        sampler=None,
        eta=None,
        seed=0,
        mesh=None,
        audio_guidance=None,
        shared_noise=None,
    ):
        config, params, meta = export.load_export(export_dir)
        s = config.sampling
        guidance = float(s.get("audio_guidance", 1.0) if audio_guidance is None else audio_guidance)
        null_audio = None
        if guidance != 1.0:
            try:
                null_audio = audio_lib.silence_embedding(meta["audio_encoder"])
            except ValueError as e:
                raise InputError(f"{export_dir}: {e} (use --audio_guidance=1)") from e
        return cls(
            config,
            params,
            meta,
            steps or s.steps,
            sampler or s.sampler,
            s.eta if eta is None else eta,
            seed,
            mesh,
            guidance,
            bool(s.get("shared_noise", False) if shared_noise is None else shared_noise),
            null_audio,
        )

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    def run(self, jobs: list[Job], batch_size: int, upscale: int | None = None) -> list[str]:
        """Samples ``jobs`` in batches, streaming frames to their outputs. Returns the paths written."""
        model = factory.build_unet(self.config)
        apply_fn = sampling.make_apply_fn(model)
        schedule = schedule_from_config(self.config.diffusion, self.steps)
        opts = sampling.sampling_options(self.config)
        opts.update(
            sampler=self.sampler,
            eta=float(self.eta),
            audio_guidance=self.audio_guidance,
            shared_noise=self.shared_noise,
            null_audio=self.null_audio,
        )
        written = []
        total_frames = sum(len(j.audio) for j in jobs)
        frames_done = 0
        start = time.time()
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b : b + batch_size]
            n = max(len(j.audio) for j in batch)
            audio = np.stack([np.pad(j.audio, ((0, n - len(j.audio)), (0, 0))) for j in batch])
            writers = [video_io.make_writer(j.output, j.waveform, upscale) for j in batch]

            def on_frame(k, frames, active, writers=writers):
                nonlocal frames_done
                for w, f, a in zip(writers, frames, active, strict=True):
                    if a:
                        w.add(to_uint8(f))
                        frames_done += 1
                rate = frames_done / max(time.time() - start, 1e-9)
                logging.log_every_n_seconds(
                    logging.INFO,
                    "all jobs: %d/%d frames | %.2f frames/s | ETA %.0f s",
                    10,
                    frames_done,
                    total_frames,
                    rate,
                    (total_frames - frames_done) / max(rate, 1e-9),
                )

            try:
                sampling.sample_video(
                    apply_fn,
                    self.params,
                    schedule,
                    np.stack([j.identity for j in batch]),
                    audio,
                    jax.random.key(self.seed),
                    lengths=np.array([len(j.audio) for j in batch]),
                    video_ids=np.array([j.video_id for j in batch]),
                    mesh=self.mesh,
                    callback=on_frame,
                    **opts,
                )
                written += [w.close() for w in writers]
            except BaseException:
                for w in writers:
                    w.abort()
                raise
            logging.info("wrote %s", ", ".join(j.output for j in batch))
        return written


def export_from_workdir(
    workdir: str, out_dir: str, weights: str = "auto", dtype: str = "float32", step: int | None = None
) -> str:
    """Re-exports a training checkpoint (the latest, or ``step``) as an inference export.

    Args:
      workdir: a training workdir (its checkpoints/ folder).
      out_dir: the export folder to write.
      weights: "ema", "raw", or "auto" (EMA when the checkpoint has it).
      dtype: storage dtype of the exported parameters.
      step: checkpoint step; default the latest.
    """
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    step = ckpt.latest_step() if step is None else step
    if step is None:
        raise export.ExportError(f"{workdir}: no checkpoint to export")
    config = ml_collections.ConfigDict(ckpt.restore_json("config", step))
    has_ema = ckpt.has_ema(step)
    if weights == "auto":
        weights = "ema" if has_ema else "raw"
    if weights == "ema" and not has_ema:
        raise export.ExportError(f"{workdir}: checkpoint {step} has no EMA parameters (ema_decay was 0)")
    params = ckpt.restore_params(factory.param_shapes(config), step, ema=weights == "ema")
    provenance = dict(step=step, source_workdir=os.path.abspath(workdir))
    return export.write_export(out_dir, params, config, weights=weights, dtype=dtype, provenance=provenance)
