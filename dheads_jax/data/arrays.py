"""A prepared dataset as plain numpy arrays, and training batches from them without TensorFlow.

``export_arrays`` reads a prepared dataset once (with TensorFlow, on any machine) and writes,
per split, the decoded frames, landmarks and audio embeddings of every clip as ``.npy`` files
plus a clip table; ``ArrayIterator`` serves training batches from them with numpy alone (an
accelerator image without TensorFlow trains from such a folder), the same batches as the
tf.data pipeline of the dataset it came from (``records.RecordIterator``): both follow
``plan.epoch_plan``. Layout:

  <dir>/arrays.json                 format, the dataset's preparation metadata, splits
  <dir>/<split>/frames.npy          uint8 [F, S, S, 3], every clip's frames one after another
  <dir>/<split>/landmarks.npy       float32 [F, 68, 2]
  <dir>/<split>/audio.npy           float32 [F, D]
  <dir>/<split>/clips.json          per clip, in shard order: clip_id, clip_index, speaker_id,
                                    num_frames, offset (its first row in the arrays), shard
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np

from dheads_jax.data import plan
from dheads_jax.data.audio import AudioEncoderSpec
from dheads_jax.imaging import from_uint8, motion_transform

FORMAT_VERSION = 1
INDEX_NAME = "arrays.json"
ARRAYS = ("frames", "landmarks", "audio")
ARRAY_FEATURES = {"frames": "frames", "landmarks": "landmarks", "audio": "audio_embeddings"}


def is_arrays_dir(path: str) -> bool:
    """Whether ``path`` is an ``export_arrays`` folder (rather than a TFDS dataset)."""
    return os.path.exists(os.path.join(path, INDEX_NAME))


def read_index(path: str) -> dict:
    with open(os.path.join(path, INDEX_NAME), encoding="utf-8") as f:
        return json.load(f)


def export_arrays(dataset_dir: str, output_dir: str, splits: list[str] | None = None) -> str:
    """Writes the arrays of a prepared dataset's splits (all by default) to ``output_dir``.

    The folder appears complete or not at all: it is written under a temporary name, then
    renamed.

    Returns:
      ``output_dir``.

    Raises:
      FileExistsError: ``output_dir`` exists.
    """
    from dheads_jax.data import reader

    if os.path.exists(output_dir):
        raise FileExistsError(f"{output_dir} exists; remove it or choose another folder")
    builder = reader.load_builder(dataset_dir)
    tmp = f"{output_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    index = dict(format_version=FORMAT_VERSION, metadata=reader.dataset_metadata(builder), splits={})
    try:
        for split in splits or sorted(builder.info.splits):
            index["splits"][split] = _export_split(builder, split, os.path.join(tmp, split))
        with open(os.path.join(tmp, INDEX_NAME), "w", encoding="utf-8") as f:
            json.dump(index, f, indent=2)
        os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def _export_split(builder, split: str, folder: str) -> dict:
    """Writes one split's arrays and clip table into ``folder``; returns its index entry."""
    import tensorflow as tf

    from dheads_jax.data import records

    features = builder.info.features
    paths = [os.path.join(builder.data_dir, n) for n in builder.info.splits[split].filenames]
    clips = [
        dict(c, shard=shard) for shard, path in enumerate(paths) for c in records.shard_clips(features, path)
    ]
    offsets = np.cumsum([0] + [c["num_frames"] for c in clips])
    for c, off in zip(clips, offsets[:-1], strict=True):
        c["offset"] = int(off)
    total, size = int(offsets[-1]), builder.info.metadata["dheads"]["image_size"]
    shapes = dict(
        frames=((total, size, size, 3), np.uint8),
        landmarks=((total, 68, 2), np.float32),
        audio=((total, features["audio_embeddings"].shape[-1]), np.float32),
    )
    os.makedirs(folder)
    out = {
        name: np.lib.format.open_memmap(os.path.join(folder, f"{name}.npy"), "w+", dtype, shape)
        for name, (shape, dtype) in shapes.items()
    }
    parse = records.parse_fields(features, (*ARRAY_FEATURES.values(), "num_frames"))
    k = 0
    for ex in tf.data.TFRecordDataset(paths).map(parse).as_numpy_iterator():
        n = int(ex["num_frames"])
        for name, feature in ARRAY_FEATURES.items():
            out[name][k : k + n] = ex[feature]
        k += n
    for a in out.values():
        a.flush()
    with open(os.path.join(folder, "clips.json"), "w", encoding="utf-8") as f:
        json.dump(clips, f, indent=0)
    return dict(num_shards=len(paths), num_clips=len(clips), num_frames=total)


@dataclasses.dataclass
class SplitArrays:
    """One split of an arrays folder (frames, landmarks and audio memory-mapped)."""

    frames: np.ndarray
    landmarks: np.ndarray
    audio: np.ndarray
    clips: list[dict]
    num_shards: int

    @classmethod
    def load(cls, path: str, split: str) -> SplitArrays:
        index = read_index(path)
        if index.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: arrays format {index.get('format_version')}, expected {FORMAT_VERSION}"
            )
        if split not in index["splits"]:
            raise ValueError(f"{path} has no split {split!r} (it has {sorted(index['splits'])})")
        folder = os.path.join(path, split)
        arrays = {a: np.load(os.path.join(folder, f"{a}.npy"), mmap_mode="r") for a in ARRAYS}
        with open(os.path.join(folder, "clips.json"), encoding="utf-8") as f:
            clips = json.load(f)
        return cls(**arrays, clips=clips, num_shards=index["splits"][split]["num_shards"])

    def clip(self, i: int) -> dict:
        """Frames uint8 [T, S, S, 3] and audio float32 [T, D] of clip ``i`` (in shard order)."""
        c = self.clips[i]
        rows = slice(c["offset"], c["offset"] + c["num_frames"])
        return dict(
            frames=np.asarray(self.frames[rows]), audio=np.asarray(self.audio[rows]), clip_id=c["clip_id"]
        )


class ArrayIterator(plan.PlannedIterator):
    """``plan.PlannedIterator`` over an ``export_arrays`` folder, numpy only.

    The arrays must be at the training resolution (``config.data.image_size``): the tf.data
    pipeline resizes stored frames on the fly, which arrays do not repeat.
    """

    def __init__(self, path: str, data_config, *, split: str, process_index: int, process_count: int, **kw):
        index = read_index(path)
        AudioEncoderSpec.from_json(index["metadata"]["audio_encoder"]).check_matches(data_config)
        stored = index["metadata"]["image_size"]
        if stored != data_config.image_size:
            raise ValueError(
                f"{path} holds {stored} px frames but config.data.image_size is {data_config.image_size}; "
                "export arrays from a dataset prepared at the training resolution"
            )
        self._arrays = SplitArrays.load(path, split)
        if self._arrays.num_shards < process_count:
            raise ValueError(
                f"split {split!r} has {self._arrays.num_shards} shards for {process_count} processes; "
                "prepare the dataset again with --num_shards >= the number of processes"
            )
        mine = [c for c in self._arrays.clips if c["shard"] % process_count == process_index]
        rows = [
            (c["shard"] // process_count, c["clip_index"], c["num_frames"], c["speaker_id"]) for c in mine
        ]
        self._offsets = np.array([c["offset"] for c in mine], np.int64)
        super().__init__(
            plan.ClipTable.from_rows(rows),
            data_config,
            split=split,
            process_index=process_index,
            process_count=process_count,
            **kw,
        )

    def _batches_from(self, start: int):
        rows, targets, identities = [], [], []
        pending = 0
        for p, first in self.epochs_from(start):
            rows.append(p.row[first:])
            targets.append(p.target[first:])
            identities.append(p.identity[first:])
            pending += len(p) - first
            while pending >= self.batch_size:
                row, target, identity = (np.concatenate(x) for x in (rows, targets, identities))
                b = self.batch_size
                yield self._batch(row[:b], target[:b], identity[:b])
                rows, targets, identities = [row[b:]], [target[b:]], [identity[b:]]
                pending -= b

    def _batch(self, row: np.ndarray, target: np.ndarray, identity: np.ndarray) -> dict:
        d = self._data
        n = self.table.num_frames[row]
        offset = self._offsets[row]
        idx = plan.example_indices(target, identity, n, d.motion_frames, d.audio_context)
        frames, a = self._arrays.frames, self._arrays
        motion = from_uint8(frames[(offset[:, None] + idx["motion"]).ravel()])
        motion = motion.reshape(len(row), d.motion_frames, *motion.shape[1:])
        return dict(
            target=from_uint8(frames[offset + target]),
            identity=from_uint8(frames[offset + identity]),
            motion=motion_transform(motion, d.grayscale_motion),
            audio=np.asarray(a.audio[offset[:, None] + idx["audio"]]),
            target_landmarks=np.asarray(a.landmarks[offset + target]) * 1.0,
            identity_landmarks=np.asarray(a.landmarks[offset + identity]) * 1.0,
            clip_index=self.table.clip_index[row].astype(np.int32),
            target_index=target.astype(np.int32),
            identity_index=identity.astype(np.int32),
            motion_index=idx["motion"].astype(np.int32),
            audio_index=idx["audio"].astype(np.int32),
        )
