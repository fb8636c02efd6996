"""The example plan: which clips and frames an epoch serves, speaker balancing, shard groups."""

import collections

import numpy as np
import pytest

from dheads_jax.data import plan


def table(speakers_per_shard, frames=10):
    """A ClipTable with one clip per entry of each shard's speaker list, clip_index = row."""
    rows, k = [], 0
    for shard, speakers in enumerate(speakers_per_shard):
        for s in speakers:
            rows.append((shard, k, frames, s))
            k += 1
    return plan.ClipTable.from_rows(rows)


def draw(t, epoch=0, seed=3, process=0, group_shards=4, balance=0.0):
    return plan.epoch_plan(
        t, seed=seed, epoch=epoch, process=process, group_shards=group_shards, speaker_balance=balance
    )


def test_weights_follow_the_speaker_counts():
    speakers = np.array(["a"] * 9 + ["b"] * 4 + ["c"])
    np.testing.assert_allclose(plan.clip_weights(speakers, 0.0), np.full(14, 1 / 14))
    w = plan.clip_weights(speakers, 1.0)  # every speaker a third, whatever its clips
    for s in "abc":
        assert w[speakers == s].sum() == pytest.approx(1 / 3)
    w = plan.clip_weights(speakers, 0.5)  # a clip of a speaker with n clips: n ** -0.5
    assert w[0] / w[-1] == pytest.approx(1 / 3) and w[9] / w[-1] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="speaker_balance"):
        plan.clip_weights(speakers, -1.0)


def test_unbalanced_epochs_serve_every_clip_once_in_a_new_order():
    t = table([["a"] * 5, ["b"] * 5, ["c"] * 4])
    first, second = draw(t, epoch=0), draw(t, epoch=1)
    assert sorted(first.row) == list(range(14)) == sorted(second.row)
    assert not np.array_equal(first.row, second.row)
    again = draw(t, epoch=0)
    for name in ("row", "target", "identity", "group"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(draw(t, seed=4).row, first.row)


def test_frames_are_uniform_and_distinct_from_the_target():
    t = table([["a"] * 6], frames=3)
    targets, identities = [], []
    for epoch in range(200):
        p = draw(t, epoch=epoch)
        targets += list(p.target)
        identities += list(p.identity)
    pairs = collections.Counter(zip(targets, identities, strict=True))
    assert all(a != b for a, b in pairs) and len(pairs) == 6  # all 6 ordered pairs of 3 frames
    assert min(pairs.values()) > 150  # 1200 draws, 200 each expected


def test_groups_read_their_shards_only_and_cover_the_epoch():
    t = table([["a"] * 3, ["b"] * 3, ["c"] * 3, ["d"] * 3, ["e"] * 3])
    p = draw(t, group_shards=2)
    assert sorted(s for g in p.groups for s in g) == [0, 1, 2, 3, 4] and [len(g) for g in p.groups] == [
        2,
        2,
        1,
    ]
    assert list(p.group) == sorted(p.group)  # groups are served one after another
    for g, shards in enumerate(p.groups):
        rows = p.row[p.group == g]
        assert set(t.shard[rows]) <= set(shards) and len(rows) == 3 * len(shards)


def test_balanced_draws_follow_the_weights():
    t = table([["a"] * 16, ["b"] * 4], frames=5)  # 16 clips of a, 4 of b
    counts = collections.Counter()
    for epoch in range(300):
        counts.update(t.speaker[draw(t, epoch=epoch, balance=1.0).row])
    # balance 1: both speakers equally often (6000 draws); unbalanced a would get 80 %.
    assert abs(counts["a"] / 6000 - 0.5) < 0.03
    counts = collections.Counter()
    for epoch in range(300):
        counts.update(t.speaker[draw(t, epoch=epoch, balance=0.5).row])
    assert abs(counts["a"] / 6000 - 16 * 0.25 / (16 * 0.25 + 4 * 0.5)) < 0.03  # 2/3


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="group_shards"):
        draw(table([["a"]]), group_shards=0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        draw(table([["a"]], frames=1))


def test_example_indices_of_a_batch_equal_those_of_each_example():
    target, identity, n = np.array([0, 1, 5, 9]), np.array([7, 7, 3, 2]), np.array([10, 10, 10, 10])
    batch = plan.example_indices(target, identity, n, motion_frames=2, audio_context=2)
    for i in range(4):
        one = plan.example_indices(int(target[i]), int(identity[i]), 10, motion_frames=2, audio_context=2)
        for key in ("motion", "motion_filled", "audio"):
            np.testing.assert_array_equal(batch[key][i], one[key], err_msg=key)
