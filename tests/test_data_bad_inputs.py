"""Bad inputs: each lands in the skip report with its reason and the build goes on."""

import json
import os
import re

import numpy as np
import pytest

from dheads_jax.data import builder, process, sources
from tests.bad_inputs import EXPECTED_REASONS, write_bad_inputs

SETTINGS = process.PrepareSettings(image_size=32, mel=process.audio.MelParams(num_mels=8, subframes=1))


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    videos, audio_dir = root / "videos", root / "audio"
    write_bad_inputs(videos, audio_dir)
    out = root / "out"
    result = builder.prepare_dataset(str(videos), str(out), audio_dir=str(audio_dir), settings=SETTINGS)
    return root, result


def test_every_bad_input_is_reported_with_its_reason(bad_folder):
    root, result = bad_folder
    reasons = {s.clip: s.reason for s in result.skipped}
    assert reasons == EXPECTED_REASONS
    messages = {s.clip: s.message for s in result.skipped}
    assert "frame 4 of 10" in messages["partface.mp4"]
    assert "frame 0 of 10" in messages["noface.mp4"]
    assert re.match(r"audio lasts 1\.0\d s, video 0\.40 s", messages["mismatch.mp4"])  # AAC pads a little
    # The build went on: the two good clips were written, the report lists every skip.
    assert result.written == {"train": 2}
    report = json.load(open(result.report_path))
    assert report["num_skipped"] == 8
    assert {s["clip"]: s["reason"] for s in report["skipped"]} == reasons
    from dheads_jax.data import reader

    clips = reader.load_clips(result.dataset_dir)
    assert [(c.clip_id, c.speaker_id, len(c.frames), len(c.audio)) for c in clips] == [
        ("s1/good", "s1", 10, 10),
        ("s1/good_inline", "s1", 10, 10),
    ]
    # Parallel .wav and in-container AAC give nearly the same embeddings.
    assert np.abs(clips[0].audio - clips[1].audio).mean() < 0.25


def test_nothing_written_gives_no_dataset_and_a_report(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    result = builder.prepare_dataset(str(videos), str(tmp_path / "out"), settings=SETTINGS)
    assert result.dataset_dir is None and result.written == {}
    assert [(s.clip, s.reason) for s in result.skipped] == [("broken.mp4", "corrupt")]
    assert json.load(open(result.report_path))["num_skipped"] == 1


@pytest.mark.slow
def test_prepare_command_exit_codes(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"junk")
    cmd = [sys.executable, os.path.join(root, "data", "prepare.py"), f"--videos_dir={videos}"]
    run = subprocess.run(cmd + [f"--output_dir={tmp_path / 'out'}"], capture_output=True, text=True)
    assert run.returncode == 1
    assert "skipped broken.mp4" in run.stderr and "corrupt" in run.stderr


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
    found, skips = sources.collect_clips(str(tmp_path), [str(with_newline), str(without)])
    assert [(c.split, c.index, c.relative_path, c.speaker_id) for c in found] == [
        ("train", 0, "s15/a.mp4", "s15"),
        ("train", 1, "s15/b.mp4", "s15"),
        ("test", 0, "s15/b.mp4", "s15"),
    ]
    assert [(s.clip, s.reason) for s in skips] == [("s15/missing.mp4", "missing")]
    assert sources.speaker_of("1015_DFA_ANG_XX.mp4", r"^(\d{4})_") == "1015"
