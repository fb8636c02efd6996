"""run_evaluate.py end to end on tiny real sets, and its bad-input errors."""

import json
import os

import pytest
from PIL import Image

from dheads_jax import imaging, media
from dheads_jax.data import reader
from tests import helpers

# Every test here runs the command in a subprocess, end to end.
pytestmark = pytest.mark.slow

NAMES = ("bbaf2n", "swwp2s")
FRAMES = 32


def write_mp4(path, frames, waveform):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = media.Mp4Writer(str(path), waveform)
    for f in frames:
        writer.add(f)
    return writer.close()


# The I3D and Inception networks run faster optimised than they compile slower.
ENV = helpers.command_env(JAX_DISABLE_MOST_OPTIMIZATIONS="0")


def run(*args):
    return helpers.run_command("run_evaluate.py", *args, env=ENV)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """Reference mp4s (real GRID faces, 64 px, 32 frames with sound) and generated copies
    that are 2 frames late and noisy, one of them upscaled to 128 px and in a subfolder."""
    d = tmp_path_factory.mktemp("tiny_set")
    for i, name in enumerate(NAMES):
        frames, waveform = helpers.grid_clip(name)
        frames, waveform = frames[:FRAMES], waveform[: FRAMES * media.SAMPLES_PER_FRAME]
        write_mp4(d / "reference" / f"{name}.mp4", frames, waveform)
        gen = helpers.noisy(helpers.shifted(frames, 2), 6, seed=i)
        if i == 1:
            gen = imaging.resize(gen, 128, "cubic")
        write_mp4(d / "generated" / ("sub" if i == 1 else "") / f"{name}.mp4", gen, waveform)
    return d


@pytest.fixture(scope="module")
def one_process_report(tiny_set, tmp_path_factory):
    """The command on the tiny set in one process: (its result, the report folder)."""
    out = tmp_path_factory.mktemp("one") / "report"
    proc = run(
        f"--generated={tiny_set / 'generated'}",
        f"--reference={tiny_set / 'reference'}",
        f"--output={out}",
        "--fid_frames_per_video=2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out


def test_end_to_end_writes_json_markdown_and_plots(one_process_report):
    proc, out = one_process_report
    assert "2 videos evaluated" in proc.stdout
    names = {"report.json", "report.md", "per_frame_metrics.png", "mouth_opening.png", "frame_grid.png"}
    assert names == set(os.listdir(out))
    for png in ("per_frame_metrics.png", "mouth_opening.png", "frame_grid.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and min(im.size) > 100
    report = json.loads((out / "report.json").read_text())
    assert report["num_videos"] == 2 and [v["name"] for v in report["videos"]] == ["bbaf2n", "sub/swwp2s"]
    for v in report["videos"]:
        assert v["frames_compared"] == FRAMES and v["reference_size"] == [64, 64]
        g = v["rows"]["generated"]
        assert g["mouth_offset"] == 2  # the generated copies are 2 frames late
        assert 25 < g["psnr"] < 40 and 0.5 < g["ssim"] < 1 and 0 < g["lpips"] < 0.2 and g["lmd"] > 0
        assert v["rows"]["ground_truth"].get("psnr") is None  # not meaningful against itself
    assert report["videos"][1]["generated_size"] == [128, 128]
    s = report["summary"]
    base, gen, gt = s["identity_repeated"], s["generated"], s["ground_truth"]
    assert base["fmse"] == 0 and base["fmse_clean"] == 0 and base["blinks_per_s"] == 0
    assert base["mouth_correlation"] == 0 and base["mouth_offset"] is None
    assert gen["mouth_confidence"] > 1.5 and gt["fmse_clean"] > 0 and gt["av_offset"] is not None
    assert report["settings"]["fvd"]["clip_length"] == 16 and report["settings"]["fvd"]["resolution"] == 224
    assert report["settings"]["fvd"]["clips"] == {"generated": 4, "ground_truth": 4, "identity_repeated": 4}
    assert gen["fvd"] > 0 and base["fvd"] > 0
    if "fid" in report["not_computed"]:  # without the eval extra (torch): said, not faked
        assert gen.get("fid") is None and "not computed" in report["not_computed"]["fid"]
    else:
        assert gen["fid"] > 0 and report["settings"]["fid"]["frames"]["ground_truth"] == 4
    md = (out / "report.md").read_text()
    assert "| generated |" in md and "| identity frame repeated |" in md and "16-frame clips" in md
    assert f"| {gen['psnr']:.2f} |" in md


def test_prepared_dataset_reference_matches_by_clip_id(tmp_path):
    data = helpers.prepared_samples(helpers.tiny_config())
    clips = reader.load_clips(data, "test")
    for c in clips:
        write_mp4(tmp_path / "gen" / f"{c.clip_id}.mp4", c.frames, c.waveform)
    out = tmp_path / "report"
    proc = run(
        f"--generated={tmp_path / 'gen'}", f"--reference={data}", f"--output={out}", "--nofvd", "--nofid"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "test" and report["num_videos"] == len(clips)
    assert set(report["not_computed"]) == {"fvd", "fid"}
    for v in report["videos"]:
        g = v["rows"]["generated"]  # an H.264 copy of the clip itself
        assert g["psnr"] > 25 and g["ssim"] > 0.85 and g["mouth_offset"] == 0
        assert v["audio_source"] == "reference"


def test_bad_inputs_give_one_line_errors(tiny_set, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    write_mp4(tmp_path / "other" / "unrelated.mp4", helpers.grid_clip("bbaf2n")[0][:4], None)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bbaf2n.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    ref = f"--reference={tiny_set / 'reference'}"
    out = f"--output={tmp_path / 'out'}"
    cases = [
        ((f"--generated={tmp_path / 'missing'}", ref, out), "no such folder"),
        ((f"--generated={tmp_path / 'empty'}", ref, out), "no video files"),
        ((f"--generated={tmp_path / 'other'}", ref, out), "no generated video"),
        ((f"--generated={tmp_path / 'broken'}", ref, out), "unreadable video"),
        ((f"--generated={tiny_set / 'generated'}", f"--reference={tmp_path / 'empty'}", out), "neither"),
    ]
    for args, message in cases:
        proc = run(*args)
        assert proc.returncode == 1, (args, proc.stderr[-2000:])
        lines = [line for line in proc.stderr.splitlines() if line.startswith("run_evaluate.py:")]
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr[-2000:])
    assert not os.path.exists(tmp_path / "out")


def assert_same_json(a, b, path="report"):
    """Equal structure; numbers equal to 1e-6 (absolute or relative)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            assert_same_json(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_json(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6), path
    else:
        assert a == b, path


def test_two_processes_give_the_one_process_report(tiny_set, one_process_report, tmp_path):
    common = [f"--generated={tiny_set / 'generated'}", f"--reference={tiny_set / 'reference'}"]
    _, one = one_process_report
    two = tmp_path / "two"
    codes, _, errs = helpers.run_two_processes(
        "run_evaluate.py",
        *common,
        f"--output={two}",
        "--fid_frames_per_video=2",
        env=helpers.command_env(devices=1, JAX_DISABLE_MOST_OPTIMIZATIONS="0"),
        output=two,
    )
    for code, err in zip(codes, errs, strict=True):
        assert code == 0, err[-3000:]
    # Each process evaluated one of the two videos.
    assert "evaluating (process 1/2): 1/1 videos" in errs[0]
    assert "evaluating (process 2/2): 1/1 videos" in errs[1]
    a = json.loads((one / "report.json").read_text())
    b = json.loads((two / "report.json").read_text())
    a["settings"].pop("seconds"), b["settings"].pop("seconds")
    assert_same_json(a, b)
    assert set(os.listdir(two)) == set(os.listdir(one))
