"""Talking-head videos from an export: inputs from files, batched sampling, streamed outputs.

Used by run_sample.py. A job is one output video: an identity frame, per-frame audio
embeddings, the waveform to mux, and where to write. Jobs are sampled in batches; every
frame goes to its writer as soon as it is made, so memory stays flat for long audio.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import os

import jax
import ml_collections
import numpy as np
from absl import logging

from dheads_jax import export, media, sampling
from dheads_jax.data import align
from dheads_jax.data import audio as audio_lib
from dheads_jax.imaging import from_uint8, to_uint8
from dheads_jax.models import factory
from dheads_jax.progress import Progress


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
        image = media.read_identity_image(path)
    except media.MediaError as e:
        raise InputError(str(e)) from e
    try:
        aligned = align.align_image(image, image_size)
    except align.NoFaceError as e:
        raise InputError(f"{path}: no face found in the identity image") from e
    return from_uint8(aligned)


def load_audio(
    path: str,
    encoder: audio_lib.AudioEncoderSpec,
    embeddings: str | None = None,
    encoder_file: str | None = None,
):
    """(waveform [T*640], embeddings [T, D]) for an audio file, with the export's encoder.

    T = floor(seconds * 25): a remainder shorter than one frame (40 ms) is dropped, as in
    the training data. ``mel`` exports compute the embeddings here; other encoders need
    ``embeddings`` (a [T, D] .npy) or, for the authors' SDA encoder, ``encoder_file``.
    """
    try:
        waveform, _ = media.read_audio(path)
    except media.MediaError as e:
        raise InputError(f"{path}: unreadable audio ({e.message})") from e
    except OSError as e:
        raise InputError(f"{path}: unreadable audio ({e})") from e
    num_frames = len(waveform) // media.SAMPLES_PER_FRAME
    if num_frames < 1:
        raise InputError(f"{path}: audio is shorter than one video frame (40 ms)")
    waveform = waveform[: num_frames * media.SAMPLES_PER_FRAME]
    if embeddings:
        try:
            emb = np.load(embeddings).astype(np.float32)
        except (OSError, ValueError) as e:
            raise InputError(f"{embeddings}: unreadable embeddings ({e})") from e
        if emb.ndim != 2 or emb.shape[1] != encoder.dim:
            raise InputError(f"{embeddings}: embeddings {emb.shape}, the export needs [T, {encoder.dim}]")
        n = min(num_frames, emb.shape[0])
        return waveform[: n * media.SAMPLES_PER_FRAME], emb[:n]
    if encoder.mel is not None:
        return waveform, audio_lib.encode_waveform(waveform, encoder.mel)
    if encoder_file:
        from dheads_jax.convert import sda

        try:
            emb = sda.sda_embeddings(waveform, encoder_file)
        except sda.SDAError as e:
            raise InputError(f"{encoder_file}: {e}") from e
        n = min(num_frames, emb.shape[0])
        return waveform[: n * media.SAMPLES_PER_FRAME], emb[:n]
    raise InputError(
        f"{path}: the export uses the {encoder.name!r} audio encoder; pass --audio_embeddings=FILE.npy "
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
    """An export ready to sample from: its network, parameters and sampling options.

    Attributes:
      config: the export's config, merged over the defaults.
      params: float32 parameters.
      meta: the export's metadata (export.json).
      options: how frames are sampled (the export's, with the caller's overrides).
      seed: the job key's seed; a video's noise depends only on it and the video's index.
      mesh: a mesh to split each batch of videos over, or None for one device.
    """

    config: ml_collections.ConfigDict
    params: object
    meta: dict
    options: sampling.SamplingOptions
    seed: int = 0
    mesh: jax.sharding.Mesh | None = None

    @classmethod
    def from_export(cls, export_dir: str, overrides: dict | None = None, seed: int = 0, mesh=None) -> Sampler:
        """Loads an export; ``overrides`` replace fields of its config.sampling (None: keep)."""
        config, params, meta = export.load_export(export_dir)
        try:
            options = sampling.SamplingOptions.from_config(config, **(overrides or {}))
        except ValueError as e:
            raise InputError(f"{export_dir}: {e}") from e
        return cls(config, params, meta, options, seed, mesh)

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def encoder(self) -> audio_lib.AudioEncoderSpec:
        return export.encoder_spec(self.meta)

    @functools.cached_property
    def apply_fn(self) -> sampling.UNetApply:
        return sampling.UNetApply(factory.build_unet(self.config))

    def frames(self, jobs: list[Job], length: int | None = None, batch_size: int | None = None):
        """Samples one batch of jobs; yields (k, frames [V, H, W, 3] uint8, active [V] bool).

        Args:
          jobs: the videos of the batch.
          length: pad every video's audio to this many frames (default: the longest job's),
            so batches of different clip lengths share one compiled frame step.
          batch_size: pad the batch to this many videos with copies of the last one
            (dropped from the output), likewise.
        """
        length = length or max(len(j.audio) for j in jobs)
        videos = sampling.VideoBatch.create(
            np.stack([j.identity for j in jobs]),
            np.stack([np.pad(j.audio, ((0, length - len(j.audio)), (0, 0))) for j in jobs]),
            lengths=[len(j.audio) for j in jobs],
            video_ids=[j.video_id for j in jobs],
        )
        try:
            sampling.video.check_inputs(videos, self.options)
        except ValueError as e:
            raise InputError(f"the audio embeddings do not fit the export: {e}") from e
        shards = self.mesh.size if self.mesh is not None else 1
        padded = videos.padded(max(batch_size or 1, len(jobs))).padded(shards)
        placed, motion, params, schedule = sampling.place(
            padded, self.options, self.params, self.options.make_schedule(), self.mesh
        )
        step = functools.partial(sampling.jitted_frame_step, self.apply_fn, self.options)
        key = jax.random.key(self.seed)
        with jax.set_mesh(self.mesh) if self.mesh is not None else contextlib.nullcontext():
            for k, frames in sampling.video_frames(step, params, schedule, key, placed, motion):
                host = np.asarray(jax.device_get(frames))[: len(jobs)]
                yield k, to_uint8(host), k < videos.lengths

    def write(self, jobs: list[Job], upscale=None, length=None, batch_size=None, on_frames=None) -> list[str]:
        """Samples one batch of jobs into their outputs (mp4, npy or a PNG folder, by the name).

        Every output appears complete or not at all (``media`` writers abort on any error).

        Args:
          jobs, length, batch_size: as ``frames``.
          upscale: resize the frames to this size on output.
          on_frames: ``on_frames(k, active)`` after frame k of the batch is written.

        Returns:
          The paths written, in the order of ``jobs``.
        """
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context(media.make_writer(j.output, j.waveform, upscale)) for j in jobs]
            for k, frames, active in self.frames(jobs, length, batch_size):
                for writer, frame, on in zip(writers, frames, active, strict=True):
                    if on:
                        writer.add(frame)
                if on_frames:
                    on_frames(k, active)
        return [w.path for w in writers]

    def collect(self, jobs: list[Job], length=None, batch_size=None, on_frames=None) -> list[np.ndarray]:
        """Samples one batch of jobs into arrays: uint8 [T_i, S, S, 3] per job (``write``'s arguments)."""
        size = self.image_size
        out = [np.zeros((len(j.audio), size, size, 3), np.uint8) for j in jobs]
        for k, frames, active in self.frames(jobs, length, batch_size):
            for video, frame, on in zip(out, frames, active, strict=True):
                if on:
                    video[k] = frame
            if on_frames:
                on_frames(k, active)
        return out

    def run(
        self,
        jobs: list[Job],
        batch_size: int,
        upscale: int | None = None,
        label: str = "sampling",
        log_writes: bool = True,
    ) -> list[str]:
        """Samples ``jobs`` in batches, streaming frames to their outputs. Returns the paths written.

        Jobs are batched longest first, and every batch is padded to ``batch_size`` videos of
        the longest job's length, so a set of mixed clip lengths compiles the frame step once.
        A progress line says ``compiling`` at the start; each finished batch logs a
        ``wrote ...`` line unless ``log_writes`` is off (a caller that reports them itself).
        """
        written = []
        # A line every 30 s: a one-minute video prints a handful of lines, not a screenful.
        progress = Progress(sum(len(j.audio) for j in jobs), "frames", label=label, every_s=30.0)
        if jobs:
            progress.begin()
        jobs = sorted(jobs, key=lambda j: (-len(j.audio), j.video_id))
        length = max((len(j.audio) for j in jobs), default=1)
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b : b + batch_size]
            for j in batch:
                media.remove_temporaries(j.output)
            counted = lambda k, active: progress.update(int(active.sum()))  # noqa: E731
            written += self.write(batch, upscale, length, batch_size, counted)
            if log_writes:
                logging.info("wrote %s", ", ".join(j.output for j in batch))
        return written


EXPECTED_ERRORS = (InputError, export.ExportError, media.MediaError)


@dataclasses.dataclass(frozen=True)
class Request:
    """What to sample: one video (id_image, audio, output), a manifest, or a dataset split.

    Attributes:
      id_image, audio, output: one video's identity, speech and output path.
      audio_embeddings: a precomputed [T, D] .npy for exports with an external encoder.
      audio_encoder_file: the authors' TorchScript SDA encoder.
      manifest: a CSV with columns id_image, audio, output.
      dataset, split, output_dir: a prepared dataset split, each clip's first frame as the
        identity, outputs ``output_dir/<clip_id>.mp4``.
    """

    id_image: str | None = None
    audio: str | None = None
    output: str | None = None
    audio_embeddings: str | None = None
    audio_encoder_file: str | None = None
    manifest: str | None = None
    dataset: str | None = None
    split: str = "test"
    output_dir: str | None = None

    @property
    def is_set(self) -> bool:
        return bool(self.manifest or self.dataset)


@dataclasses.dataclass
class Summary:
    """What a run did: per-output report rows and the line to print."""

    report: list[dict]
    message: str

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.report if r["status"] == "failed"]


def single_job(sampler: Sampler, request: Request) -> list[Job]:
    if not (request.id_image and request.audio and request.output):
        raise InputError("one video needs --id_image, --audio and --output")
    identity = load_identity(request.id_image, sampler.image_size)
    waveform, emb = load_audio(
        request.audio, sampler.encoder, request.audio_embeddings, request.audio_encoder_file
    )
    media.check_writable(request.output)
    return [Job(identity, emb, waveform, request.output, 0)]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One video of a set, before its inputs are loaded.

    Attributes:
      video_id: its index in the set (with the seed, its noise).
      output: where it goes.
      length: frames to make.
      id_image, audio: a manifest row's files.
      clip_id: a dataset clip.
    """

    video_id: int
    output: str
    length: int
    id_image: str | None = None
    audio: str | None = None
    clip_id: str | None = None


def plan_manifest(request: Request) -> tuple[list[Entry], list[dict]]:
    """The manifest's rows still to make; existing outputs are skipped, unreadable audio fails."""
    entries, report = [], []
    for row in read_manifest(request.manifest):
        if os.path.exists(row["output"]):
            report.append(dict(output=row["output"], status="exists, skipped"))
            continue
        try:
            waveform, _ = media.read_audio(row["audio"])
        except (media.MediaError, OSError) as e:
            reason = e.message if isinstance(e, media.MediaError) else str(e)
            report.append(
                dict(
                    output=row["output"],
                    status="failed",
                    reason=f"{row['audio']}: unreadable audio ({reason})",
                )
            )
            continue
        length = len(waveform) // media.SAMPLES_PER_FRAME
        if length < 1:
            report.append(
                dict(
                    output=row["output"],
                    status="failed",
                    reason=f"{row['audio']}: audio is shorter than one video frame (40 ms)",
                )
            )
            continue
        entries.append(Entry(row["row"], row["output"], length, id_image=row["id_image"], audio=row["audio"]))
    return entries, report


def plan_dataset(sampler: Sampler, request: Request) -> tuple[list[Entry], list[dict]]:
    """One entry per clip of a dataset split still to make (``output_dir/<clip_id>.mp4``)."""
    from dheads_jax.data import reader

    if not request.output_dir:
        raise InputError("--dataset needs --output_dir")
    meta = reader.dataset_metadata(reader.load_builder(request.dataset))
    dim = audio_lib.AudioEncoderSpec.from_json(meta["audio_encoder"]).dim
    if meta["image_size"] != sampler.image_size or dim != sampler.encoder.dim:
        raise InputError(
            f"{request.dataset}: clips are {meta['image_size']} px with D={dim}, the export needs "
            f"{sampler.image_size} px with D={sampler.encoder.dim}"
        )
    entries, report = [], []
    for i, (clip_id, length) in enumerate(
        sorted(reader.clip_lengths(request.dataset, request.split).items())
    ):
        out = os.path.join(request.output_dir, clip_id + ".mp4")
        if os.path.exists(out):
            report.append(dict(output=out, status="exists, skipped"))
        else:
            entries.append(Entry(i, out, length, clip_id=clip_id))
    return entries, report


def assign(entries: list[Entry], num_processes: int) -> list[list[Entry]]:
    """Splits entries over processes so that each gets about the same number of frames.

    Longest first, each to the process with the fewest frames so far (ties: the lowest
    index): deterministic, so every process computes the same split on its own.
    """
    shares: list[list[Entry]] = [[] for _ in range(num_processes)]
    load = [0] * num_processes
    for e in sorted(entries, key=lambda e: (-e.length, e.video_id)):
        p = min(range(num_processes), key=lambda i: (load[i], i))
        shares[p].append(e)
        load[p] += e.length
    return shares


def load_entries(sampler: Sampler, request: Request, entries: list[Entry]) -> tuple[list[Job], list[dict]]:
    """The inputs of ``entries`` as jobs; an entry whose inputs cannot be used is reported as failed."""
    jobs, report = [], []
    if request.dataset:
        from dheads_jax.data import reader

        by_id = {e.clip_id: e for e in entries}
        for clip in reader.load_clips(request.dataset, request.split, clip_ids=by_id) if by_id else []:
            e = by_id[clip.clip_id]
            os.makedirs(os.path.dirname(e.output) or ".", exist_ok=True)
            jobs.append(Job(from_uint8(clip.frames[0]), clip.audio, clip.waveform, e.output, e.video_id))
        return jobs, report
    for e in entries:
        try:
            identity = load_identity(e.id_image, sampler.image_size)
            waveform, emb = load_audio(e.audio, sampler.encoder)
            jobs.append(Job(identity, emb, waveform, e.output, e.video_id))
        except InputError as err:
            logging.error("%s", err)
            report.append(dict(output=e.output, status="failed", reason=str(err)))
    return jobs, report


def write_report(path: str, report: list[dict]) -> None:
    """The per-output report as JSON, written under a temporary name and renamed."""
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    os.replace(path + ".tmp", path)


def run(
    export_dir: str,
    request: Request,
    overrides: dict | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    upscale: int | None = None,
) -> Summary:
    """Samples what ``request`` asks for with an export; the whole of run_sample.py.

    A set (manifest or dataset split) runs on every process of a multi-process job: each
    process plans the same entries, takes its share (``assign``), samples and writes it on
    its own devices; process 0 then writes one merged sample_report.json. A video's frames
    depend only on the seed, its index and the export, not on which process made it.

    Args:
      export_dir: the export folder.
      request: the videos to make.
      overrides: config.sampling fields to replace (None values keep the export's).
      seed: the job key's seed.
      batch_size: videos sampled together on a process; default its device count.
      upscale: output frame size, or None for the model's.

    Returns:
      The report (a set also writes it as sample_report.json beside its outputs).

    Raises:
      One of ``EXPECTED_ERRORS`` for inputs or exports that cannot be used.
    """
    from dheads_jax import distributed, parallel

    local = jax.local_devices()
    mesh = parallel.make_mesh(devices=local) if len(local) > 1 else None
    sampler = Sampler.from_export(export_dir, overrides, seed, mesh)
    batch_size = batch_size or len(local)
    if not request.is_set:
        if jax.process_count() > 1:
            raise InputError("one video (--id_image, --audio, --output) runs on one process; use a manifest")
        jobs = single_job(sampler, request)
        written = sampler.run(jobs, batch_size, upscale, log_writes=False)  # the summary says it
        return Summary([dict(output=written[0], status="written")], f"wrote {written[0]}")

    entries, report = plan_manifest(request) if request.manifest else plan_dataset(sampler, request)
    for row in report:
        if row["status"] == "failed":
            logging.error("%s", row["reason"])
    # Every process has listed the outputs before any is written.
    distributed.barrier("sample: planned")
    index, count = jax.process_index(), jax.process_count()
    mine = assign(entries, count)[index]
    jobs, failed = load_entries(sampler, request, mine)
    label = "sampling" if count == 1 else f"sampling (process {index + 1}/{count})"
    written = sampler.run(jobs, batch_size, upscale, label)
    done = failed + [dict(output=p, status="written") for p in written]
    report = sorted(
        report + [r for rows in distributed.gather(done) for r in rows], key=lambda r: r["output"]
    )
    folder = request.output_dir or os.path.dirname(os.path.abspath(request.manifest))
    path = os.path.join(folder, "sample_report.json")
    if index == 0:
        write_report(path, report)
    distributed.barrier("sample: reported")
    counts = {s: sum(r["status"] == s for r in report) for s in ("written", "exists, skipped", "failed")}
    return Summary(
        report,
        f"{counts['written']} written, {counts['exists, skipped']} skipped, {counts['failed']} failed; {path}",
    )
