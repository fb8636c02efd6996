"""The local web app: a face and a speech recording in, a talking video with its sound out.

``run_app.py`` starts it. ``VideoMaker`` holds the model, loaded and compiled once, and
turns one upload into one mp4 (``make_video``, usable without a browser); ``build_ui``
lays out the Gradio page around it and ``launch`` serves it. Jobs run one at a time from
a queue. An input that cannot be used is shown in the page with the one-line message the
command line prints (``generate.InputError`` / ``media.MediaError``), and the app goes on.

The page works with no network: analytics are off, the theme uses system fonts only and
no share link is made. Gradio is imported only by ``build_ui`` and ``launch``.
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
from absl import logging

from dheads_jax import generate, media, sampling
from dheads_jax.data import align
from dheads_jax.data import audio as audio_lib
from dheads_jax.diffusion.chain import SAMPLERS
from dheads_jax.progress import Progress, format_seconds

# An upload whose loudest sample is below -60 dBFS has no speech to follow.
SILENCE_PEAK = 1e-3

ProgressFn = Callable[[int, int, str], None]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The page's sampling controls.

    Attributes:
      sampler: "ddpm", "ddim" or "dpmpp".
      steps: denoising steps per frame.
      audio_guidance: classifier-free guidance scale on the audio; 1 is off.
      seed: the noise seed.
    """

    sampler: str
    steps: int
    audio_guidance: float
    seed: int = 0


class VideoMaker:
    """An export loaded once, making one talking video per call.

    Every job's audio is padded to ``max_seconds`` worth of frames, so videos of any length
    up to it share one compiled frame step per set of sampling options.

    Args:
      export_dir: the export folder.
      output_dir: where videos are written (default: a new temporary folder).
      max_seconds: the longest audio accepted.
      upscale: output frame size in pixels, or None for the model's.
    """

    def __init__(
        self,
        export_dir: str,
        output_dir: str | None = None,
        max_seconds: float = 60.0,
        upscale: int | None = None,
    ):
        self.export_dir = export_dir
        self.sampler = generate.Sampler.from_export(export_dir)
        if max_seconds * media.FPS < 1:
            raise generate.InputError(f"max_seconds {max_seconds} is shorter than one video frame (40 ms)")
        self.max_seconds = float(max_seconds)
        self.max_frames = int(np.floor(max_seconds * media.FPS + 1e-6))
        self.upscale = upscale
        self.output_dir = output_dir or tempfile.mkdtemp(prefix="dheads_app_")
        os.makedirs(self.output_dir, exist_ok=True)
        self._counter = itertools.count()
        self._compiled: set[sampling.SamplingOptions] = set()  # options whose frame step is compiled

    @property
    def defaults(self) -> Settings:
        """The export's sampling options (its config.sampling) as the page's controls."""
        o = self.sampler.options
        return Settings(o.sampler, o.steps, o.audio_guidance, 0)

    def options(self, settings: Settings) -> sampling.SamplingOptions:
        """The export's sampling options with the page's choices.

        Raises:
          generate.InputError: a choice the export cannot sample with.
        """
        if int(settings.steps) < 1:
            raise generate.InputError(f"steps must be at least 1, got {settings.steps}")
        overrides = dict(
            sampler=str(settings.sampler),
            steps=int(settings.steps),
            audio_guidance=float(settings.audio_guidance),
        )
        # Unchanged values keep the export's options whole (a distilled export's own timesteps).
        if all(getattr(self.sampler.options, k) == v for k, v in overrides.items()):
            return self.sampler.options
        try:
            return sampling.SamplingOptions.from_config(self.sampler.config, **overrides)
        except ValueError as e:
            raise generate.InputError(str(e)) from e

    def warm_up(self) -> float:
        """Compiles the frame step on a dummy job and loads the input models. Returns the seconds taken.

        The dummy has two frames: the first frame's motion buffer comes from the host, the
        later ones from the device, and jit compiles the step once for each.
        """
        start = time.perf_counter()
        size = self.sampler.image_size
        dummy = generate.Job(
            identity=np.zeros((size, size, 3), np.float32),
            audio=np.zeros((min(2, self.max_frames), self.sampler.encoder.dim), np.float32),
            waveform=None,
            output="",
            video_id=0,
        )
        for _ in self.sampler.frames([dummy], self.max_frames, 1):
            pass
        self._compiled.add(self.sampler.options)
        # The first face detection and audio encoding load their models and libraries.
        try:
            align.align_image(np.zeros((64, 64, 3), np.uint8), size)
        except align.NoFaceError:
            pass
        if self.sampler.encoder.mel is not None:
            audio_lib.encode_waveform(
                np.zeros(2 * media.SAMPLES_PER_FRAME, np.float32), self.sampler.encoder.mel
            )
        return time.perf_counter() - start

    def load_inputs(
        self, id_image: str | None, audio: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(identity, waveform, embeddings) of the uploads, checked as the command line checks them.

        Raises:
          generate.InputError: a missing upload, no face, unreadable, silent or too long audio.
          media.MediaError: an unreadable file.
        """
        if not id_image:
            raise generate.InputError("no face: upload a photo or a video of a face")
        if not audio:
            raise generate.InputError("no speech: upload an audio file or record one")
        identity = generate.load_identity(id_image, self.sampler.image_size)
        waveform, emb = generate.load_audio(audio, self.sampler.encoder)
        seconds = len(waveform) / media.SAMPLE_RATE
        if len(emb) > self.max_frames:
            raise generate.InputError(
                f"{audio}: the audio is {seconds:.1f} s long; this app makes videos of at most "
                f"{self.max_seconds:g} s (--max_seconds)"
            )
        if float(np.max(np.abs(waveform))) < SILENCE_PEAK:
            raise generate.InputError(f"{audio}: the audio is silent (no speech to follow)")
        return identity, waveform, emb

    def make_video(
        self, id_image: str | None, audio: str | None, settings: Settings, progress: ProgressFn | None = None
    ) -> str:
        """Samples one video and writes it as an mp4 with the audio. Returns its path.

        Args:
          id_image: the identity: an image or a video (its first frame).
          audio: the speech: any audio file or a video with sound.
          settings: sampler, steps, audio guidance and seed.
          progress: called as ``progress(done, total, message)`` before the first frame and
            after every frame; the message has the rate and the time left.

        Returns:
          The mp4 (H.264 at 25 fps, AAC), floor(seconds * 25) frames, written under a
          temporary name and renamed when complete.

        Raises:
          One of ``generate.EXPECTED_ERRORS`` for inputs that cannot be used.
        """
        options = self.options(settings)
        identity, waveform, emb = self.load_inputs(id_image, audio)
        total = len(emb)
        output = os.path.join(
            self.output_dir, f"talking_{time.strftime('%Y%m%d_%H%M%S')}_{next(self._counter)}.mp4"
        )
        job = generate.Job(identity, emb, waveform, output, 0)
        sampler = dataclasses.replace(self.sampler, options=options, seed=int(settings.seed))
        tracker = Progress(total, "frames", label="app")
        first_use = options not in self._compiled
        opening = "compiling for these sampling settings (once)" if first_use else "starting"
        if progress:
            progress(0, total, opening)

        def frame_done(k, active):
            tracker.update(1)
            if progress:
                progress(tracker.done, total, tracker.speed(", ") if tracker.has_rate else opening)

        (path,) = sampler.write([job], self.upscale, self.max_frames, 1, frame_done)
        self._compiled.add(options)
        logging.info("wrote %s (%d frames, %s)", path, total, options.sampler)
        return path


def user_message(error: Exception, uploads: list[str | None]) -> str:
    """The error's one line, with each upload's temporary path shortened to its file name."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    for path in uploads:
        if path:
            message = message.replace(path, os.path.basename(path))
    return message


def theme():
    """Gradio's base theme on system fonts only: nothing is fetched from a font service."""
    import gradio as gr

    return gr.themes.Base(
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


INTRO = (
    "# Diffused Heads\n"
    "A face photo (or a video: its first frame is used) and a speech recording in, a video "
    "of that face speaking out, frame by frame. Videos run at 25 fps and last as long as the "
    "audio (at most {max_seconds:g} s)."
)


def build_ui(maker: VideoMaker):
    """The page: inputs, sampling controls, the generate button and the video.

    Returns:
      A ``gradio.Blocks`` with its queue on, one job at a time.
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    d = maker.defaults

    # gradio hands its progress tracker to a parameter whose default is one.
    def generate_video(
        face,
        speech,
        sampler_name,
        steps,
        guidance,
        seed,
        progress=gr.Progress(),  # noqa: B008
    ):
        frames = []

        def report(done, total, message):
            frames[:] = [total]
            progress((done, total), desc=message, unit="frames")

        # An emptied field falls back to the export's value.
        settings = Settings(
            sampler_name or d.sampler,
            int(d.steps if steps is None else steps),
            float(d.audio_guidance if guidance is None else guidance),
            int(seed or 0),
        )
        start = time.perf_counter()
        try:
            path = maker.make_video(face, speech, settings, report)
        except generate.EXPECTED_ERRORS as e:
            message = user_message(e, [face, speech])
            logging.warning("job failed: %s", message)
            raise gr.Error(html.escape(message), duration=None, print_exception=False) from e
        total = frames[0]
        return path, (
            f"{total} frames ({total / media.FPS:.2f} s) made in {format_seconds(time.perf_counter() - start)} "
            f"with {settings.sampler}, {settings.steps} steps per frame, audio guidance "
            f"{settings.audio_guidance:g}, seed {settings.seed}."
        )

    with gr.Blocks(title="Diffused Heads", analytics_enabled=False) as demo:
        gr.Markdown(INTRO.format(max_seconds=maker.max_seconds))
        with gr.Row():
            with gr.Column():
                face = gr.File(
                    label="Face: a photo or a video",
                    file_types=["image", "video"],
                    type="filepath",
                    height=160,
                    elem_id="face",
                )
                speech = gr.Audio(
                    label="Speech: an audio file or a recording",
                    sources=["upload", "microphone"],
                    type="filepath",
                    buttons=["download"],
                    elem_id="speech",
                )
                with gr.Row():
                    sampler_name = gr.Dropdown(
                        list(SAMPLERS), value=d.sampler, label="Sampler", elem_id="sampler"
                    )
                    steps = gr.Number(
                        value=d.steps,
                        precision=0,
                        minimum=1,
                        maximum=maker.sampler.options.num_timesteps,
                        label="Steps per frame",
                        elem_id="steps",
                    )
                with gr.Row():
                    guidance = gr.Number(
                        value=d.audio_guidance,
                        minimum=0.0,
                        label="Audio guidance (1 = off)",
                        elem_id="guidance",
                    )
                    seed = gr.Number(value=d.seed, precision=0, label="Seed", elem_id="seed")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                video = gr.Video(
                    label="Talking video",
                    buttons=["download"],
                    interactive=False,
                    height=420,
                    elem_id="result",
                )
                info = gr.Markdown(elem_id="info")
        button.click(
            generate_video,
            [face, speech, sampler_name, steps, guidance, seed],
            [video, info],
            concurrency_limit=1,
            show_progress="full",
        )
    demo.queue(default_concurrency_limit=1)
    return demo


def launch(maker: VideoMaker, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serves the page on ``host:port`` (no share link). Returns the running ``gradio.Blocks``.

    Args:
      maker: the loaded model.
      host: the interface to listen on; 127.0.0.1 keeps the app on this machine.
      port: the TCP port.
      block: wait until the server stops (a command) or return at once (tests).
    """
    demo = build_ui(maker)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=True,
        prevent_thread_lock=not block,
        allowed_paths=[maker.output_dir],
        theme=theme(),
        ssr_mode=False,
        quiet=True,
    )
    return demo
