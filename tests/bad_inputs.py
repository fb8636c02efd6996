"""A folder of bad (and two good) inputs for the data preparation, shared by its tests."""

import os

import av
import numpy as np
import soundfile

from dheads_jax import media

GRID_CLIP = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "samples", "grid", "bbaf2n.mpg"
)
# What the preparation must report for each bad file written by ``write_bad_inputs``.
EXPECTED_REASONS = {
    "mute.mp4": "no_audio",
    "noface.mp4": "no_face",
    "partface.mp4": "no_face",
    "short.mp4": "too_short",
    "mismatch.mp4": "length_mismatch",
    "truncated.mp4": "corrupt",
    "garbage.avi": "corrupt",
    "speech.wav": "not_video",
}


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


def write_bad_inputs(videos, audio_dir) -> None:
    """Writes the files of EXPECTED_REASONS into ``videos``, plus two good 0.4 s clips.

    The good ones are ``s1/good.mp4`` (no sound, a parallel ``s1/good.wav`` under
    ``audio_dir``) and ``s1/good_inline.mp4`` (sound inside); a ``notes.md`` is ignored.
    """
    grid, _ = media.read_video(GRID_CLIP)
    grid = grid[:10]  # 0.4 s
    speech, _ = media.read_audio(GRID_CLIP)
    speech = speech[media.SAMPLE_RATE : media.SAMPLE_RATE + 10 * media.SAMPLES_PER_FRAME]
    (videos / "s1").mkdir(parents=True)
    (audio_dir / "s1").mkdir(parents=True)
    write_video(str(videos / "s1" / "good.mp4"), grid)
    soundfile.write(str(audio_dir / "s1" / "good.wav"), speech, media.SAMPLE_RATE)
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
