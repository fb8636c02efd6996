"""Folder layouts (flat, LRW, VoxCeleb) and file lists, on local and remote (ram://) trees."""

import os
import uuid

import numpy as np
import pytest
import tensorflow as tf

from dheads_jax import files, media
from dheads_jax.data import sources
from tests import helpers

GRID_CLIP = os.path.join(helpers.ROOT, "data", "samples", "grid", "bbaf2n.mpg")

LRW_TREE = [
    "ABOUT/test/ABOUT_00001.mp4",
    "ABOUT/train/ABOUT_00001.mp4",
    "ABOUT/train/ABOUT_00002.MP4",  # upper-case extension
    "ABOUT/train/ABOUT_00001.txt",  # LRW's metadata beside each clip: ignored
    "ABOUT/train/.ABOUT_00003.mp4",  # hidden: ignored
    "ABOUT/val/ABOUT_00001.mp4",
    "ABOUT/train/ABOVE_00001.mp4",  # word differs from its folder
    "ABOUT/dev/ABOUT_00009.mp4",  # no such LRW split
    "ÜBER ALL/val/ÜBER ALL_00007.mp4",  # odd word: non-ASCII and a space
    "stray.mp4",
]
VOXCELEB_TREE = [
    "dev/mp4/id00012/21Uxsk56VDQ/00001.mp4",
    "dev/mp4/id00012/_-x y.z/00002.mp4",  # YouTube ids have - and _; odd characters too
    "test/mp4/id00017/7t6lfzvVaTM/00003.mp4",
    "id00020/abc/00004.mp4",  # no archive folder: train
    "id00012/00001.mp4",  # no video folder
    "idABC/abc/00001.mp4",  # not a speaker id
]


def make_tree(base: str, paths: list[str]) -> None:
    for rel in paths:
        path = files.join(base, rel)
        files.makedirs(path.rsplit("/", 1)[0])
        files.write_bytes_atomic(path, b"")


def summary(found, skips):
    return (
        [(c.split, c.index, c.relative_path, c.speaker_id) for c in found],
        sorted((s.clip, s.split, s.reason) for s in skips),
    )


LRW_EXPECTED = (
    [
        ("test", 0, "ABOUT/test/ABOUT_00001.mp4", "unknown"),
        ("train", 0, "ABOUT/train/ABOUT_00001.mp4", "unknown"),
        ("train", 1, "ABOUT/train/ABOUT_00002.MP4", "unknown"),
        ("val", 0, "ABOUT/val/ABOUT_00001.mp4", "unknown"),
        ("val", 1, "ÜBER ALL/val/ÜBER ALL_00007.mp4", "unknown"),
    ],
    [
        ("ABOUT/dev/ABOUT_00009.mp4", "train", "bad_layout"),
        ("ABOUT/train/ABOVE_00001.mp4", "train", "bad_layout"),
        ("stray.mp4", "train", "bad_layout"),
    ],
)
VOXCELEB_EXPECTED = (
    [
        ("train", 0, "dev/mp4/id00012/21Uxsk56VDQ/00001.mp4", "id00012"),
        ("train", 1, "dev/mp4/id00012/_-x y.z/00002.mp4", "id00012"),
        ("train", 2, "id00020/abc/00004.mp4", "id00020"),
        ("test", 0, "test/mp4/id00017/7t6lfzvVaTM/00003.mp4", "id00017"),
    ],
    [
        ("id00012/00001.mp4", "train", "bad_layout"),
        ("idABC/abc/00001.mp4", "train", "bad_layout"),
    ],
)


@pytest.fixture(params=["local", "ram"])
def base(request, tmp_path):
    """A local folder, or a folder on TensorFlow's in-memory file system (like gs://)."""
    return str(tmp_path) if request.param == "local" else f"ram://layouts-{uuid.uuid4().hex}"


def test_lrw_layout_takes_the_split_from_the_folder(base):
    make_tree(base, LRW_TREE)
    found, skips = sources.collect_clips(sources.ClipSpec(base, layout="lrw"))
    assert summary(found, skips) == LRW_EXPECTED
    assert all(c.video_path == files.join(files.absolute(base), c.relative_path) for c in found)
    assert "WORD/{train,val,test}/WORD_NNNNN.mp4" in skips[0].message


def test_voxceleb_layout_takes_the_speaker_from_the_folder(base):
    make_tree(base, VOXCELEB_TREE)
    found, skips = sources.collect_clips(sources.ClipSpec(base, layout="voxceleb"))
    assert summary(found, skips) == VOXCELEB_EXPECTED


def test_a_file_list_names_the_split_and_the_layout_the_speaker(base):
    make_tree(base, VOXCELEB_TREE)
    listing = files.join(base, "file_list_val.txt")
    files.write_text_atomic(
        listing, "./test/mp4/id00017/7t6lfzvVaTM/00003.mp4\nid00012/00001.mp4\nid00099/x/00001.mp4"
    )
    found, skips = sources.collect_clips(sources.ClipSpec(base, file_lists=[listing], layout="voxceleb"))
    assert summary(found, skips) == (
        [("val", 0, "test/mp4/id00017/7t6lfzvVaTM/00003.mp4", "id00017")],
        [("id00012/00001.mp4", "val", "bad_layout"), ("id00099/x/00001.mp4", "val", "missing")],
    )
    # A speaker pattern wins over the layout's speaker.
    clips = sources.ClipSpec(base, file_lists=[listing], layout="voxceleb", speaker_pattern=r"id\d+/(\w{4})")
    found, _ = sources.collect_clips(clips)
    assert [c.speaker_id for c in found] == ["7t6l"]


def test_flat_layout_and_parallel_audio_on_any_file_system(base):
    make_tree(base, ["v/s1/a.mp4", "v/s1/b.mp4", "v/notes.md", "v/c.wav", "aud/s1/a.flac", "aud/s1/a.wav"])
    found, skips = sources.collect_clips(
        sources.ClipSpec(files.join(base, "v"), audio_dir=files.join(base, "aud"))
    )
    assert summary(found, skips) == (
        [("train", 0, "s1/a.mp4", "s1"), ("train", 1, "s1/b.mp4", "s1")],
        [("c.wav", "train", "not_video")],
    )
    assert found[0].audio_path == files.join(base, "aud", "s1", "a.wav")  # .wav before .flac
    assert found[1].audio_path is None


def test_unknown_layout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'lrs3'"):
        sources.collect_clips(sources.ClipSpec(str(tmp_path), layout="lrs3"))


def test_clips_decode_from_a_remote_path():
    remote = f"ram://clips-{uuid.uuid4().hex}/bbaf2n.mpg"
    tf.io.gfile.makedirs(remote.rsplit("/", 1)[0])
    tf.io.gfile.copy(GRID_CLIP, remote)
    local_frames, local_start = media.read_video(GRID_CLIP)
    frames, start = media.read_video(remote)
    assert start == local_start and frames.shape == (75, 288, 360, 3)
    np.testing.assert_array_equal(frames, local_frames)
    np.testing.assert_array_equal(media.read_audio(remote)[0], media.read_audio(GRID_CLIP)[0])
    with pytest.raises(media.MediaError, match="ram://nothing/here.mp4: FFmpeg cannot open"):
        media.read_video("ram://nothing/here.mp4")


def test_file_lists_official_format(tmp_path):
    (tmp_path / "s15").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / "s15" / name).write_bytes(b"")
    with_newline = tmp_path / "file_list_train.txt"
    with_newline.write_text("./s15/a.mp4\n./s15/b.mp4\n")
    without = tmp_path / "file_list_crema_test.txt"
    without.write_text("./s15/b.mp4\n\n./s15/missing.mp4")
    assert sources.read_file_list(str(without)) == ["s15/b.mp4", "s15/missing.mp4"]
    assert sources.split_of_file_list(str(without)) == ("test", str(without))
    assert sources.split_of_file_list("val=/x/list.txt") == ("val", "/x/list.txt")
    found, skips = sources.collect_clips(
        sources.ClipSpec(str(tmp_path), file_lists=[str(with_newline), str(without)])
    )
    assert [(c.split, c.index, c.relative_path, c.speaker_id) for c in found] == [
        ("train", 0, "s15/a.mp4", "s15"),
        ("train", 1, "s15/b.mp4", "s15"),
        ("test", 0, "s15/b.mp4", "s15"),
    ]
    assert [(s.clip, s.reason) for s in skips] == [("s15/missing.mp4", "missing")]
    assert sources.speaker_of("1015_DFA_ANG_XX.mp4", r"^(\d{4})_") == "1015"
