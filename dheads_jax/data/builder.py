"""The TFDS builder: a folder of talking-face clips -> TFRecord shards plus TFDS metadata.

One builder, two engines, one per-clip function (``process.try_clip``):

* Local (default): worker processes turn each clip into an example and pickle it into a
  temporary spool folder (or report why not); then TFDS writes the examples of every
  non-empty split into shards.
* Apache Beam (``Engine.beam_options``, e.g. "runner=DirectRunner,direct_num_workers=2"):
  TFDS runs a Beam pipeline per split whose clips are processed on the runner's workers
  (``beam_build``); bad clips are counted and listed, never fail the pipeline.

Either way the shards land in TFDS's usual layout, ``<output_dir>/talking_faces/1.0.0/``,
via TFDS's temporary folder and a rename, and the skip report (sorted by split and clip) in
``<output_dir>/prepare_report.json``. Paths may be local or anything TensorFlow's file
system layer reads (``gs://...``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import json
import math
import multiprocessing
import os
import pickle
import shutil
import sys
import tempfile
import time
import uuid

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from dheads_jax import files, media, progress
from dheads_jax.data import audio, process, sources

BUILDER_NAME = "talking_faces"
REPORT_NAME = "prepare_report.json"
SHARD_BYTES = 256 << 20
MIN_AUTO_SHARDS = 4
DEFAULT_SETTINGS = process.PrepareSettings()


class NothingWrittenError(RuntimeError):
    """Every clip was skipped."""


@dataclasses.dataclass(frozen=True)
class Engine:
    """How the clips are processed and written: the local process pool or Apache Beam.

    Attributes:
      num_workers: clip-processing processes (the local pool).
      num_shards: TFRecord shards per split; None picks max(4, size / 256 MiB), at most
        the number of examples of the smallest split (with Beam: TFDS's own rule, powers
        of two of at most 256 MiB each).
      beam_options: Beam pipeline options in TFDS's syntax ("runner=DirectRunner,...");
        None builds with the local process pool.
    """

    num_workers: int = 1
    num_shards: int | None = None
    beam_options: str | None = None


DEFAULT_ENGINE = Engine()


def external_dim(settings: process.PrepareSettings, candidates: list[sources.ClipSource]) -> int:
    """D of the external embeddings, read from the first ``.npy`` that exists."""
    for src in candidates:
        path = audio.external_path(settings.embeddings_dir, src.relative_path)
        if os.path.exists(path):
            try:
                shape = np.load(path, mmap_mode="r").shape
            except (OSError, ValueError):
                continue
            if len(shape) == 2:
                return int(shape[1])
    raise ValueError(f"no readable [T, D] .npy embedding found under {settings.embeddings_dir}")


def encoder(settings: process.PrepareSettings) -> audio.AudioEncoderSpec:
    """The audio encoder a preparation run uses."""
    if settings.audio_encoder == "mel":
        return audio.AudioEncoderSpec.for_mel(settings.mel)
    if settings.audio_encoder == "external":
        return audio.AudioEncoderSpec.external(settings.external_dim, settings.external_name)
    raise ValueError(f"unknown audio encoder {settings.audio_encoder!r}; choose one of {audio.ENCODERS}")


def dataset_metadata(settings: process.PrepareSettings) -> dict:
    """JSON-serialisable description of how the dataset was made (TFDS metadata.json)."""
    spec = encoder(settings).to_json()
    return dict(
        format_version=1,
        image_size=settings.image_size,
        fps=media.FPS,
        sample_rate=media.SAMPLE_RATE,
        samples_per_frame=media.SAMPLES_PER_FRAME,
        audio_encoder=spec,
        min_frames=settings.min_frames,
        max_av_mismatch=settings.max_av_mismatch,
        smoothing_sigma=settings.smoothing_sigma,
        lip_box_margin=settings.lip_box_margin,
        image_format=settings.image_format,
        landmarks="dlib 68-point shape predictor (iBUG 300-W order), in crop pixels",
        face_detection_every=settings.detect_every,
        alignment="similarity on points 27-47 to dheads_jax.data.align.TEMPLATE, Gaussian-smoothed",
    )


@contextlib.contextmanager
def _workers_skip_main():
    """Spawned workers need only dheads_jax.data.process: keep them from re-running __main__.

    A spawned child normally re-imports the parent's main script, which may import
    TensorFlow and JAX (seconds per worker) or lack an ``if __name__ == "__main__"`` guard;
    hiding the script's name while the pool starts its workers avoids both.
    """
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)
        if "__spec__" not in saved:
            del main.__spec__


class TalkingFaces(tfds.core.GeneratorBasedBuilder):
    """Talking-face clips aligned to a face template, with landmarks and audio embeddings."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}

    def __init__(
        self,
        *,
        clips: sources.ClipSpec,
        settings: process.PrepareSettings = DEFAULT_SETTINGS,
        engine: Engine = DEFAULT_ENGINE,
        **kwargs,
    ):
        """Lists the clips; nothing is decoded until ``download_and_prepare``.

        Args:
          clips: where the clips are (videos, parallel audio, file lists, speaker pattern,
            folder layout); see sources.ClipSpec.
          settings: what goes into each example.
          engine: worker processes, shards per split, Beam or the local pool; see Engine.
          **kwargs: for tfds.core.GeneratorBasedBuilder (data_dir, ...).
        """
        self.candidates, self.skipped = sources.collect_clips(clips)
        if settings.audio_encoder == "external" and settings.external_dim is None:
            settings = dataclasses.replace(settings, external_dim=external_dim(settings, self.candidates))
        self.settings = settings
        self.engine = engine
        self.written: dict[str, int] = {}
        self.spooled: set[sources.ClipSource] = set()
        self.counters: dict[str, int] = {}
        self._spool_dir: str | None = None
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        s = self.settings.image_size
        dim = encoder(self.settings).dim
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Talking-face clips at 25 fps aligned to a face template and cropped to "
                f"{s}x{s}, with per-frame 68-point landmarks, mouth boxes, audio embeddings "
                "[T, D] and the 16 kHz mono waveform [T * 640]. See data/README.md."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "frames": tfds.features.Sequence(
                        tfds.features.Image(shape=(s, s, 3), encoding_format=self.settings.image_format)
                    ),
                    "landmarks": tfds.features.Tensor(shape=(None, 68, 2), dtype=np.float32),
                    "mouth_boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.int32),
                    "audio_embeddings": tfds.features.Tensor(shape=(None, dim), dtype=np.float32),
                    "waveform": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                    "fps": tfds.features.Tensor(shape=(), dtype=np.float32),
                    "sample_rate": tfds.features.Tensor(shape=(), dtype=np.int32),
                    "num_frames": tfds.features.Tensor(shape=(), dtype=np.int32),
                    "clip_id": tfds.features.Text(),
                    "speaker_id": tfds.features.Text(),
                    "clip_index": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            metadata=tfds.core.MetadataDict(dheads=dataset_metadata(self.settings)),
        )

    # TFDS prints these two lines to stdout whatever the verbosity; here they are DEBUG lines
    # (--verbosity=1), as the result is the command's summary line.
    def _log_download_bytes(self) -> None:
        logging.debug("TFDS: writing %s to %s", self.name, self.data_dir)

    def _log_download_done(self) -> None:
        logging.debug("TFDS: %s written to %s", self.name, self.data_dir)

    def _spool_path(self, src: sources.ClipSource) -> str:
        return files.join(self._spool_dir, src.split, f"{src.index:09d}.pkl")

    def _record(self, src: sources.ClipSource, reason: str | None, message: str) -> None:
        if reason is None:
            self.written[src.split] = self.written.get(src.split, 0) + 1
            self.spooled.add(src)
            logging.info("prepared %s: %s", src.relative_path, message)
        else:
            self.skipped.append(sources.Skip(src.relative_path, src.split, reason, message))
            logging.warning("skipped %s: %s [%s]", src.relative_path, message, reason)

    def spool(self) -> None:
        """Processes every candidate clip into the spool folder (stage 1)."""
        for split in {c.split for c in self.candidates}:
            os.makedirs(os.path.join(self._spool_dir, split), exist_ok=True)
        tasks = [(c, self.settings, self._spool_path(c)) for c in self.candidates]
        if self.engine.num_workers > 1 and len(tasks) > 1:
            # spawn, not fork: the parent has TensorFlow threads running.
            ctx = multiprocessing.get_context("spawn")
            with _workers_skip_main():
                pool = ctx.Pool(min(self.engine.num_workers, len(tasks)))
            with pool:
                for result in pool.imap_unordered(process.spool_clip, tasks):
                    self._record(*result)
        else:
            for task in tasks:
                self._record(*process.spool_clip(task))

    def shards(self) -> int | None:
        """Shards per split for the spooled examples (None: TFDS's rule, for a remote spool)."""
        smallest = min(self.written.values())
        if self.engine.num_shards:
            return max(1, min(self.engine.num_shards, smallest))
        if files.is_remote(self._spool_dir):
            return None
        size = sum(
            e.stat().st_size for d in os.scandir(self._spool_dir) if d.is_dir() for e in os.scandir(d.path)
        )
        return max(1, min(smallest, max(MIN_AUTO_SHARDS, math.ceil(size / SHARD_BYTES))))

    def download_and_prepare(self, **kwargs) -> None:
        """Processes the clips, then writes the non-empty splits with TFDS.

        Raises:
          FileExistsError: the dataset folder already exists.
          NothingWrittenError: every clip was skipped (the report is still complete).
        """
        if files.exists(files.join(str(self.data_dir), "dataset_info.json")):
            raise FileExistsError(f"{self.data_dir} already holds a dataset; remove it or use --overwrite")
        # TFDS's progress bars only with the libraries' lines (--verbosity=1); ours are the
        # "prepared CLIP" lines.
        tfds.display_progress_bar(progress.library_logs_shown())
        if self.engine.beam_options:
            self._prepare_with_beam(**kwargs)
        else:
            self._prepare_locally(**kwargs)
        self.skipped.sort(key=lambda s: (s.split, s.clip))

    def _prepare_locally(self, **kwargs) -> None:
        parent = os.path.dirname(os.path.dirname(os.path.abspath(self.data_dir)))
        if files.is_remote(str(self.data_dir)):
            self._spool_dir = tempfile.mkdtemp(prefix=".spool-")
        else:
            os.makedirs(parent, exist_ok=True)
            self._spool_dir = tempfile.mkdtemp(prefix=".spool-", dir=parent)
        try:
            self.spool()
            if not self.written:
                raise NothingWrittenError(f"all {len(self.candidates)} clips were skipped; nothing written")
            config = tfds.download.DownloadConfig(num_shards=self.shards())
            super().download_and_prepare(
                download_dir=os.path.join(self._spool_dir, "downloads"), download_config=config, **kwargs
            )
        finally:
            shutil.rmtree(self._spool_dir, ignore_errors=True)
            self._spool_dir = None

    def _prepare_with_beam(self, **kwargs) -> None:
        from dheads_jax.data import beam_build  # noqa: PLC0415 - the optional beam extra

        options = beam_build.pipeline_options(self.engine.beam_options)
        output_dir = os.path.dirname(os.path.dirname(str(self.data_dir)))
        # The spool must be reachable from every worker: beside the output (local or gs://).
        self._spool_dir = files.join(output_dir, f".spool-{uuid.uuid4().hex[:12]}")
        try:
            for split in {c.split for c in self.candidates}:
                files.makedirs(files.join(self._spool_dir, split))
            tasks = [(c, self.settings, self._spool_path(c)) for c in self.candidates]
            outcomes, self.counters = beam_build.spool(
                tasks, options, files.join(self._spool_dir, "outcomes", "outcome")
            )
            logging.info("Beam counters (%s): %s", beam_build.NAMESPACE, self.counters)
            for outcome in outcomes:
                self._record(*outcome)
            if not self.written:
                raise NothingWrittenError(f"all {len(self.candidates)} clips were skipped; nothing written")
            config = tfds.download.DownloadConfig(
                beam_options=beam_build.writer_options(options),
                num_shards=self.shards(),
                max_shard_size=SHARD_BYTES,
            )
            super().download_and_prepare(
                download_dir=files.join(self._spool_dir, "downloads"), download_config=config, **kwargs
            )
        finally:
            files.remove_tree(self._spool_dir)
            self._spool_dir = None

    def _split_generators(self, dl_manager):
        del dl_manager
        if self.engine.beam_options:
            from dheads_jax.data import beam_build  # noqa: PLC0415

            return {
                split: beam_build.ReadSpool(
                    [self._spool_path(c) for c in self.candidates if c.split == split and c in self.spooled]
                )
                for split in sorted(self.written)
            }
        return {split: self._generate_examples(split) for split in sorted(self.written)}

    def _generate_examples(self, split: str):
        folder = os.path.join(self._spool_dir, split)
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                example = pickle.load(f)
            os.remove(path)
            example["frames"] = [io.BytesIO(b) for b in example["frames"]]
            yield example["clip_id"], example


def skip_counts(skipped: list[sources.Skip]) -> dict[str, int]:
    """Number of skipped clips per reason, most frequent first."""
    return dict(collections.Counter(s.reason for s in skipped).most_common())


@dataclasses.dataclass
class PrepareResult:
    """What ``prepare_dataset`` did.

    Attributes:
      dataset_dir: the TFDS version folder, or None when nothing was written.
      written: examples per split.
      skipped: every clip left out, with its reason.
      report_path: the JSON report.
      seconds: wall time.
      counters: the Beam counters (``written``, ``skipped_<reason>``); empty without Beam.
    """

    dataset_dir: str | None
    written: dict[str, int]
    skipped: list[sources.Skip]
    report_path: str
    seconds: float
    counters: dict[str, int] = dataclasses.field(default_factory=dict)


def write_json(path: str, obj) -> None:
    """Writes JSON through a temporary name and a rename (local or remote paths)."""
    files.write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def prepare_dataset(
    clips: sources.ClipSpec,
    output_dir: str,
    *,
    settings: process.PrepareSettings = DEFAULT_SETTINGS,
    engine: Engine = DEFAULT_ENGINE,
    overwrite: bool = False,
) -> PrepareResult:
    """Builds the dataset and writes the skip report; see ``TalkingFaces``.

    Args:
      clips: where the clips are; see sources.ClipSpec.
      output_dir: where the dataset (``talking_faces/1.0.0/``) and the report go.
      settings: what goes into each example.
      engine: how the clips are processed and written; see Engine.
      overwrite: replace an existing dataset in ``output_dir``.

    Returns:
      PrepareResult; ``dataset_dir`` is None when every clip was skipped.
    """
    start = time.time()
    files.makedirs(output_dir)
    builder = TalkingFaces(clips=clips, settings=settings, engine=engine, data_dir=output_dir)
    if overwrite and files.exists(str(builder.data_dir)):
        files.remove_tree(str(builder.data_dir))
    try:
        builder.download_and_prepare()
        dataset_dir = str(builder.data_dir)
    except NothingWrittenError as e:
        logging.error("%s", e)
        dataset_dir = None
    report = dict(
        videos_dir=files.absolute(clips.videos_dir),
        dataset_dir=dataset_dir,
        written=builder.written,
        num_skipped=len(builder.skipped),
        skipped_per_reason=skip_counts(builder.skipped),
        skipped=[dataclasses.asdict(s) for s in builder.skipped],
        metadata=dataset_metadata(builder.settings),
    )
    report_path = files.join(output_dir, REPORT_NAME)
    write_json(report_path, report)
    return PrepareResult(
        dataset_dir,
        dict(builder.written),
        list(builder.skipped),
        report_path,
        time.time() - start,
        dict(builder.counters),
    )
