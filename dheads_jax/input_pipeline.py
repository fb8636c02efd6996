"""Training batches from a prepared dataset with tf.data (docs/method.md, section 4).

Every example is one clip: a target frame k and an identity frame drawn uniformly and
distinct, the m_x previous frames as motion frames (identity frame where k - i < 0), the
audio embeddings of frames k - m_y .. k + m_y clamped to the clip, and the mouth box of the
target's (or, per ``config.data.lip_box_source``, the identity's) landmarks.

Multi-host: process p of P reads the TFRecord shards i with i % P == p, so processes see
disjoint clips. Determinism: the draws of an example are a stateless function of (seed,
epoch, clip_index); the shard order and the shuffle of each epoch depend only on (seed,
epoch, process). The position is the number of batches served, the same on every process
(``get_state``); a restored pipeline recomputes its epoch and offset from it and skips the
consumed examples before any image is decoded. Only the frames an example needs are decoded.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tensorflow.experimental.numpy as tnp
import tensorflow_datasets as tfds

from dheads_jax.data import reader
from dheads_jax.data.audio import AudioEncoderSpec
from dheads_jax.imaging import motion_transform
from dheads_jax.mouth import mouth_box

STATE_VERSION = 1
_EPOCH_STRIDE = 1_000_003


def example_indices(target, identity, num_frames, motion_frames: int, audio_context: int, xp=np) -> dict:
    """The frame indices of one training example (docs/method.md, section 4); pure.

    Works on numpy values (``xp=np``) and inside tf.data (``xp=tf.experimental.numpy``).

    Args:
      target: k, the target frame.
      identity: the identity frame (distinct from k).
      num_frames: n, frames in the clip.
      motion_frames: m_x.
      audio_context: m_y.
      xp: array namespace.

    Returns:
      dict of
        target, identity: the inputs;
        motion: [m_x] frames k - m_x .. k - 1, oldest first, with the identity index in the
          slots before the clip start (target 0 -> [id, id]; target 1 -> [id, 0]);
        motion_filled: [m_x] bool, True where the identity frame fills the slot;
        audio: [2 m_y + 1] frames k - m_y .. k + m_y clamped to [0, n - 1].
    """
    raw = target + xp.arange(-motion_frames, 0, dtype=xp.int32)
    filled = raw < 0
    audio = xp.clip(target + xp.arange(-audio_context, audio_context + 1, dtype=xp.int32), 0, num_frames - 1)
    return dict(
        target=target,
        identity=identity,
        motion=xp.where(filled, identity, raw),
        motion_filled=filled,
        audio=audio,
    )


def draw_target_identity(key, num_frames):
    """Uniform target k in [0, n) and identity in [0, n) minus {k}; stateless in ``key``.

    Args:
      key: int64 [2] stateless seed.
      num_frames: int32 scalar n >= 2.

    Returns:
      (target, identity) int32 scalars.
    """
    target = tf.random.stateless_uniform([], seed=key, minval=0, maxval=num_frames, dtype=tf.int32)
    other = tf.random.stateless_uniform(
        [], seed=key + tf.constant([0, 1], tf.int64), minval=0, maxval=num_frames - 1, dtype=tf.int32
    )
    return target, other + tf.cast(other >= target, tf.int32)


def _epoch_seed(seed: int, epoch):
    return tf.cast(seed, tf.int64) * _EPOCH_STRIDE + tf.cast(epoch, tf.int64)


def _to_unit_range(png):
    image = tf.io.decode_image(png, channels=3, expand_animations=False)
    return tf.cast(image, tf.float32) / 127.5 - 1.0


class TrainIterator:
    """Infinite iterator of numpy training batches with a saveable position.

    Batch (B = local batch size, S = config.data.image_size):
      target: float32 [B, S, S, 3] in [-1, 1].
      identity: float32 [B, S, S, 3].
      motion: float32 [B, m_x, S, S, mc], oldest first; mc = 1 if grayscale_motion else 3.
      audio: float32 [B, 2 m_y + 1, D].
      mouth_box: int32 [B, 4] (top, bottom, left, right), half-open, at resolution S.
      clip_index, target_index, identity_index: int32 [B].
      motion_index: int32 [B, m_x] (identity index where filled); audio_index: int32 [B, 2 m_y + 1].
    """

    def __init__(
        self,
        dataset_dir: str,
        data_config,
        *,
        split: str,
        batch_size: int,
        seed: int,
        process_index: int,
        process_count: int,
        shuffle_buffer: int = 256,
        state: dict | None = None,
    ):
        self._builder = reader.load_builder(dataset_dir)
        self._meta = reader.dataset_metadata(self._builder)
        AudioEncoderSpec.from_json(self._meta["audio_encoder"]).check_matches(data_config)
        self._data = data_config
        self.split = split
        self.batch_size = batch_size
        self.seed = seed
        self.process_index = process_index
        self.process_count = process_count
        self.shuffle_buffer = shuffle_buffer
        self._files, self.epoch_length = self._process_shards()
        self._batches = 0
        self._iter = None
        self.restore(state or self.get_state())

    def _process_shards(self) -> tuple[list[str], int]:
        info = self._builder.info.splits[self.split]
        names, lengths = info.filenames, info.shard_lengths
        if len(names) < self.process_count:
            raise ValueError(
                f"split {self.split!r} has {len(names)} shards for {self.process_count} processes; "
                "prepare the dataset again with --num_shards >= the number of processes"
            )
        mine = range(self.process_index, len(names), self.process_count)
        files = [os.path.join(self._builder.data_dir, names[i]) for i in mine]
        length = sum(lengths[i] for i in mine)
        if length < 1:
            raise ValueError(f"process {self.process_index} has no example in split {self.split!r}")
        return files, length

    def _select(self, serialized, epoch):
        """Parses one clip, draws its indices and keeps only what the example needs."""
        ex = self._builder.info.features.deserialize_example(
            serialized, decoders={"frames": tfds.decode.SkipDecoding()}
        )
        frames = ex["frames"]
        n = tf.shape(frames)[0]
        key = tf.stack([_epoch_seed(self.seed, epoch), 2 * ex["clip_index"]])
        target, identity = draw_target_identity(key, n)
        d = self._data
        idx = example_indices(target, identity, n, d.motion_frames, d.audio_context, xp=tnp)
        return dict(
            target_png=tf.gather(frames, target),
            identity_png=tf.gather(frames, identity),
            motion_png=tf.gather(frames, idx["motion"]),
            motion_filled=idx["motion_filled"],
            audio=tf.gather(ex["audio_embeddings"], idx["audio"]),
            target_landmarks=tf.gather(ex["landmarks"], target),
            identity_landmarks=tf.gather(ex["landmarks"], identity),
            clip_index=tf.cast(ex["clip_index"], tf.int32),
            target_index=target,
            identity_index=identity,
            motion_index=tf.cast(idx["motion"], tf.int32),
            audio_index=tf.cast(idx["audio"], tf.int32),
        )

    def _decode(self, ex):
        """Decodes the needed frames to [-1, 1] floats at the training resolution."""
        size, stored = self._data.image_size, self._meta["image_size"]

        def prepare(png):
            image = _to_unit_range(png)
            if size != stored:
                # Antialiased resizing can overshoot by an ulp; keep the [-1, 1] contract.
                image = tf.clip_by_value(tf.image.resize(image, (size, size), antialias=True), -1.0, 1.0)
            return tf.ensure_shape(image, (size, size, 3))

        identity = prepare(ex.pop("identity_png"))
        motion_png, filled = ex.pop("motion_png"), ex.pop("motion_filled")
        motion = tf.stack(
            [
                tf.cond(filled[i], lambda: identity, lambda i=i: prepare(motion_png[i]))
                for i in range(self._data.motion_frames)
            ]
        )
        scale = size / stored
        ex.update(
            target=prepare(ex.pop("target_png")),
            identity=identity,
            motion=motion_transform(motion, self._data.grayscale_motion),
            target_landmarks=ex["target_landmarks"] * scale,
            identity_landmarks=ex["identity_landmarks"] * scale,
        )
        return ex

    def _epoch(self, epoch):
        files = tf.random.experimental.stateless_shuffle(
            tf.constant(self._files), seed=tf.stack([_epoch_seed(self.seed, epoch), self.process_index])
        )
        cycle = min(4, len(self._files))
        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset,
            cycle_length=cycle,
            block_length=1,
            num_parallel_calls=cycle,
            deterministic=True,
        )
        ds = ds.map(lambda s: self._select(s, epoch), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        shuffle_seed = _epoch_seed(self.seed, epoch) * 1009 + self.process_index
        return ds.shuffle(min(self.shuffle_buffer, self.epoch_length), seed=shuffle_seed)

    def _build(self, start_example: int):
        epoch, offset = divmod(start_example, self.epoch_length)
        ds = tf.data.Dataset.range(epoch, np.iinfo(np.int64).max).flat_map(self._epoch)
        ds = ds.skip(offset)
        ds = ds.map(self._decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(self.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        return ds.as_numpy_iterator()

    def get_state(self) -> dict:
        """The position as a small JSON-serialisable dict (identical on every process)."""
        return dict(
            version=STATE_VERSION,
            split=self.split,
            seed=self.seed,
            batch_size=self.batch_size,
            process_count=self.process_count,
            batches=self._batches,
        )

    def restore(self, state: dict) -> None:
        """Continues from a position returned by ``get_state``.

        Raises:
          ValueError: the state was made with another seed, split, batch size or process count.
        """
        mine = self.get_state()
        for key in ("version", "split", "seed", "batch_size", "process_count"):
            if state.get(key) != mine[key]:
                raise ValueError(
                    f"data state {key}={state.get(key)!r} does not match this pipeline's {mine[key]!r}"
                )
        self._batches = int(state["batches"])
        self._iter = self._build(self._batches * self.batch_size)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._iter)
        self._batches += 1
        source = "identity" if self._data.lip_box_source == "identity" else "target"
        landmarks = batch.pop(f"{source}_landmarks")
        batch.pop("target_landmarks" if source == "identity" else "identity_landmarks")
        size, margin = self._data.image_size, self._data.lip_box_margin
        batch["mouth_box"] = np.stack([mouth_box(lm, size, margin) for lm in landmarks])
        return batch


def make_train_iterator(
    config,
    *,
    split: str = "train",
    batch_size: int | None = None,
    seed: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    state: dict | None = None,
    shuffle_buffer: int = 256,
    dataset_dir: str | None = None,
) -> TrainIterator:
    """The training input pipeline of an experiment config.

    Args:
      config: experiment config; uses config.data, config.seed, config.train.batch_size.
      split: dataset split.
      batch_size: examples per batch on this process; default global batch / process count.
      seed: default config.seed.
      process_index, process_count: default jax.process_index() / jax.process_count().
      state: a position from ``TrainIterator.get_state`` to resume from.
      shuffle_buffer: examples in the shuffle buffer (each holds only its few encoded frames).
      dataset_dir: default config.data.dataset_dir.

    Returns:
      TrainIterator of numpy batches, ready for jax.make_array_from_process_local_data.
    """
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    if batch_size is None:
        if config.train.batch_size % process_count:
            raise ValueError(
                f"global batch {config.train.batch_size} is not divisible by {process_count} processes"
            )
        batch_size = config.train.batch_size // process_count
    return TrainIterator(
        dataset_dir or config.data.dataset_dir,
        config.data,
        split=split,
        batch_size=batch_size,
        seed=config.seed if seed is None else seed,
        process_index=process_index,
        process_count=process_count,
        shuffle_buffer=shuffle_buffer,
        state=state,
    )
