"""The input pipelines (tf.data over TFRecord shards, numpy over exported arrays): the index
rule of docs/method.md section 4, batches, processes, resuming, and their equality."""

import json

import numpy as np
import pytest

from configs import test as test_config
from dheads_jax import input_pipeline
from dheads_jax.data import arrays, reader
from dheads_jax.imaging import from_uint8, rgb_to_luma
from dheads_jax.mouth import mouth_box
from tests.helpers import GRID_SIZE


@pytest.fixture(scope="module")
def dataset_dir(grid_dataset):
    return grid_dataset


@pytest.fixture(scope="module")
def clips(dataset_dir):
    return {c.clip_index: c for c in reader.load_clips(dataset_dir)}


def make_config(dataset_dir, **data):
    config = test_config.get_config()
    config.data.dataset_dir = dataset_dir
    # The GRID test dataset: mel encoder, 8 bands x 1 sub-frame = the test config's audio_dim.
    config.data.audio_encoder = "mel"
    config.data.mel_bins, config.data.mel_subframes = 8, 1
    config.data.update(data)
    return config


def iterator(config, **kwargs):
    kwargs.setdefault("batch_size", 4)
    kwargs.setdefault("process_index", 0)
    kwargs.setdefault("process_count", 1)
    return input_pipeline.make_train_iterator(config, **kwargs)


@pytest.mark.parametrize(
    "target, identity, n, motion, filled, audio",
    [
        (0, 7, 10, [7, 7], [True, True], [0, 0, 0, 1, 2]),
        (1, 7, 10, [7, 0], [True, False], [0, 0, 1, 2, 3]),
        (2, 0, 10, [0, 1], [False, False], [0, 1, 2, 3, 4]),
        (5, 3, 10, [3, 4], [False, False], [3, 4, 5, 6, 7]),
        (9, 2, 10, [7, 8], [False, False], [7, 8, 9, 9, 9]),
        (8, 0, 10, [6, 7], [False, False], [6, 7, 8, 9, 9]),
    ],
)
def test_index_rule(target, identity, n, motion, filled, audio):
    idx = input_pipeline.example_indices(target, identity, n, motion_frames=2, audio_context=2)
    assert (idx["target"], idx["identity"]) == (target, identity)
    np.testing.assert_array_equal(idx["motion"], motion)
    np.testing.assert_array_equal(idx["motion_filled"], filled)
    np.testing.assert_array_equal(idx["audio"], audio)


def test_index_rule_other_window_sizes():
    idx = input_pipeline.example_indices(2, 0, 4, motion_frames=3, audio_context=3)
    np.testing.assert_array_equal(idx["motion"], [0, 0, 1])  # slot k-3 < 0 filled with the identity 0
    np.testing.assert_array_equal(idx["motion_filled"], [True, False, False])
    np.testing.assert_array_equal(idx["audio"], [0, 0, 1, 2, 3, 3, 3])


def test_batches_follow_the_rule_and_the_stored_clips(dataset_dir, clips):
    config = make_config(dataset_dir, image_size=GRID_SIZE)
    batches = [next(it) for it in [iterator(config)] for _ in range(6)]
    b = batches[0]
    m_x, m_y, size = 2, 2, GRID_SIZE
    assert {k: (v.shape, v.dtype.name) for k, v in b.items()} == {
        "target": ((4, size, size, 3), "float32"),
        "identity": ((4, size, size, 3), "float32"),
        "motion": ((4, m_x, size, size, 3), "float32"),
        "audio": ((4, 2 * m_y + 1, 8), "float32"),
        "mouth_box": ((4, 4), "int32"),
        "clip_index": ((4,), "int32"),
        "target_index": ((4,), "int32"),
        "identity_index": ((4,), "int32"),
        "motion_index": ((4, m_x), "int32"),
        "audio_index": ((4, 2 * m_y + 1), "int32"),
    }
    for b in batches:
        for i in range(4):
            clip = clips[int(b["clip_index"][i])]
            k, ident = int(b["target_index"][i]), int(b["identity_index"][i])
            assert k != ident and 0 <= k < 75 and 0 <= ident < 75
            idx = input_pipeline.example_indices(k, ident, 75, m_x, m_y)
            np.testing.assert_array_equal(b["motion_index"][i], idx["motion"])
            np.testing.assert_array_equal(b["audio_index"][i], idx["audio"])
            np.testing.assert_allclose(b["target"][i], from_uint8(clip.frames[k]), atol=1e-6)
            np.testing.assert_allclose(b["identity"][i], from_uint8(clip.frames[ident]), atol=1e-6)
            np.testing.assert_allclose(b["motion"][i], from_uint8(clip.frames[idx["motion"]]), atol=1e-6)
            np.testing.assert_array_equal(b["audio"][i], clip.audio[idx["audio"]])
            np.testing.assert_array_equal(b["mouth_box"][i], clip.mouth_boxes[k])  # margin 5 at 128 px


def test_one_epoch_covers_every_clip_once(dataset_dir):
    it = iterator(make_config(dataset_dir), batch_size=11)
    first, second = next(it), next(it)
    assert sorted(first["clip_index"]) == list(range(11)) == sorted(second["clip_index"])
    assert not np.array_equal(first["clip_index"], second["clip_index"])  # reshuffled per epoch
    assert not np.array_equal(
        first["target_index"][np.argsort(first["clip_index"])],
        second["target_index"][np.argsort(second["clip_index"])],
    )


def test_resized_grayscale_and_identity_boxes(dataset_dir, clips):
    config = make_config(dataset_dir, grayscale_motion=True, lip_box_source="identity")
    b = next(iterator(config))
    assert b["target"].shape == (4, 32, 32, 3) and b["motion"].shape == (4, 2, 32, 32, 1)
    assert b["target"].min() >= -1.0 and b["target"].max() <= 1.0
    color = next(iterator(make_config(dataset_dir)))
    np.testing.assert_array_equal(color["target_index"], b["target_index"])
    np.testing.assert_allclose(b["motion"], rgb_to_luma(color["motion"]), atol=1e-6)
    for i in range(4):
        clip = clips[int(b["clip_index"][i])]
        lm = clip.landmarks[int(b["identity_index"][i])] * 32 / GRID_SIZE
        np.testing.assert_array_equal(b["mouth_box"][i], mouth_box(lm, 32, 5))
        resized = clip.frames[int(b["target_index"][i])].reshape(32, 4, 32, 4, 3).mean((1, 3)) / 127.5 - 1
        assert np.abs(b["target"][i] - resized).mean() < 0.02


def test_two_processes_see_disjoint_clips(dataset_dir):
    config = make_config(dataset_dir)
    seen = []
    for p in range(2):
        it = iterator(config, process_index=p, process_count=2, batch_size=1)
        seen.append({int(next(it)["clip_index"][0]) for _ in range(it.epoch_length)})
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(11))
    with pytest.raises(ValueError, match="4 shards for 5 processes"):
        iterator(config, process_index=0, process_count=5)


def test_restored_pipeline_yields_the_same_next_batch(dataset_dir):
    config = make_config(dataset_dir)
    it = iterator(config, batch_size=3, seed=5)
    for _ in range(5):  # 15 examples: into the second epoch of 11
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    assert state == dict(
        version=2,
        split="train",
        seed=5,
        batch_size=3,
        process_count=1,
        group_shards=4,
        speaker_balance=0.0,
        batches=5,
    )
    expected = [next(it) for _ in range(3)]
    resumed = iterator(config, batch_size=3, seed=5, state=state)
    for want in expected:
        got = next(resumed)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    it.restore(state)
    np.testing.assert_array_equal(next(it)["target"], expected[0]["target"])
    other = next(iterator(config, batch_size=3, seed=6))
    assert not np.array_equal(
        other["target_index"], next(iterator(config, batch_size=3, seed=5))["target_index"]
    )
    with pytest.raises(ValueError, match="seed"):
        iterator(config, batch_size=3, seed=6, state=state)


def test_config_mismatch_is_refused(dataset_dir):
    with pytest.raises(ValueError, match="audio_dim=256"):
        iterator(make_config(dataset_dir, audio_dim=256))


@pytest.fixture(scope="module")
def grid_arrays(dataset_dir, tmp_path_factory):
    return arrays.export_arrays(dataset_dir, str(tmp_path_factory.mktemp("arrays") / "grid"))


def assert_same_batches(got, want):
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.parametrize("balance, processes", [(0.0, 1), (0.5, 2)])
def test_arrays_give_the_same_batches_as_the_tfrecords(dataset_dir, grid_arrays, balance, processes):
    config = make_config(dataset_dir, image_size=GRID_SIZE, speaker_balance=balance, shuffle_shards=2)
    for p in range(processes):
        kw = dict(batch_size=3, process_index=p, process_count=processes)
        records, numpy_only = iterator(config, **kw), iterator(config, dataset_dir=grid_arrays, **kw)
        assert type(records).__name__ == "RecordIterator" and isinstance(numpy_only, arrays.ArrayIterator)
        for _ in range(6):  # past the first epoch of each process (11 or about 6 clips)
            assert_same_batches(next(numpy_only), next(records))


def test_a_run_continues_on_the_other_pipeline(dataset_dir, grid_arrays):
    config = make_config(dataset_dir, image_size=GRID_SIZE, speaker_balance=1.0)
    records = iterator(config, batch_size=4)
    for _ in range(3):
        next(records)
    resumed = iterator(config, batch_size=4, dataset_dir=grid_arrays, state=records.get_state())
    for _ in range(3):
        assert_same_batches(next(resumed), next(records))
    with pytest.raises(ValueError, match="speaker_balance"):
        iterator(make_config(dataset_dir, image_size=GRID_SIZE), batch_size=4, state=records.get_state())


def test_arrays_hold_the_stored_clips_and_refuse_what_they_cannot_serve(dataset_dir, grid_arrays, clips):
    split = arrays.SplitArrays.load(grid_arrays, "train")
    assert len(split.clips) == 11 and split.frames.shape == (11 * 75, GRID_SIZE, GRID_SIZE, 3)
    for i, c in enumerate(split.clips):
        clip = split.clip(i)
        stored = clips[c["clip_index"]]
        assert clip["clip_id"] == stored.clip_id and c["speaker_id"] == stored.speaker_id
        np.testing.assert_array_equal(clip["frames"], stored.frames)
        np.testing.assert_array_equal(clip["audio"], stored.audio)
    with pytest.raises(ValueError, match="128 px frames but config.data.image_size is 32"):
        iterator(make_config(dataset_dir), dataset_dir=grid_arrays)
    with pytest.raises(FileExistsError, match="exists"):
        arrays.export_arrays(dataset_dir, grid_arrays)
    with pytest.raises(ValueError, match="no split 'test'"):
        arrays.SplitArrays.load(grid_arrays, "test")
