"""Reading and writing video and audio: the project's one media module.

Reading (PyAV, i.e. the FFmpeg in its wheel): ``read_video`` resamples any container to
``FPS`` = 25 frames per second, ``read_audio`` mixes to mono and resamples to
``SAMPLE_RATE`` = 16 kHz, ``read_identity_image`` takes an image or a video's first frame.

Frame-count rule (docs/method.md, section 5): one video frame and one audio embedding per 1/25 s, i.e.
per ``SAMPLES_PER_FRAME`` = 640 samples at 16 kHz. The video decides the number of frames T;
the waveform is then cut or zero-padded to exactly T * 640 samples (see ``fit_waveform``), so
a remainder of less than one frame of audio is dropped and a shortfall is filled with silence.

Writing: H.264/AAC mp4 (streamed frame by frame), PNG frames or one .npy (``make_writer``).
Every writer produces its output under a temporary name and renames it only when it is
complete, so an interrupted or failed run leaves no file that looks finished.

Every problem with a file raises ``MediaError``, whose ``reason`` is a short code (the data
preparation's skip report records it) and whose text names the file.
"""

from __future__ import annotations

import abc
import glob
import io
import os
import shutil
from fractions import Fraction

import numpy as np

from dheads_jax import files, imaging


def _av():
    """PyAV, imported on first use: this module's constants and error types are needed where
    no decoder is installed (training from arrays on an accelerator image)."""
    import av

    return av


FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640

VIDEO_EXTENSIONS = (".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".wmv")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg")


class MediaError(ValueError):
    """A file that cannot be used.

    ``str(error)`` is one line, "PATH: message" when the file is known, else the message.

    Attributes:
      reason: short code: "missing", "corrupt", "not_video", "not_image", "no_audio",
        "unreadable", "not_writable", "empty", "unknown_type" (subclasses add their own).
      message: what is wrong, without the file name (the skip report stores it as is).
      path: the file, or None.
    """

    def __init__(self, reason: str, message: str, path: str | None = None):
        super().__init__(f"{path}: {message}" if path else message)
        self.reason = reason
        self.message = message
        self.path = path

    def __reduce__(self):
        return type(self), (self.reason, self.message, self.path)


# ----------------------------------------------------------------------------- reading


def _open(path: str):
    try:
        if files.is_remote(path):  # gs:// and the like: read whole through TensorFlow's gfile
            return _av().open(io.BytesIO(files.read_bytes(path)))
        return _av().open(files.local(path))
    except (_av().error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise MediaError("corrupt", f"FFmpeg cannot open the file: {e}", path) from e


def _stream_start(stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def has_audio_stream(path: str) -> bool:
    """Whether FFmpeg finds an audio stream in ``path``."""
    with _open(path) as container:
        return len(container.streams.audio) > 0


def resample_times(times: np.ndarray, duration: float, fps: float = FPS) -> np.ndarray:
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


def read_video(path: str, fps: float = FPS) -> tuple[np.ndarray, float]:
    """Decodes every frame of the first video stream and resamples it to ``fps``.

    Args:
      path: any container FFmpeg reads.
      fps: output frame rate.

    Returns:
      (frames, start): frames uint8 [T, H, W, 3] RGB; start: time of the first frame in
      seconds on the container clock (to line audio up with it).

    Raises:
      MediaError: "not_video" without a video stream, "corrupt" when decoding fails.
    """
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError("not_video", "no video stream", path)
        stream = container.streams.video[0]
        frames, times = [], []
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(frame.time)
        except (_av().error.FFmpegError, ValueError) as e:
            raise MediaError("corrupt", f"video decoding failed after {len(frames)} frames: {e}", path) from e
        rate = float(stream.average_rate or stream.guessed_rate or fps)
    if not frames:
        raise MediaError("corrupt", "no video frame could be decoded", path)
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
      MediaError: "no_audio" without an audio stream, "corrupt" when decoding fails.
    """
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError("no_audio", "no audio stream", path)
        stream = container.streams.audio[0]
        start = _stream_start(stream)
        chunks, rate = [], None
        try:
            for frame in container.decode(stream):
                chunks.append(_to_planar_float(frame).mean(axis=0))
                rate = frame.sample_rate
        except (_av().error.FFmpegError, ValueError) as e:
            raise MediaError("corrupt", f"audio decoding failed: {e}", path) from e
    if not chunks:
        raise MediaError("corrupt", "no audio sample could be decoded", path)
    mono = np.concatenate(chunks)
    if rate != sample_rate:
        import librosa  # only when resampling; keeps this module light to import

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


def read_identity_image(path: str) -> np.ndarray:
    """An RGB uint8 [H, W, 3] from an image (any PIL format, alpha, grayscale) or a video's first frame.

    Transparent pixels are composited onto white.

    Raises:
      MediaError: "missing", "not_image" (neither an image nor a video), "unreadable",
        "corrupt" (a video without a decodable frame).
    """
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise MediaError("missing", "no such file", path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError):
        pass
    try:
        with _av().open(path) as container:
            if not container.streams.video:
                raise MediaError("not_image", "neither an image nor a video", path)
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except _av().error.FFmpegError as e:
        raise MediaError("unreadable", f"unreadable image or video ({e})", path) from e
    raise MediaError("corrupt", "the video has no decodable frame", path)


# ----------------------------------------------------------------------------- writing


def temp_name(path: str) -> str:
    """A sibling temporary name with the same extension (so containers are inferred)."""
    root, ext = os.path.splitext(path)
    return f"{root}.tmp-{os.getpid()}{ext}"


def remove_temporaries(path: str) -> None:
    """Deletes what an interrupted writer left of ``path``: its ``temp_name`` files or folders."""
    root, ext = os.path.splitext(path)
    for tmp in glob.glob(glob.escape(root) + ".tmp-*" + glob.escape(ext)):
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.remove(tmp)


def check_writable(path: str) -> None:
    """Raises MediaError("not_writable") when ``path`` cannot be created (missing or read-only folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MediaError("not_writable", f"output folder {folder} does not exist", path)
    if not os.access(folder, os.W_OK):
        raise MediaError("not_writable", f"output folder {folder} is not writable", path)


def _upscale(frame: np.ndarray, size: int | None) -> np.ndarray:
    """The frame resized to ``size`` x ``size`` (bicubic, ``imaging.resize``); as it is without a size."""
    if not size:
        return frame
    return imaging.resize(frame, size, "cubic")


class _Writer(abc.ABC):
    """A writer is a context manager: it closes (renames the result into place) when the block
    ends normally and aborts (deletes what it wrote) when it raises, so nothing half-written is
    ever left under the output's name. ``path`` is the output either way."""

    path: str

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @abc.abstractmethod
    def close(self) -> str:
        """Finishes the output and moves it under its name; returns the path."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Deletes what was written."""


class Mp4Writer(_Writer):
    """Streams uint8 RGB frames into an H.264 (yuv420p) mp4 with AAC audio muxed in.

    Audio (16 kHz mono float in [-1, 1]) is trimmed or zero-padded to exactly
    frames / 25 s and interleaved as the frames arrive.
    """

    def __init__(self, path: str, waveform: np.ndarray | None, upscale: int | None = None, crf: int = 18):
        check_writable(path)
        self.path, self.tmp, self.upscale, self.crf = path, temp_name(path), upscale, crf
        self.waveform = None if waveform is None else np.asarray(waveform, np.float32)
        self.container = _av().open(self.tmp, mode="w", format="mp4")
        self.video = None
        self.audio = None
        self.count = 0
        self._audio_sent = 0

    def _open_streams(self, frame: np.ndarray) -> None:
        self.video = self.container.add_stream("libx264", rate=FPS)
        self.video.width, self.video.height = frame.shape[1], frame.shape[0]
        self.video.pix_fmt = "yuv420p"
        # x264's macroblock-tree lookahead made the same frames encode differently from run
        # to run (seen on 32 and 64 px videos: 2-5 different decodes in 6 encodes), so two
        # runs that sample the same frames could not be compared through their mp4s. Off,
        # every encode of the same frames is the same.
        options = {"crf": str(self.crf), "preset": "medium", "x264-params": "mbtree=0"}
        self.video.options = options
        if self.waveform is not None:
            self.audio = self.container.add_stream("aac", rate=SAMPLE_RATE)
            self.audio.layout = "mono"
            self.fifo = _av().AudioFifo()

    def add(self, frame: np.ndarray) -> None:
        """Appends one uint8 [H, W, 3] frame (H, W even)."""
        frame = _upscale(np.ascontiguousarray(frame, np.uint8), self.upscale)
        if self.video is None:
            self._open_streams(frame)
        vf = _av().VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts = self.count
        vf.time_base = Fraction(1, FPS)
        for packet in self.video.encode(vf):
            self.container.mux(packet)
        self.count += 1
        if self.audio is not None:
            self._push_audio(self.count * SAMPLES_PER_FRAME)

    def _push_audio(self, upto: int) -> None:
        chunk = self.waveform[self._audio_sent : upto]
        if len(chunk) < upto - self._audio_sent:
            chunk = np.pad(chunk, (0, upto - self._audio_sent - len(chunk)))
        if len(chunk) == 0:
            return
        af = _av().AudioFrame.from_ndarray(chunk[None].astype(np.float32), format="flt", layout="mono")
        af.sample_rate = SAMPLE_RATE
        af.pts = self._audio_sent
        af.time_base = Fraction(1, SAMPLE_RATE)
        self._audio_sent = upto
        self.fifo.write(af)
        size = self.audio.codec_context.frame_size or 1024
        while self.fifo.samples >= size:
            for packet in self.audio.encode(self.fifo.read(size)):
                self.container.mux(packet)

    def close(self) -> str:
        """Flushes the encoders and renames the file into place. Returns its path."""
        if self.video is None:
            self.abort()
            raise MediaError("empty", "no frame was written", self.path)
        for packet in self.video.encode():
            self.container.mux(packet)
        if self.audio is not None:
            rest = self.fifo.read()
            if rest is not None:
                for packet in self.audio.encode(rest):
                    self.container.mux(packet)
            for packet in self.audio.encode():
                self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Closes and deletes the temporary file."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - a broken container may refuse to close; it is deleted anyway
            pass
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


class PngWriter(_Writer):
    """Frames as frame_00000.png ... in a folder that appears only when complete."""

    def __init__(self, path: str, upscale: int | None = None):
        check_writable(path)
        self.path, self.tmp, self.upscale, self.count = path, temp_name(path), upscale, 0
        os.makedirs(self.tmp, exist_ok=True)

    def add(self, frame: np.ndarray) -> None:
        from PIL import Image

        Image.fromarray(_upscale(frame, self.upscale)).save(
            os.path.join(self.tmp, f"frame_{self.count:05d}.png")
        )
        self.count += 1

    def close(self) -> str:
        if os.path.exists(self.path):
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class NpyWriter(_Writer):
    """All frames as one uint8 [T, H, W, 3] .npy."""

    def __init__(self, path: str, upscale: int | None = None):
        check_writable(path)
        self.path, self.upscale, self.frames = path, upscale, []

    def add(self, frame: np.ndarray) -> None:
        self.frames.append(_upscale(frame, self.upscale))

    def close(self) -> str:
        tmp = temp_name(self.path)
        np.save(tmp, np.stack(self.frames))
        os.replace(tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.frames = []


def make_writer(path: str, waveform: np.ndarray | None, upscale: int | None = None):
    """The writer for ``path``'s extension: .mp4, .npy, or a folder of PNGs (no extension).

    Raises:
      MediaError: "unknown_type" for any other extension, "not_writable" (``check_writable``).
    """
    ext = os.path.splitext(path)[1].lower()
    if ext == ".mp4":
        return Mp4Writer(path, waveform, upscale)
    if ext == ".npy":
        return NpyWriter(path, upscale)
    if ext == "":
        return PngWriter(path, upscale)
    raise MediaError(
        "unknown_type", f"unknown output type {ext!r}; use .mp4, .npy or a folder name for PNG frames", path
    )
