"""What the commands print: their own lines only at the default verbosity (what they load,
progress, what they wrote, errors), the libraries' lines too with --verbosity=1."""

import json
import logging as logging_std
import os
import re
import shutil

import av
import pytest
import soundfile

from dheads_jax import bundled, media, progress
from tests import helpers

# absl's prefix (I1204 21:30:12.650888 140045323254656 progress.py:85]) and the C++ one of
# TensorFlow and XLA (I0000 00:00:1796423290.630268    6788 port.cc:153]).
PREFIXED = re.compile(r"^[DIWEF]\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\]")
LIBRARY_TEXT = ("orbax", "xla_bridge", "tensorflow", "oneDNN", "absl::InitializeLog", "Generating splits")
RATE = r"[\d.]+ frames/s \| ETA \dm\d\ds"
PROGRESS = re.compile(rf"^sampling: \d+/25 frames \| (compiling|{RATE}) \| elapsed \dm\d\ds$")


def command_env():
    """One CPU device, and none of the variables the tests' own set-up exports that quiet
    the libraries: a command must quiet them itself."""
    env = helpers.command_env(devices=1)
    for name in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"):
        env.pop(name, None)
    return env


def output_lines(proc):
    return proc.stdout.splitlines() + proc.stderr.splitlines()


def assert_own_lines_only(lines):
    assert not [line for line in lines if PREFIXED.match(line)], "\n".join(lines)
    assert not [line for line in lines if any(t in line for t in LIBRARY_TEXT)], "\n".join(lines)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """1.0 s of GRID speech: 25 frames."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    waveform, _ = media.read_audio(os.path.join(helpers.GRID_DIR, "swwp2s.mpg"))
    soundfile.write(str(path), waveform[media.SAMPLE_RATE : 2 * media.SAMPLE_RATE], media.SAMPLE_RATE)
    return path


def sample(speech, out, *extra):
    photo = os.path.join(helpers.ROOT, "data", "samples", "photos", "astronaut.jpg")
    return helpers.run_command(
        "run_sample.py",
        f"--id_image={photo}",
        f"--audio={speech}",
        f"--output={out}",
        "--steps=2",  # the lines are under test, not the model: 2 of the bundled model's DDIM steps
        *extra,
        env=command_env(),
    )


@pytest.mark.slow
def test_run_sample_prints_its_own_few_lines_and_wrote_once(speech, tmp_path):
    out = tmp_path / "talking.mp4"
    proc = sample(speech, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = output_lines(proc)
    assert_own_lines_only(lines)
    assert len(lines) <= 6, "\n".join(lines)
    assert proc.stdout.splitlines() == [
        f"run_sample.py: no --export given; using the bundled default model ({bundled.DEFAULT_EXPORT})",
        f"wrote {out}",
    ]
    errs = proc.stderr.splitlines()
    # "compiling" until there is a rate (the first frame's line, if its compilation took over
    # 10 s), then the rate and ETA; the last line at 25/25.
    assert errs[0] == "sampling: 0/25 frames | compiling | elapsed 0m00s"
    assert errs[1:] and all(PROGRESS.match(line) for line in errs[1:]), "\n".join(errs)
    assert re.match(rf"^sampling: 25/25 frames \| {RATE} \|", errs[-1])
    assert sum("wrote" in line for line in lines) == 1
    # The video of the bundled model: 25 frames of 64 px with the speech's track.
    with av.open(str(out)) as container:
        assert container.streams.audio, "no audio track"
        assert sum(1 for _ in container.decode(video=0)) == media.SAMPLE_RATE // media.SAMPLES_PER_FRAME == 25
    assert json.load(open(os.path.join(bundled.DEFAULT_EXPORT, "export.json")))["image_size"] == 64


@pytest.mark.slow
def test_verbosity_1_brings_the_library_lines_back(speech, tiny_export, tmp_path):
    proc = sample(speech, tmp_path / "talking.mp4", "--verbosity=1", f"--export={tiny_export}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = output_lines(proc)
    assert any("orbax" in line and PREFIXED.match(line) for line in lines)  # checkpoint restoring
    # The command's own lines are there too, with absl's prefix back.
    assert any(PREFIXED.match(line) and "] sampling: 25/25 frames" in line for line in lines)


@pytest.mark.slow
def test_prepare_prints_a_line_per_clip_and_its_summary_only(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(os.path.join(helpers.GRID_DIR, "bbaf2n.mpg"), videos)
    proc = helpers.run_command(
        "data/prepare.py", f"--videos_dir={videos}", f"--output_dir={tmp_path / 'out'}", env=command_env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = output_lines(proc)  # no TFDS progress bars or prints, no TensorFlow C++ notices
    assert_own_lines_only(lines)
    assert lines[0] == "prepared bbaf2n.mpg: 75 frames"
    assert re.fullmatch(
        rf"wrote 1 clips \{{'train': 1\}} to {tmp_path / 'out'}/talking_faces/1.0.0; skipped 0; "
        rf"[\d.]+ s; report: {tmp_path / 'out'}/prepare_report.json",
        lines[1],
    )
    assert len(lines) == 2, "\n".join(lines)


def record(pathname, level=logging_std.INFO, msg="a line"):
    return logging_std.LogRecord("absl", level, pathname, 1, msg, (), None)


def test_the_filter_passes_the_projects_lines_and_the_libraries_warnings():
    keep = progress._OwnLinesOnly()
    site = "/venv/lib/python3.11/site-packages"
    assert keep.filter(record(progress.__file__))  # the package
    assert keep.filter(record(os.path.join(os.path.dirname(progress.__file__), "generate.py")))
    assert not keep.filter(record(f"{site}/orbax/checkpoint/checkpointer.py"))
    assert not keep.filter(record(f"{site}/jax/_src/xla_bridge.py"))
    assert keep.filter(record(f"{site}/jax/_src/xla_bridge.py", logging_std.WARNING, "CUDA failed"))
    deprecated = record(f"{site}/tensorflow_datasets/core/features/feature.py", logging_std.WARNING)
    deprecated.msg = "`TensorInfo.dtype` is deprecated."
    assert not keep.filter(deprecated)  # about the library's own internals
    assert keep.filter(record(f"{site}/orbax/checkpoint/checkpointer.py", logging_std.ERROR))
    if keep.main_dir:  # a virtualenv inside the command's folder is still a library
        assert not keep.filter(record(os.path.join(keep.main_dir, ".venv", "lib", "site-packages", "x.py")))
