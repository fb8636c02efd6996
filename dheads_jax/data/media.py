"""Video and audio decoding with PyAV (FFmpeg in the wheel), resampled to 25 fps and 16 kHz mono.

Frame-count rule (SPEC section 5): one video frame and one audio embedding per 1/25 s, i.e. per
``SAMPLES_PER_FRAME = 640`` samples at 16 kHz. The video decides the number of frames T; the
waveform is then cut or zero-padded to exactly T * 640 samples (see ``fit_waveform``), so a
remainder of less than one frame of audio is dropped and a shortfall is filled with silence.
"""

from __future__ import annotations

import av
import librosa
import numpy as np

VIDEO_FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640

VIDEO_EXTENSIONS = (".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".wmv")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg")


class ClipError(Exception):
    """A clip that cannot be used; ``reason`` is a short code for the skip report."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _open(path: str):
    try:
        return av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise ClipError("corrupt", f"FFmpeg cannot open the file: {e}") from e


def _stream_start(stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def has_audio_stream(path: str) -> bool:
    """Whether FFmpeg finds an audio stream in ``path``."""
    with _open(path) as container:
        return len(container.streams.audio) > 0


def resample_times(times: np.ndarray, duration: float, fps: float = VIDEO_FPS) -> np.ndarray:
    """Index of the source frame shown at each output time j / fps (nearest in time).

    Args:
      times: [N] presentation times of the decoded frames in seconds, from 0, increasing.
      duration: length of the video in seconds (last time plus one source frame).
      fps: output frame rate.

    Returns:
      int64 [T] source indices, T = floor(duration * fps) (plus a 1e-3 frame tolerance).
    """
    num_out = int(np.floor(duration * fps + 1e-3))
    targets = np.arange(num_out) / fps
    right = np.clip(np.searchsorted(times, targets), 1, len(times) - 1) if len(times) > 1 else None
    if right is None:
        return np.zeros(num_out, np.int64)
    left = right - 1
    pick_right = np.abs(times[right] - targets) < np.abs(targets - times[left])
    return np.where(pick_right, right, left).astype(np.int64)


def read_video(path: str, fps: float = VIDEO_FPS) -> tuple[np.ndarray, float]:
    """Decodes every frame of the first video stream and resamples it to ``fps``.

    Args:
      path: any container FFmpeg reads.
      fps: output frame rate.

    Returns:
      (frames, start): frames uint8 [T, H, W, 3] RGB; start: time of the first frame in
      seconds on the container clock (to line audio up with it).

    Raises:
      ClipError: "not_video" without a video stream, "corrupt" when decoding fails.
    """
    with _open(path) as container:
        if not container.streams.video:
            raise ClipError("not_video", "no video stream")
        stream = container.streams.video[0]
        frames, times = [], []
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(frame.time)
        except (av.error.FFmpegError, ValueError) as e:
            raise ClipError("corrupt", f"video decoding failed after {len(frames)} frames: {e}") from e
        rate = float(stream.average_rate or stream.guessed_rate or fps)
    if not frames:
        raise ClipError("corrupt", "no video frame could be decoded")
    if any(t is None for t in times):
        times = [i / rate for i in range(len(frames))]
    times = np.asarray(times, np.float64)
    start = float(times[0])
    times = times - start
    index = resample_times(times, times[-1] + 1.0 / rate, fps)
    return np.stack(frames)[index], start


def _to_planar_float(frame) -> np.ndarray:
    """[C, n] float32 samples of one decoded audio frame, whatever its sample format."""
    x = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        x = x.reshape(-1, channels).T
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    elif x.dtype.kind == "u":
        x = (x.astype(np.float32) - 128.0) / 128.0
    return x.astype(np.float32)


def read_audio(path: str, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """Decodes the first audio stream, mixes it to mono and resamples it with librosa.

    Args:
      path: a video with sound or an audio file (.wav, .flac, .mp3, ...).
      sample_rate: output rate in Hz.

    Returns:
      (waveform, start): float32 [N] in [-1, 1]; start time of the stream in seconds.

    Raises:
      ClipError: "no_audio" without an audio stream, "corrupt" when decoding fails.
    """
    with _open(path) as container:
        if not container.streams.audio:
            raise ClipError("no_audio", "no audio stream")
        stream = container.streams.audio[0]
        start = _stream_start(stream)
        chunks, rate = [], None
        try:
            for frame in container.decode(stream):
                chunks.append(_to_planar_float(frame).mean(axis=0))
                rate = frame.sample_rate
        except (av.error.FFmpegError, ValueError) as e:
            raise ClipError("corrupt", f"audio decoding failed: {e}") from e
    if not chunks:
        raise ClipError("corrupt", "no audio sample could be decoded")
    mono = np.concatenate(chunks)
    if rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate)
    return np.clip(mono, -1.0, 1.0).astype(np.float32), start


def shift_waveform(waveform: np.ndarray, offset_seconds: float, sample_rate: int = SAMPLE_RATE):
    """Puts sample 0 at the first video frame: pads with silence (offset > 0) or cuts (< 0)."""
    shift = int(round(offset_seconds * sample_rate))
    if shift > 0:
        return np.concatenate([np.zeros(shift, waveform.dtype), waveform])
    return waveform[-shift:]


def fit_waveform(waveform: np.ndarray, num_frames: int) -> np.ndarray:
    """The waveform cut or zero-padded to exactly ``num_frames * 640`` samples.

    Args:
      waveform: float32 [N] at 16 kHz.
      num_frames: T, the number of 25 fps video frames.

    Returns:
      float32 [T * 640].
    """
    n = num_frames * SAMPLES_PER_FRAME
    out = np.zeros(n, np.float32)
    out[: min(n, len(waveform))] = waveform[:n]
    return out
