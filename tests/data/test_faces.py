"""Sparse face detection (``PrepareSettings.detect_every``) against detection on every frame."""

import os

import av
import numpy as np
import pytest
import soundfile

from dheads_jax import media
from dheads_jax.data import align, faces, process, sources
from dheads_jax.mouth import mouth_box
from tests import helpers

CLIPS = ("bbaf2n", "swwp2s")
IMAGE_SIZE = 128
BOX_TOLERANCE = 2  # pixels of a 128 px crop


@pytest.fixture(scope="module")
def detector():
    return faces.LandmarkDetector()


@pytest.fixture(scope="module")
def clips(detector):
    """{name: (frames, landmarks of the old path: the detector called on every frame)}."""
    out = {}
    for name in CLIPS:
        frames, _ = media.read_video(os.path.join(helpers.GRID_DIR, name + ".mpg"))
        out[name] = frames, np.stack([detector(frame) for frame in frames])
    return out


def mouth_boxes(frames, landmarks):
    """Mouth boxes of the aligned crops, as process_clip computes them."""
    _, crop = align.align_frames(frames, landmarks, IMAGE_SIZE)
    return np.stack([mouth_box(lm, IMAGE_SIZE) for lm in crop])


def test_default_is_every_frame():
    assert process.PrepareSettings().detect_every == 1


def test_every_frame_equals_the_per_frame_path(clips, detector):
    frames, reference = clips[CLIPS[0]]
    landmarks = process.detect_all(frames, detector)
    assert landmarks.dtype == reference.dtype == np.float32
    np.testing.assert_array_equal(landmarks, reference)


@pytest.mark.parametrize("every", [5, 10])
def test_sparse_mouth_boxes_match_per_frame_detection(clips, detector, every):
    for frames, reference in clips.values():
        detector.detections = 0
        landmarks = process.detect_all(frames, detector, every)
        assert detector.detections == -(-len(frames) // every)  # no fallback needed on these clips
        # Detection frames get exactly the per-frame landmarks.
        np.testing.assert_array_equal(landmarks[::every], reference[::every])
        diff = np.abs(mouth_boxes(frames, landmarks) - mouth_boxes(frames, reference))
        assert diff.max() <= BOX_TOLERANCE, (every, diff.max())


def test_lost_face_falls_back_to_detection(clips, detector):
    frames, _ = clips[CLIPS[0]]
    frames = frames[:10].copy()
    frames[3:] = np.roll(frames[3:], 100, axis=2)  # the face jumps sideways on a tracked frame
    detector.detections = 0
    landmarks = process.detect_all(frames, detector, 5)
    assert detector.detections == 3  # frames 0 and 5, plus frame 3 where tracking lost the face
    np.testing.assert_array_equal(landmarks[3], detector(frames[3]))


def test_no_face_on_a_tracked_frame_raises(clips, detector):
    frames, _ = clips[CLIPS[0]]
    frames = frames[:10].copy()
    frames[3] = 128
    with pytest.raises(sources.ClipError, match="no face found in frame 3 of 10") as info:
        process.detect_all(frames, detector, 5)
    assert info.value.reason == "no_face"


def test_no_face_on_a_detection_frame_is_a_clip_error(clips, tmp_path):
    """Through process_clip: a clip whose face leaves on a detection frame is skipped as no_face."""
    frames, _ = clips[CLIPS[0]]
    frames = frames[:10].copy()
    frames[5:] = 128
    video, wav = str(tmp_path / "gone.mp4"), str(tmp_path / "gone.wav")
    with av.open(video, "w") as container:
        stream = container.add_stream("mpeg4", rate=media.FPS)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        container.mux(stream.encode())
    speech, _ = media.read_audio(os.path.join(helpers.GRID_DIR, CLIPS[0] + ".mpg"))
    soundfile.write(wav, speech[: len(frames) * media.SAMPLES_PER_FRAME], media.SAMPLE_RATE)
    source = sources.ClipSource("train", 0, "gone.mp4", video, wav, "s")
    for every in (1, 5):
        settings = process.PrepareSettings(
            image_size=32, mel=process.audio.MelParams(num_mels=8, subframes=1), detect_every=every
        )
        with pytest.raises(sources.ClipError, match="no face found in frame 5 of 10") as info:
            process.process_clip(source, settings)
        assert info.value.reason == "no_face"


def test_detect_every_must_be_positive(clips, detector):
    frames, _ = clips[CLIPS[0]]
    with pytest.raises(ValueError, match="at least 1"):
        process.detect_all(frames[:2], detector, 0)
