"""Bad inputs: each lands in the skip report with its reason and the build goes on."""

import json
import os
import re

import av
import numpy as np
import pytest
import soundfile

from dheads_jax import media
from dheads_jax.data import builder, process, sources

GRID_CLIP = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "samples", "grid", "bbaf2n.mpg"
)
SETTINGS = process.PrepareSettings(image_size=32, mel=process.audio.MelParams(num_mels=8, subframes=1))


def write_video(path, frames, waveform=None, sample_rate=media.SAMPLE_RATE):
    """Writes uint8 [T, H, W, 3] frames at 25 fps (MPEG-4 part 2) and optional AAC audio."""
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=media.FPS)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        astream = None
        if waveform is not None:
            astream = container.add_stream("aac", rate=sample_rate, layout="mono")
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        container.mux(stream.encode())
        if astream is not None:
            chunk = 1024
            for i in range(0, len(waveform), chunk):
                piece = waveform[None, i : i + chunk].astype(np.float32)
                aframe = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
                aframe.sample_rate, aframe.pts = sample_rate, i
                for packet in astream.encode(aframe):
                    container.mux(packet)
            container.mux(astream.encode())


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    videos, audio_dir = root / "videos", root / "audio"
    videos.mkdir()
    audio_dir.mkdir()
    grid, _ = media.read_video(GRID_CLIP)
    grid = grid[:10]  # 0.4 s
    speech, _ = media.read_audio(GRID_CLIP)
    speech = speech[media.SAMPLE_RATE : media.SAMPLE_RATE + 10 * media.SAMPLES_PER_FRAME]
    # Good: video without sound plus a parallel .wav, in a speaker folder.
    (videos / "s1").mkdir()
    (audio_dir / "s1").mkdir()
    write_video(str(videos / "s1" / "good.mp4"), grid)
    soundfile.write(str(audio_dir / "s1" / "good.wav"), speech, media.SAMPLE_RATE)
    # Good too: sound inside the container.
    write_video(str(videos / "s1" / "good_inline.mp4"), grid, speech)
    # No audio track and no parallel file.
    write_video(str(videos / "mute.mp4"), grid)
    # No face at all, and a face missing in some frames.
    write_video(str(videos / "noface.mp4"), np.full_like(grid, 90), speech)
    partly = grid.copy()
    partly[4:6] = 90
    write_video(str(videos / "partface.mp4"), partly, speech)
    # Shorter than m_x + 1 = 3 frames.
    write_video(str(videos / "short.mp4"), grid[:2], speech[:1280])
    # Audio 1.0 s for 0.4 s of video.
    write_video(str(videos / "mismatch.mp4"), grid, np.tile(speech, 3)[: media.SAMPLE_RATE])
    # Truncated MP4 (its index is at the end) and random bytes with a video extension.
    data = open(videos / "s1" / "good_inline.mp4", "rb").read()
    open(videos / "truncated.mp4", "wb").write(data[: len(data) // 2])
    open(videos / "garbage.avi", "wb").write(np.random.default_rng(0).bytes(5000))
    # Not a video.
    soundfile.write(str(videos / "speech.wav"), speech, media.SAMPLE_RATE)
    (videos / "notes.md").write_text("ignored documentation")
    out = root / "out"
    result = builder.prepare_dataset(str(videos), str(out), audio_dir=str(audio_dir), settings=SETTINGS)
    return root, result


def test_every_bad_input_is_reported_with_its_reason(bad_folder):
    root, result = bad_folder
    reasons = {s.clip: s.reason for s in result.skipped}
    assert reasons == {
        "mute.mp4": "no_audio",
        "noface.mp4": "no_face",
        "partface.mp4": "no_face",
        "short.mp4": "too_short",
        "mismatch.mp4": "length_mismatch",
        "truncated.mp4": "corrupt",
        "garbage.avi": "corrupt",
        "speech.wav": "not_video",
    }
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
