"""The TFDS builder: the GRID samples (counts, lengths, landmarks, mouth boxes) and bad inputs,
each in the skip report with its reason while the build goes on."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dheads_jax.data import audio, builder, process, reader, sources
from dheads_jax.mouth import mouth_box
from tests import helpers
from tests.bad_inputs import EXPECTED_REASONS, write_bad_inputs

GRID_SIZE = helpers.GRID_SIZE  # the grid_dataset fixture's resolution
GRID_MEL = audio.MelParams(num_mels=8, subframes=1)  # D = 8, the test config's audio_dim


@pytest.fixture(scope="module")
def grid_clips(grid_dataset):
    return reader.load_clips(grid_dataset)


def test_eleven_clips_of_75_frames_and_75_embeddings(grid_dataset, grid_clips):
    assert len(grid_clips) == 11
    assert sorted(c.clip_id for c in grid_clips) == sorted(
        os.path.splitext(f)[0] for f in os.listdir(helpers.GRID_DIR) if f.endswith(".mpg")
    )
    for clip in grid_clips:
        assert clip.frames.shape == (75, GRID_SIZE, GRID_SIZE, 3) and clip.frames.dtype == np.uint8
        assert clip.audio.shape == (75, 8)
        assert clip.waveform.shape == (75 * 640,)
        assert clip.landmarks.shape == (75, 68, 2)
        assert clip.fps == 25.0 and clip.sample_rate == 16000
        # The stored embeddings are the mel encoder applied to the stored waveform.
        np.testing.assert_allclose(clip.audio, audio.encode_waveform(clip.waveform, GRID_MEL), atol=1e-5)
        # The stored boxes follow the lip-loss rule on the stored landmarks.
        np.testing.assert_array_equal(
            clip.mouth_boxes, [mouth_box(lm, GRID_SIZE, 5) for lm in clip.landmarks]
        )
    report = json.load(open(os.path.join(grid_dataset, builder.REPORT_NAME)))
    assert report["written"] == {"train": 11} and report["skipped"] == []


def test_tfds_layout_and_metadata(grid_dataset):
    data_dir = reader.resolve_dataset_dir(grid_dataset)
    assert data_dir.endswith(os.path.join("talking_faces", "1.0.0"))
    b = tfds.builder_from_directory(data_dir)
    assert b.info.splits["train"].num_examples == 11
    assert len(b.info.splits["train"].filenames) == 4  # max(4, size / 256 MiB) shards
    meta = reader.dataset_metadata(b)
    assert meta["image_size"] == GRID_SIZE and meta["fps"] == 25 and meta["sample_rate"] == 16000
    assert meta["audio_encoder"] == dict(
        name="mel", dim=8, params=dict(num_mels=8, subframes=1, fmin=0.0, fmax=8000.0)
    )
    assert not [f for f in os.listdir(grid_dataset) if f.startswith(".spool")]


def test_mouth_box_lies_in_the_lower_face_and_is_tighter(grid_clips):
    for clip in grid_clips:
        face_lo, face_hi = clip.landmarks.min(1), clip.landmarks.max(1)  # [T, 2] (x, y)
        mouth_lo = clip.landmarks[:, 48:].min(1)
        middle = (face_lo[:, 1] + face_hi[:, 1]) / 2
        top, bottom, left, right = clip.mouth_boxes.T
        assert (mouth_lo[:, 1] > middle + 3).all(), clip.clip_id
        assert (top >= middle - 2).all() and (bottom <= face_hi[:, 1] + 6).all(), clip.clip_id
        assert (left > face_lo[:, 0]).all() and (right < face_hi[:, 0]).all(), clip.clip_id
        box_area = (bottom - top) * (right - left)
        face_area = (face_hi - face_lo).prod(1)
        assert (box_area < 0.3 * face_area).all(), clip.clip_id
        # Aligned: the face sits where the template puts it.
        assert np.abs(clip.landmarks[:, 30].mean(0) / GRID_SIZE - [0.50, 0.53]).max() < 0.03


def test_mouth_opens_and_closes(grid_clips):
    for clip in grid_clips:
        height = clip.mouth_boxes[:, 1] - clip.mouth_boxes[:, 0]
        assert height.max() - height.min() >= 4, clip.clip_id
    clip = next(c for c in grid_clips if c.clip_id == "swwp2s")
    gap = clip.landmarks[:, 66, 1] - clip.landmarks[:, 62, 1]  # inner lips
    # GRID timings (README): "white" 0.77-1.09 s (frames 19-27) is open; the lips close for the
    # "p" that starts at 1.22 s (frame 30).
    assert gap[22:27].max() > 4.0
    assert gap[28:35].min() < 1.0


def test_align_image_matches_the_clip_alignment(grid_clips):
    from dheads_jax import media
    from dheads_jax.data import align

    frames, _ = media.read_video(os.path.join(helpers.GRID_DIR, "swwp2s.mpg"))
    aligned, landmarks = align.align_face(frames[40], GRID_SIZE)
    assert aligned.shape == (GRID_SIZE, GRID_SIZE, 3) and aligned.dtype == np.uint8
    np.testing.assert_array_equal(align.align_image(frames[40], GRID_SIZE), aligned)
    # Rigid points land on the template, and the crop is close to the smoothed clip crop.
    rigid = landmarks[align.RIGID_POINTS] / GRID_SIZE
    assert np.abs(rigid - align.TEMPLATE[align.RIGID_POINTS]).mean() < 0.02
    clip = next(c for c in grid_clips if c.clip_id == "swwp2s")
    assert np.abs(aligned.astype(float) - clip.frames[40]).mean() < 12.0
    with pytest.raises(align.NoFaceError, match="no face"):
        align.align_image(np.full((200, 200, 3), 128, np.uint8), GRID_SIZE)


SETTINGS = process.PrepareSettings(image_size=32, mel=process.audio.MelParams(num_mels=8, subframes=1))


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    videos, audio_dir = root / "videos", root / "audio"
    write_bad_inputs(videos, audio_dir)
    out = root / "out"
    clips = sources.ClipSpec(str(videos), audio_dir=str(audio_dir))
    result = builder.prepare_dataset(clips, str(out), settings=SETTINGS)
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
    result = builder.prepare_dataset(sources.ClipSpec(str(videos)), str(tmp_path / "out"), settings=SETTINGS)
    assert result.dataset_dir is None and result.written == {}
    assert [(s.clip, s.reason) for s in result.skipped] == [("broken.mp4", "corrupt")]
    assert json.load(open(result.report_path))["num_skipped"] == 1


@pytest.mark.slow
def test_prepare_command_exit_codes(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"junk")
    run = helpers.run_command("data/prepare.py", f"--videos_dir={videos}", f"--output_dir={tmp_path / 'out'}")
    assert run.returncode == 1
    assert "skipped broken.mp4" in run.stderr and "corrupt" in run.stderr
