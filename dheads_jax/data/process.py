"""One clip from video file to a dataset example: decode, check, align, embed, encode.

Runs in worker processes; it imports no TensorFlow so that spawning a worker stays cheap.
"""

from __future__ import annotations

import dataclasses
import io
import pickle

import numpy as np
from PIL import Image

from dheads_jax import files, media
from dheads_jax.data import align, audio, faces
from dheads_jax.data.sources import ClipError, ClipSource
from dheads_jax.mouth import mouth_box


@dataclasses.dataclass(frozen=True)
class PrepareSettings:
    """Everything that decides the content of a prepared dataset (stored in its metadata).

    Attributes:
      image_size: side of the aligned square crops.
      audio_encoder: "mel" or "external".
      mel: parameters of the mel encoder.
      embeddings_dir: folder of ``.npy`` files for the external encoder.
      external_name: the name a training config gives the external encoder (e.g. "sda").
      external_dim: D of the external embeddings (read from the first file found).
      min_frames: shorter clips are skipped (m_x + 1 = 3 for the default config).
      max_av_mismatch: largest allowed difference of audio and video length, in seconds.
      smoothing_sigma: temporal smoothing of the alignment, in frames.
      lip_box_margin: margin of the stored mouth boxes (docs/method.md, section 3).
      image_format: "png" (lossless) or "jpeg" (quality 95) for the stored frames.
      detect_every: run the face detector on every this many frames (0, k, 2k, ...) and
        track the face box from the landmarks in between; the 68 landmarks are predicted on
        every frame. 1 detects on every frame.
    """

    image_size: int = 128
    audio_encoder: str = "mel"
    mel: audio.MelParams = audio.MelParams()
    embeddings_dir: str | None = None
    external_name: str = ""
    external_dim: int | None = None
    min_frames: int = 3
    max_av_mismatch: float = 0.2
    smoothing_sigma: float = 2.0
    lip_box_margin: int = 5
    image_format: str = "png"
    detect_every: int = 1

    @property
    def max_mismatch_frames(self) -> int:
        return int(np.floor(self.max_av_mismatch * media.FPS + 1e-6))


def load_waveform(source: ClipSource, video_start: float) -> np.ndarray:
    """16 kHz mono audio of a clip, sample 0 at the first video frame.

    Raises:
      media.MediaError: "no_audio" when neither the video nor a parallel file has sound,
        "corrupt" when the audio cannot be decoded.
    """
    if source.audio_path:
        return media.read_audio(source.audio_path)[0]
    try:
        waveform, start = media.read_audio(source.video_path)
    except media.MediaError as e:
        if e.reason == "no_audio":
            raise media.MediaError(
                "no_audio",
                "the video has no audio track and there is no parallel audio file",
                source.video_path,
            ) from e
        raise
    return media.shift_waveform(waveform, start - video_start)


def check_lengths(num_frames: int, num_samples: int, settings: PrepareSettings) -> None:
    """Raises ClipError for too short clips and audio/video length mismatches."""
    if num_frames < settings.min_frames:
        raise ClipError("too_short", f"{num_frames} frames, fewer than the {settings.min_frames} needed")
    video_s, audio_s = num_frames / media.FPS, num_samples / media.SAMPLE_RATE
    if abs(video_s - audio_s) > settings.max_av_mismatch + 1e-9:
        raise ClipError(
            "length_mismatch",
            f"audio lasts {audio_s:.2f} s, video {video_s:.2f} s (tolerance {settings.max_av_mismatch} s)",
        )


def detect_all(frames: np.ndarray, detector: faces.LandmarkDetector, detect_every: int = 1) -> np.ndarray:
    """[T, 68, 2] landmarks of every frame.

    Args:
      frames: uint8 [T, H, W, 3].
      detector: landmark detector.
      detect_every: k; the face detector runs on frames 0, k, 2k, ... and wherever the
        tracked face looks lost (``faces.FaceTrack``); 1 runs it on every frame.

    Raises:
      ClipError: "no_face" at the first frame where the detector runs and finds no face.
    """
    if detect_every < 1:
        raise ValueError(f"detect_every must be at least 1, got {detect_every}")
    out = []
    if detect_every == 1:
        for i, frame in enumerate(frames):
            lm = detector(frame)
            if lm is None:
                raise ClipError("no_face", f"no face found in frame {i} of {len(frames)}")
            out.append(lm)
        return np.stack(out)
    track = None
    for i, frame in enumerate(frames):
        image = np.ascontiguousarray(frame, np.uint8)
        lm = None
        if i % detect_every and track is not None:
            lm = detector.landmarks(image, track.rect(out[-1]))
            if track.lost(image, lm):
                lm = None
        if lm is None:
            rect = detector.detect(image)
            if rect is None:
                raise ClipError("no_face", f"no face found in frame {i} of {len(frames)}")
            lm = detector.landmarks(image, rect)
            track = faces.FaceTrack.start(image, rect, lm)
        out.append(lm)
    return np.stack(out)


def encode_frames(frames: np.ndarray, image_format: str) -> list[bytes]:
    """Each uint8 [S, S, 3] frame as PNG or JPEG bytes."""
    out = []
    for frame in frames:
        buf = io.BytesIO()
        if image_format == "png":
            Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
        else:
            Image.fromarray(frame).save(buf, format="JPEG", quality=95)
        out.append(buf.getvalue())
    return out


def embed_audio(source: ClipSource, waveform: np.ndarray, settings: PrepareSettings) -> np.ndarray:
    """[T, D] embeddings of the fitted waveform with the configured encoder."""
    num_frames = len(waveform) // media.SAMPLES_PER_FRAME
    if settings.audio_encoder == "mel":
        return audio.encode_waveform(waveform, settings.mel)
    path = audio.external_path(settings.embeddings_dir, source.relative_path)
    emb = audio.load_external(path, num_frames, settings.max_mismatch_frames)
    if settings.external_dim is not None and emb.shape[1] != settings.external_dim:
        raise ClipError(
            "bad_embeddings", f"{path} has D={emb.shape[1]}, the dataset has D={settings.external_dim}"
        )
    return emb


def process_clip(
    source: ClipSource, settings: PrepareSettings, detector: faces.LandmarkDetector | None = None
) -> dict:
    """A dataset example for one clip.

    Args:
      source: the clip.
      settings: preparation settings.
      detector: landmark detector; the process-wide one if None.

    Returns:
      dict with frames (list of T encoded images), landmarks float32 [T, 68, 2] and
      mouth_boxes int32 [T, 4] in crop pixels, audio_embeddings float32 [T, D], waveform
      float32 [T * 640] at 16 kHz, fps, sample_rate, num_frames, clip_id, speaker_id,
      clip_index.

    Raises:
      media.MediaError: for every kind of bad input, with a reason code: the files' own
        problems as MediaError, the clip's (no face, too short, ...) as its ClipError subclass.
    """
    frames, video_start = media.read_video(source.video_path)
    waveform = load_waveform(source, video_start)
    check_lengths(len(frames), len(waveform), settings)
    waveform = media.fit_waveform(waveform, len(frames))
    embeddings = embed_audio(source, waveform, settings)
    landmarks = detect_all(frames, detector or faces.default_detector(), settings.detect_every)
    aligned, crop_landmarks = align.align_frames(
        frames, landmarks, settings.image_size, settings.smoothing_sigma
    )
    boxes = np.stack([mouth_box(lm, settings.image_size, settings.lip_box_margin) for lm in crop_landmarks])
    return dict(
        frames=encode_frames(aligned, settings.image_format),
        landmarks=crop_landmarks,
        mouth_boxes=boxes,
        audio_embeddings=embeddings,
        waveform=waveform,
        fps=np.float32(media.FPS),
        sample_rate=np.int32(media.SAMPLE_RATE),
        num_frames=np.int32(len(frames)),
        clip_id=source.clip_id,
        speaker_id=source.speaker_id,
        clip_index=np.int64(source.index),
    )


def try_clip(source: ClipSource, settings: PrepareSettings) -> tuple[dict | None, str | None, str]:
    """The per-clip function of both preparation paths (local pool and Beam).

    Returns:
      (example, None, message) for a good clip, (None, reason, message) for a bad one: a
      MediaError (ClipError included) gives its reason; anything else unexpected "error"
      with the exception text, so that one odd file never stops a build.
    """
    try:
        example = process_clip(source, settings)
    except media.MediaError as e:  # ClipError included
        return None, e.reason, e.message
    except Exception as e:  # noqa: BLE001 - one odd file must not stop the build.
        return None, "error", f"{type(e).__name__}: {e}"
    return example, None, f"{len(example['frames'])} frames"


def spool_clip(task: tuple[ClipSource, PrepareSettings, str]) -> tuple[ClipSource, str | None, str]:
    """Worker entry point of both engines: processes a clip and pickles the example to ``path``.

    Args:
      task: (source, settings, path); the path may be remote (gs://...).

    Returns:
      (source, reason, message): reason None when the example was written.
    """
    source, settings, path = task
    example, reason, message = try_clip(source, settings)
    if example is None:
        return source, reason, message
    files.write_bytes_atomic(path, pickle.dumps(example, protocol=pickle.HIGHEST_PROTOCOL))
    return source, None, message
