"""run_sample.py end to end: real mp4s with audio read back by another decoder, bad inputs in
one line, manifests, sets on one and two processes, resuming, and an old export's frames."""

import json
import os
import subprocess
import sys
import time

import av
import imageio_ffmpeg
import numpy as np
import pytest

from tests import helpers

# Every test here runs the command in a subprocess.
pytestmark = pytest.mark.slow

SPLIT = "train[:5]"
ENV_1 = helpers.command_env(devices=1)


def run(*args):
    return helpers.run_command("run_sample.py", *args)


def probe(path):
    """Frame count and audio duration as the ffmpeg binary of imageio-ffmpeg decodes them."""
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    out = subprocess.run([exe, "-i", path, "-f", "null", "-"], capture_output=True, text=True).stderr
    frames = int(out.rsplit("frame=", 1)[1].split()[0])
    decoded = subprocess.run(
        [exe, "-i", path, "-vn", "-f", "s16le", "-ac", "1", "-ar", "16000", "-"], capture_output=True
    ).stdout
    return frames, len(decoded) / 2 / 16000, out


@pytest.fixture(scope="module")
def dataset():
    return helpers.prepared_samples(helpers.tiny_config())


def set_command(tiny_export, dataset, out, *extra):
    """(script, args) of sampling SPLIT of a prepared dataset into ``out``."""
    return (
        "run_sample.py",
        f"--export={tiny_export}",
        f"--dataset={dataset}",
        f"--split={SPLIT}",
        f"--output_dir={out}",
        "--steps=2",
        *extra,
    )


def frames(path):
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def written_by(stderr):
    """The outputs a process says it wrote."""
    names = []
    for line in stderr.splitlines():
        # At the default verbosity a command's own lines carry no absl prefix.
        if line.startswith("wrote "):
            names += [os.path.basename(p) for p in line[len("wrote ") :].strip().split(", ")]
    return names


def test_one_video_is_an_mp4_with_the_right_frames_and_audio(tiny_export, inputs, tmp_path):
    out = tmp_path / "talking.mp4"
    proc = run(
        f"--export={tiny_export}",
        f"--id_image={inputs / 'face.png'}",
        f"--audio={inputs / 'speech.wav'}",
        f"--output={out}",
        "--steps=3",
        "--upscale=64",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames, seconds, info = probe(str(out))
    assert frames == 25  # 1.0 s of audio at 25 fps (floor of seconds * 25)
    assert seconds == pytest.approx(1.0, abs=0.03)
    assert "h264" in info and "aac" in info and "64x64" in info
    assert "frames/s" in proc.stderr
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_a_manifest_skips_existing_outputs_and_reports_failures(tiny_export, inputs, tmp_path):
    (tmp_path / "done.mp4").write_bytes(b"already here")
    rows = [
        ("face.png", "silence.flac", tmp_path / "quiet.mp4"),
        ("face.png", "speech.wav", tmp_path / "done.mp4"),
        ("blank.jpg", "speech.wav", tmp_path / "noface.mp4"),
    ]
    manifest = inputs / "jobs.csv"
    manifest.write_text("id_image,audio,output\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    proc = run(f"--checkpoint={tiny_export}", f"--manifest={manifest}", "--steps=2")  # the old flag name
    assert proc.returncode == 1  # one row failed
    report = json.loads((inputs / "sample_report.json").read_text())
    status = {os.path.basename(r["output"]): r["status"] for r in report}
    assert status == {"quiet.mp4": "written", "done.mp4": "exists, skipped", "noface.mp4": "failed"}
    assert (tmp_path / "done.mp4").read_bytes() == b"already here"
    assert not (tmp_path / "noface.mp4").exists()
    frames, seconds, _ = probe(str(tmp_path / "quiet.mp4"))  # silence is fine: 0.5 s
    assert frames == 12 and seconds == pytest.approx(0.48, abs=0.03)


def test_a_bad_input_is_one_line_with_no_output(tiny_export, inputs, tmp_path):
    out = tmp_path / "x.mp4"
    proc = run(
        f"--export={tiny_export}",
        f"--id_image={inputs / 'blank.jpg'}",
        f"--audio={inputs / 'speech.wav'}",
        f"--output={out}",
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.strip().splitlines()[-1]
        == f"run_sample.py: {inputs / 'blank.jpg'}: no face found in the identity image"
    )
    assert "Traceback" not in proc.stderr and not out.exists()


def test_two_processes_make_the_same_videos_as_one_each_once(tiny_export, dataset, tmp_path):
    one = tmp_path / "one"
    proc = helpers.run_command(*set_command(tiny_export, dataset, one), env=ENV_1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report_one = json.loads((one / "sample_report.json").read_text())
    names = sorted(os.path.basename(r["output"]) for r in report_one)
    assert len(names) == 5 and all(r["status"] == "written" for r in report_one)

    two = tmp_path / "two"
    codes, _, errs = helpers.run_two_processes(*set_command(tiny_export, dataset, two), env=ENV_1, output=two)
    for code, err in zip(codes, errs, strict=True):
        assert code == 0, err[-3000:]
    mine = [written_by(e) for e in errs]
    assert sorted(mine[0] + mine[1]) == names and not set(mine[0]) & set(mine[1])
    assert abs(len(mine[0]) - len(mine[1])) <= 1  # equal lengths: balanced by count
    assert "process 1/2" in errs[0] and "process 2/2" in errs[1]
    report_two = json.loads((two / "sample_report.json").read_text())
    assert [(os.path.basename(r["output"]), r["status"]) for r in report_two] == [
        (n, "written") for n in names
    ]
    assert not [f for f in os.listdir(two) if ".tmp" in f]
    for n in names:
        np.testing.assert_array_equal(frames(str(one / n)), frames(str(two / n)), err_msg=n)


def test_an_interrupted_set_resumes_and_keeps_what_was_finished(tiny_export, dataset, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, *set_command(tiny_export, dataset, out)],
        cwd=helpers.ROOT,
        env=ENV_1,
        stderr=subprocess.PIPE,
        text=True,
    )
    finished = []
    for line in proc.stderr:
        finished += written_by(line)
        if len(finished) >= 2:
            proc.kill()
            break
    proc.wait(timeout=60)
    assert proc.returncode != 0 and len(finished) >= 2
    kept = {n: os.path.getmtime(out / n) for n in finished}
    time.sleep(0.01)
    rerun = helpers.run_command(*set_command(tiny_export, dataset, out), env=ENV_1)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = {
        os.path.basename(r["output"]): r["status"]
        for r in json.loads((out / "sample_report.json").read_text())
    }
    assert len(report) == 5
    assert all(report[n] == "exists, skipped" for n in finished)
    assert sum(s == "written" for s in report.values()) == 5 - len(finished)
    assert all(os.path.getmtime(out / n) == t for n, t in kept.items())
    assert not [f for f in os.listdir(out) if ".tmp" in f]
    assert all(len(frames(str(out / n))) == 75 for n in report)


def test_run_sample_on_an_old_export_matches_the_golden_frames(tmp_path):
    """export_v1 sampled by today's command: the first sampler's frames within XLA's rounding."""
    out = tmp_path / "frames.npy"
    clip = os.path.join(helpers.GRID_DIR, "bbaf2n.mpg")
    proc = helpers.run_command(
        "run_sample.py",
        f"--export={helpers.OLD_EXPORT}",
        f"--id_image={clip}",
        f"--audio={clip}",
        f"--output={out}",
        "--seed=3",
        env=ENV_1,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = np.load(out)
    assert frames.shape == (74, 32, 32, 3)
    helpers.assert_matches_golden("run_sample_export_v1", frames)
