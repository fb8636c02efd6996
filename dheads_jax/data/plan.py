"""Which examples a training process sees, and in what order: a pure numpy function.

Both input pipelines (tf.data over TFRecord shards, ``input_pipeline.TrainIterator``, and
in-memory arrays, ``data.arrays.ArrayIterator``) serve the examples this module lists, so they
give the same batches; neither draws anything itself.

An epoch of one process covers its shards (shard i goes to process i % P): the shards are
shuffled, then taken ``group_shards`` at a time. A group's clips (all of them in memory
at once in the tf.data pipeline, so this is its shuffle window) give as many examples as
they hold clips: every clip once, in a random order, when ``speaker_balance`` is 0 (the
official one example per clip per epoch); otherwise clips drawn with replacement with
probability proportional to ``n_s ** -speaker_balance``, n_s the clips of the speaker in
the process's shards (1: every speaker equally often, whatever its number of clips). Each
example then draws its target and a distinct identity frame uniformly. Every draw is a
function of (seed, epoch, process, group), so a position (examples served) is enough to
resume.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from dheads_jax.mouth import mouth_box

# Distinguishes the streams of one (seed, epoch, process): shard order, each group's clips,
# and the frames of every example.
_SHARD_ORDER = 0
_GROUP = 1
_FRAMES = 2


@dataclasses.dataclass(frozen=True)
class ClipTable:
    """The clips of one process's shards, in reading order (shard by shard, as stored).

    Attributes:
      shard: int32 [N] position of the clip's shard in the process's shard list.
      clip_index: int64 [N] the clip's ``clip_index`` in its split.
      num_frames: int32 [N] frames of the clip (>= 2).
      speaker: [N] str speaker ids.
    """

    shard: np.ndarray
    clip_index: np.ndarray
    num_frames: np.ndarray
    speaker: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[tuple[int, int, int, str]]) -> ClipTable:
        """From (shard, clip_index, num_frames, speaker) rows in reading order."""
        shard, clip, frames, speaker = zip(*rows, strict=True) if rows else ((), (), (), ())
        return cls(
            shard=np.asarray(shard, np.int32),
            clip_index=np.asarray(clip, np.int64),
            num_frames=np.asarray(frames, np.int32),
            speaker=np.asarray(speaker, str),
        )

    def __len__(self) -> int:
        return len(self.clip_index)

    @property
    def num_shards(self) -> int:
        return int(self.shard.max()) + 1 if len(self) else 0


def clip_weights(speaker: np.ndarray, balance: float) -> np.ndarray:
    """float64 [N] sampling probabilities, proportional to (clips of the speaker) ** -balance."""
    if balance < 0:
        raise ValueError(f"speaker_balance must be >= 0, got {balance}")
    _, inverse, counts = np.unique(speaker, return_inverse=True, return_counts=True)
    w = counts[inverse].astype(np.float64) ** -float(balance)
    return w / w.sum()


def _rng(seed: int, epoch: int, process: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, process, *stream])


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    """The examples of one epoch of one process, in serving order.

    Attributes:
      groups: per group, the positions in the process's shard list it reads (ascending).
      group: int32 [E] the group each example comes from (non-decreasing).
      row: int64 [E] the example's clip, as a row of the ClipTable.
      target, identity: int32 [E] frame indices, distinct.
    """

    groups: tuple[tuple[int, ...], ...]
    group: np.ndarray
    row: np.ndarray
    target: np.ndarray
    identity: np.ndarray

    def __len__(self) -> int:
        return len(self.row)


def epoch_plan(
    table: ClipTable, *, seed: int, epoch: int, process: int, group_shards: int, speaker_balance: float
) -> EpochPlan:
    """The examples of ``epoch`` (see the module docstring); pure in its arguments."""
    if group_shards < 1:
        raise ValueError(f"group_shards must be >= 1, got {group_shards}")
    if len(table) and table.num_frames.min() < 2:
        raise ValueError("every clip needs at least 2 frames (a target and a distinct identity)")
    order = _rng(seed, epoch, process, _SHARD_ORDER).permutation(table.num_shards)
    weights = clip_weights(table.speaker, speaker_balance) if speaker_balance else None
    groups, group_ids, rows = [], [], []
    for g, start in enumerate(range(0, len(order), group_shards)):
        shards = tuple(sorted(int(s) for s in order[start : start + group_shards]))
        members = np.flatnonzero(np.isin(table.shard, shards))
        rng = _rng(seed, epoch, process, _GROUP, g)
        if weights is None:
            chosen = rng.permutation(members)
        else:
            p = weights[members] / weights[members].sum()
            chosen = rng.choice(members, size=len(members), replace=True, p=p)
        groups.append(shards)
        group_ids.append(np.full(len(chosen), g, np.int32))
        rows.append(chosen)
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    group = np.concatenate(group_ids) if group_ids else np.zeros(0, np.int32)
    target, identity = _draw_frames(_rng(seed, epoch, process, _FRAMES), table.num_frames[row])
    return EpochPlan(tuple(groups), group, row.astype(np.int64), target, identity)


def _draw_frames(rng: np.random.Generator, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uniform target in [0, n) and identity in [0, n) minus the target, per example."""
    n = n.astype(np.int64)
    target = np.floor(rng.random(len(n)) * n).astype(np.int64)
    other = np.floor(rng.random(len(n)) * (n - 1)).astype(np.int64)
    identity = other + (other >= target)
    return target.astype(np.int32), identity.astype(np.int32)


def example_indices(target, identity, num_frames, motion_frames: int, audio_context: int, xp=np) -> dict:
    """The frame indices of one training example (docs/method.md, section 4); pure.

    Works on numpy values (``xp=np``, scalars or [E] arrays) and inside tf.data
    (``xp=tf.experimental.numpy``, scalars).

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
        motion: [..., m_x] frames k - m_x .. k - 1, oldest first, with the identity index in
          the slots before the clip start (target 0 -> [id, id]; target 1 -> [id, 0]);
        motion_filled: [..., m_x] bool, True where the identity frame fills the slot;
        audio: [..., 2 m_y + 1] frames k - m_y .. k + m_y clamped to [0, n - 1].
    """
    target_ = xp.asarray(target)[..., None]
    identity_ = xp.asarray(identity)[..., None]
    n = xp.asarray(num_frames)[..., None]
    raw = target_ + xp.arange(-motion_frames, 0, dtype=xp.int32)
    filled = raw < 0
    audio = xp.clip(target_ + xp.arange(-audio_context, audio_context + 1, dtype=xp.int32), 0, n - 1)
    return dict(
        target=target,
        identity=identity,
        motion=xp.where(filled, identity_, raw),
        motion_filled=filled,
        audio=audio,
    )


STATE_VERSION = 2
# What a position must agree on to be resumed: the same examples in the same order.
STATE_KEYS = ("version", "split", "seed", "batch_size", "process_count", "group_shards", "speaker_balance")


class PlannedIterator(abc.ABC):
    """Infinite iterator of numpy training batches that follows ``epoch_plan``, with a
    saveable position; subclasses say how an example's arrays are made (``_examples``).

    Batch (B = local batch size, S = config.data.image_size):
      target: float32 [B, S, S, 3] in [-1, 1].
      identity: float32 [B, S, S, 3].
      motion: float32 [B, m_x, S, S, mc], oldest first; mc = 1 if grayscale_motion else 3.
      audio: float32 [B, 2 m_y + 1, D].
      mouth_box: int32 [B, 4] (top, bottom, left, right), half-open, at resolution S.
      clip_index, target_index, identity_index: int32 [B].
      motion_index: int32 [B, m_x] (identity index where filled); audio_index: int32 [B, 2 m_y + 1].

    The position (``get_state``) is the number of batches served, the same on every process;
    it does not depend on the subclass, so a run may continue on the other pipeline.
    """

    def __init__(
        self,
        table: ClipTable,
        data_config,
        *,
        split: str,
        batch_size: int,
        seed: int,
        process_index: int,
        process_count: int,
        state: dict | None = None,
    ):
        if len(table) < 1:
            raise ValueError(f"process {process_index} has no example in split {split!r}")
        self.table = table
        self._data = data_config
        self.split = split
        self.batch_size = batch_size
        self.seed = seed
        self.process_index = process_index
        self.process_count = process_count
        self.group_shards = int(data_config.shuffle_shards)
        self.speaker_balance = float(data_config.speaker_balance)
        self.epoch_length = len(table)
        self._plans: dict[int, EpochPlan] = {}
        self._batches = 0
        self._iter = None
        self.restore(state or self.get_state())

    def plan(self, epoch: int) -> EpochPlan:
        """The epoch's plan (the last two are kept)."""
        if epoch not in self._plans:
            self._plans = {e: p for e, p in self._plans.items() if e == epoch - 1}
            self._plans[epoch] = epoch_plan(
                self.table,
                seed=self.seed,
                epoch=epoch,
                process=self.process_index,
                group_shards=self.group_shards,
                speaker_balance=self.speaker_balance,
            )
        return self._plans[epoch]

    def epochs_from(self, start: int):
        """Yields (plan, first) from position ``start`` (examples served) on: the plan of
        every epoch in turn and the first of its examples still to serve."""
        epoch, first = divmod(start, self.epoch_length)
        while True:
            yield self.plan(epoch), first
            epoch, first = epoch + 1, 0

    @abc.abstractmethod
    def _batches_from(self, start: int):
        """Yields the batches from position ``start`` (examples served) on, with
        target_landmarks and identity_landmarks in place of the mouth box."""

    def get_state(self) -> dict:
        """The position as a small JSON-serialisable dict (identical on every process)."""
        return dict(
            version=STATE_VERSION,
            split=self.split,
            seed=self.seed,
            batch_size=self.batch_size,
            process_count=self.process_count,
            group_shards=self.group_shards,
            speaker_balance=self.speaker_balance,
            batches=self._batches,
        )

    def restore(self, state: dict) -> None:
        """Continues from a position returned by ``get_state``.

        Raises:
          ValueError: the state was made with another seed, split, batch size, process count
            or sampling (group_shards, speaker_balance), or by an older pipeline version.
        """
        mine = self.get_state()
        for key in STATE_KEYS:
            if state.get(key) != mine[key]:
                raise ValueError(
                    f"data state {key}={state.get(key)!r} does not match this pipeline's {mine[key]!r}"
                )
        self._batches = int(state["batches"])
        self._iter = self._batches_from(self._batches * self.batch_size)

    def close(self) -> None:
        """Ends the iterator's reading (a tf.data generator left open warns at exit)."""
        self._iter = None

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._iter)
        self._batches += 1
        return finish_batch(batch, self._data)


def finish_batch(batch: dict, data_config) -> dict:
    """Replaces the target and identity landmarks of a batch by the lip-loss boxes of one of them."""
    source = "identity" if data_config.lip_box_source == "identity" else "target"
    landmarks = batch.pop(f"{source}_landmarks")
    batch.pop("target_landmarks" if source == "identity" else "identity_landmarks")
    size, margin = data_config.image_size, data_config.lip_box_margin
    batch["mouth_box"] = np.stack([mouth_box(lm, size, margin) for lm in landmarks]).astype(np.int32)
    return batch
