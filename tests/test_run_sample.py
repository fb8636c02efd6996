"""run_sample.py end to end: real mp4 with audio read back by another decoder; bad inputs."""

import json
import os
import subprocess
import sys

import av
import imageio_ffmpeg
import jax
import librosa
import numpy as np
import pytest
import soundfile
from PIL import Image

from dheads_jax import export, generate, media
from dheads_jax.models import factory
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = os.path.join(ROOT, "data", "samples", "grid")


def first_frame(path):
    with av.open(path) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    face = first_frame(os.path.join(GRID, "bbaf2n.mpg"))
    rgba = np.concatenate([face, np.full(face.shape[:2] + (1,), 255, np.uint8)], -1)
    Image.fromarray(rgba).save(d / "face.png")  # with an alpha channel
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(d / "blank.jpg")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    (d / "corrupt.wav").write_bytes(b"RIFF" + bytes(300))
    waveform, _ = media.read_audio(os.path.join(GRID, "swwp2s.mpg"))
    stereo = np.stack([waveform[:16000], waveform[:16000] * 0.5], -1)
    soundfile.write(d / "speech.wav", librosa.resample(stereo.T, orig_sr=16000, target_sr=44100).T, 44100)
    soundfile.write(d / "short.wav", np.zeros(160, np.float32), 16000)
    soundfile.write(d / "silence.flac", np.zeros(8000, np.float32), 16000)
    return d


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    config = helpers.tiny_config()
    model = factory.build_unet(config)
    params = helpers.perturbed(helpers.init_params(model, config))
    path = str(tmp_path_factory.mktemp("export") / "tiny")
    return export.write_export(path, params, config, weights="raw", provenance=dict(step=0))


def run(*args):
    return subprocess.run(
        [sys.executable, "run_sample.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def probe(path):
    """Frame count and audio duration as the ffmpeg binary of imageio-ffmpeg decodes them."""
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    out = subprocess.run([exe, "-i", path, "-f", "null", "-"], capture_output=True, text=True).stderr
    frames = int(out.rsplit("frame=", 1)[1].split()[0])
    decoded = subprocess.run(
        [exe, "-i", path, "-vn", "-f", "s16le", "-ac", "1", "-ar", "16000", "-"], capture_output=True
    ).stdout
    return frames, len(decoded) / 2 / 16000, out


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_every_bad_input_raises_a_named_error(tiny_export, inputs, tmp_path):
    meta = export.read_meta(tiny_export)
    encoder = export.encoder_spec(meta)
    cases = [
        (lambda: generate.load_identity(str(inputs / "blank.jpg"), 32), "no face found"),
        (lambda: generate.load_identity(str(inputs / "corrupt.png"), 32), "unreadable image or video"),
        (lambda: generate.load_identity(str(inputs / "missing.png"), 32), "no such file"),
        (lambda: generate.load_audio(str(inputs / "corrupt.wav"), encoder), "unreadable audio"),
        (lambda: generate.load_audio(str(inputs / "short.wav"), encoder), "shorter than one video frame"),
    ]
    for fn, message in cases:
        with pytest.raises(generate.InputError, match=message):
            fn()
    waveform, emb = generate.load_audio(str(inputs / "silence.flac"), encoder)
    assert emb.shape == (12, 8) and np.all(np.isfinite(emb)) and len(waveform) == 12 * 640

    with pytest.raises(media.MediaError, match="does not exist"):
        media.check_writable(str(tmp_path / "no" / "such" / "dir" / "out.mp4"))
    with pytest.raises(export.ExportError, match="not an export"):
        export.read_meta(str(tmp_path))
    broken = tmp_path / "broken"
    os.makedirs(broken)
    with open(os.path.join(tiny_export, export.META_NAME)) as f:
        stale = json.load(f)
    stale["format_version"] = 99
    (broken / export.META_NAME).write_text(json.dumps(stale))
    with pytest.raises(export.ExportError, match="format 99"):
        export.read_meta(str(broken))
    stale["format_version"] = export.FORMAT_VERSION
    (broken / export.META_NAME).write_text(json.dumps(stale))
    with pytest.raises(export.ExportError, match="params/ folder is missing"):
        export.read_meta(str(broken))


def test_export_round_trip_keeps_weights_and_records_provenance(tiny_export):
    config, params, meta = export.load_export(tiny_export)
    assert meta["weights"] == "raw" and meta["provenance"]["step"] == 0
    assert meta["input_channels"] == 12 and meta["audio_encoder"] == dict(
        name="mel", dim=8, params=dict(num_mels=8, subframes=1, fmin=0.0, fmax=8000.0)
    )
    ref = helpers.perturbed(
        helpers.init_params(factory.build_unet(helpers.tiny_config()), helpers.tiny_config())
    )
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)
