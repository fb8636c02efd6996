"""Training batches from a prepared dataset's TFRecord shards with tf.data.

The examples and their order come from ``plan.epoch_plan``; this module only reads and
decodes them. Process p of P reads the shards i with i % P == p. Its clip table (clip index,
frame count and speaker of every clip, in reading order) is read once at start-up without
decoding any frame. Each group of shards of the plan is read into memory as serialized
records (its shuffle window), and only the frames an example needs are decoded, in parallel
and in order. A restored iterator skips the consumed examples before reading anything.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tensorflow.experimental.numpy as tnp
import tensorflow_datasets as tfds

from dheads_jax.data import plan, reader
from dheads_jax.data.audio import AudioEncoderSpec
from dheads_jax.imaging import motion_transform


def _to_unit_range(png):
    image = tf.io.decode_image(png, channels=3, expand_animations=False)
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def process_shards(builder, split: str, process_index: int, process_count: int) -> list[str]:
    """The shard files of ``split`` that process ``process_index`` reads (i % P == p), in order.

    Raises:
      ValueError: fewer shards than processes.
    """
    names = builder.info.splits[split].filenames
    if len(names) < process_count:
        raise ValueError(
            f"split {split!r} has {len(names)} shards for {process_count} processes; "
            "prepare the dataset again with --num_shards >= the number of processes"
        )
    return [os.path.join(builder.data_dir, names[i]) for i in range(process_index, len(names), process_count)]


CLIP_FIELDS = ("clip_id", "clip_index", "speaker_id", "num_frames")


def parse_fields(features, fields, decoders=None):
    """A tf.data map function: a serialized clip -> the dict of ``fields`` of it."""

    def parse(serialized):
        ex = features.deserialize_example(serialized, decoders=decoders)
        return {f: ex[f] for f in fields}

    return parse


def shard_clips(features, path: str) -> list[dict]:
    """clip_id, clip_index, speaker_id and num_frames of every clip of a shard, in stored
    order, without decoding a frame."""
    parse = parse_fields(features, CLIP_FIELDS, decoders={"frames": tfds.decode.SkipDecoding()})
    return [
        dict(
            clip_id=ex["clip_id"].decode(),
            clip_index=int(ex["clip_index"]),
            speaker_id=ex["speaker_id"].decode(),
            num_frames=int(ex["num_frames"]),
        )
        for ex in tf.data.TFRecordDataset(path).map(parse).as_numpy_iterator()
    ]


class RecordIterator(plan.PlannedIterator):
    """``plan.PlannedIterator`` over the TFRecord shards of a prepared dataset."""

    def __init__(
        self, dataset_dir: str, data_config, *, split: str, process_index: int, process_count: int, **kw
    ):
        self._builder = reader.load_builder(dataset_dir)
        self._meta = reader.dataset_metadata(self._builder)
        AudioEncoderSpec.from_json(self._meta["audio_encoder"]).check_matches(data_config)
        self._files = process_shards(self._builder, split, process_index, process_count)
        self._features = self._builder.info.features
        super().__init__(
            self._clip_table(),
            data_config,
            split=split,
            process_index=process_index,
            process_count=process_count,
            **kw,
        )

    def _parse(self, serialized):
        return self._features.deserialize_example(serialized, decoders={"frames": tfds.decode.SkipDecoding()})

    def _clip_table(self) -> plan.ClipTable:
        rows = []
        for position, path in enumerate(self._files):
            ds = tf.data.TFRecordDataset(path).map(
                lambda s: {
                    k: v for k, v in self._parse(s).items() if k in ("clip_index", "num_frames", "speaker_id")
                }
            )
            for ex in ds.as_numpy_iterator():
                rows.append(
                    (position, int(ex["clip_index"]), int(ex["num_frames"]), ex["speaker_id"].decode())
                )
        return plan.ClipTable.from_rows(rows)

    def _read_group(self, shards: tuple[int, ...]) -> list[bytes]:
        """The serialized clips of some of this process's shards, in reading order."""
        files = [self._files[s] for s in shards]
        return list(tf.data.TFRecordDataset(files).as_numpy_iterator())

    def _planned(self, start: int):
        """(serialized clip, target, identity) of every example from position ``start`` on."""
        loaded = None  # (plan, group, records, members)
        for p, first in self.epochs_from(start):
            for i in range(first, len(p)):
                g = int(p.group[i])
                if loaded is None or loaded[0] is not p or loaded[1] != g:
                    members = np.flatnonzero(np.isin(self.table.shard, p.groups[g]))
                    loaded = (p, g, self._read_group(p.groups[g]), members)
                local = int(np.searchsorted(loaded[3], p.row[i]))
                yield loaded[2][local], p.target[i], p.identity[i]

    def _example(self, serialized, target, identity):
        """Decodes the frames one example needs, at the training resolution."""
        ex = self._parse(serialized)
        frames = ex["frames"]
        d = self._data
        idx = plan.example_indices(
            target, identity, tf.shape(frames)[0], d.motion_frames, d.audio_context, xp=tnp
        )
        size, stored = d.image_size, self._meta["image_size"]

        def prepare(png):
            image = _to_unit_range(png)
            if size != stored:
                # Antialiased resizing can overshoot by an ulp; keep the [-1, 1] contract.
                image = tf.clip_by_value(tf.image.resize(image, (size, size), antialias=True), -1.0, 1.0)
            return tf.ensure_shape(image, (size, size, 3))

        identity_image = prepare(tf.gather(frames, identity))
        motion_png = tf.gather(frames, idx["motion"])
        motion = tf.stack(
            [
                tf.cond(idx["motion_filled"][i], lambda: identity_image, lambda i=i: prepare(motion_png[i]))
                for i in range(d.motion_frames)
            ]
        )
        scale = size / stored
        return dict(
            target=prepare(tf.gather(frames, target)),
            identity=identity_image,
            motion=motion_transform(motion, d.grayscale_motion),
            audio=tf.gather(ex["audio_embeddings"], idx["audio"]),
            target_landmarks=tf.gather(ex["landmarks"], target) * scale,
            identity_landmarks=tf.gather(ex["landmarks"], identity) * scale,
            clip_index=tf.cast(ex["clip_index"], tf.int32),
            target_index=target,
            identity_index=identity,
            motion_index=tf.cast(idx["motion"], tf.int32),
            audio_index=tf.cast(idx["audio"], tf.int32),
        )

    def _batches_from(self, start: int):
        ds = tf.data.Dataset.from_generator(
            lambda: self._planned(start),
            output_signature=(
                tf.TensorSpec((), tf.string),
                tf.TensorSpec((), tf.int32),
                tf.TensorSpec((), tf.int32),
            ),
        )
        ds = ds.map(self._example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(self.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        return ds.as_numpy_iterator()
