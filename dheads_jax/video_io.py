"""Writing results: H.264/AAC mp4 (streamed frame by frame), PNG frames, .npy; reading identities.

Every writer produces its output under a temporary name and renames it only when it is
complete, so an interrupted or failed run leaves no file that looks finished.
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


class MediaError(ValueError):
    """A file that cannot be used; the message names it and says why."""


def temp_name(path: str) -> str:
    """A sibling temporary name with the same extension (so containers are inferred)."""
    root, ext = os.path.splitext(path)
    return f"{root}.tmp-{os.getpid()}{ext}"


def check_writable(path: str) -> None:
    """Raises MediaError when ``path`` cannot be created (missing or read-only folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MediaError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise MediaError(f"{path}: output folder {folder} is not writable")


def _resize(frame: np.ndarray, size: int | None) -> np.ndarray:
    if not size or size == frame.shape[0]:
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BICUBIC))


class Mp4Writer:
    """Streams uint8 RGB frames into an H.264 (yuv420p) mp4 with AAC audio muxed in.

    Audio (16 kHz mono float in [-1, 1]) is trimmed or zero-padded to exactly
    frames / 25 s and interleaved as the frames arrive.
    """

    def __init__(self, path: str, waveform: np.ndarray | None, upscale: int | None = None, crf: int = 18):
        check_writable(path)
        self.path, self.tmp, self.upscale, self.crf = path, temp_name(path), upscale, crf
        self.waveform = None if waveform is None else np.asarray(waveform, np.float32)
        self.container = av.open(self.tmp, mode="w", format="mp4")
        self.video = None
        self.audio = None
        self.count = 0
        self._audio_sent = 0

    def _open_streams(self, frame: np.ndarray) -> None:
        self.video = self.container.add_stream("libx264", rate=FPS)
        self.video.width, self.video.height = frame.shape[1], frame.shape[0]
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(self.crf), "preset": "medium"}
        if self.waveform is not None:
            self.audio = self.container.add_stream("aac", rate=SAMPLE_RATE)
            self.audio.layout = "mono"
            self.fifo = av.AudioFifo()

    def add(self, frame: np.ndarray) -> None:
        """Appends one uint8 [H, W, 3] frame (H, W even)."""
        frame = _resize(np.ascontiguousarray(frame, np.uint8), self.upscale)
        if self.video is None:
            self._open_streams(frame)
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
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
        af = av.AudioFrame.from_ndarray(chunk[None].astype(np.float32), format="flt", layout="mono")
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
            raise MediaError(f"{self.path}: no frame was written")
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


class PngWriter:
    """Frames as frame_00000.png ... in a folder that appears only when complete."""

    def __init__(self, path: str, upscale: int | None = None):
        check_writable(path)
        self.path, self.tmp, self.upscale, self.count = path, temp_name(path), upscale, 0
        os.makedirs(self.tmp, exist_ok=True)

    def add(self, frame: np.ndarray) -> None:
        Image.fromarray(_resize(frame, self.upscale)).save(
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


class NpyWriter:
    """All frames as one uint8 [T, H, W, 3] .npy."""

    def __init__(self, path: str, upscale: int | None = None):
        check_writable(path)
        self.path, self.upscale, self.frames = path, upscale, []

    def add(self, frame: np.ndarray) -> None:
        self.frames.append(_resize(frame, self.upscale))

    def close(self) -> str:
        tmp = temp_name(self.path)
        np.save(tmp, np.stack(self.frames))
        os.replace(tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.frames = []


def make_writer(path: str, waveform: np.ndarray | None, upscale: int | None = None):
    """The writer for ``path``'s extension: .mp4, .npy, or a folder of PNGs (no extension)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".mp4":
        return Mp4Writer(path, waveform, upscale)
    if ext == ".npy":
        return NpyWriter(path, upscale)
    if ext == "":
        return PngWriter(path, upscale)
    raise MediaError(f"{path}: unknown output type {ext!r}; use .mp4, .npy or a folder name for PNG frames")


def read_identity_image(path: str) -> np.ndarray:
    """An RGB uint8 [H, W, 3] from an image (any PIL format, alpha, grayscale) or a video's first frame.

    Transparent pixels are composited onto white.
    """
    if not os.path.isfile(path):
        raise MediaError(f"{path}: no such file")
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
        with av.open(path) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: neither an image nor a video")
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as e:
        raise MediaError(f"{path}: unreadable image or video ({e})") from e
    raise MediaError(f"{path}: the video has no decodable frame")
