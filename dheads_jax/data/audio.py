"""Per-frame audio embeddings [T, D], one per 25 fps video frame (docs/method.md, section 5).

Two encoders, chosen by name:

* ``mel`` (default; offline, deterministic): log-mel energies of the 40 ms of audio under
  each video frame. Frame k covers samples [640 k, 640 k + 640) of the 16 kHz waveform; it is
  cut into ``subframes`` hops of 640 / subframes samples, each analysed by a Hann window of
  ``max(400, hop)`` samples (25 ms at the default) centred on the hop, ``num_mels`` Slaney mel
  bands over 0-8 kHz, natural log of the power plus 1e-6, then (x + 7) / 4 so speech lands
  roughly in [-1, 2]. The vector of frame k is the ``subframes`` spectra in time order,
  concatenated: D = num_mels * subframes. Default 64 x 4 = 256, the size of the SDA
  embedding the released model used, so the default model config fits unchanged.
* ``external``: embeddings computed elsewhere (e.g. the official SDA encoder), one ``.npy``
  [T, D] float array per clip under ``embeddings_dir`` at the clip's relative path with the
  extension replaced by ``.npy``.

``encode_waveform`` gives the sampler the same ``mel`` features for new audio.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from dheads_jax.data.sources import ClipError
from dheads_jax.media import SAMPLE_RATE, SAMPLES_PER_FRAME

LOG_FLOOR = 1e-6
LOG_SHIFT, LOG_SCALE = 7.0, 4.0
ENCODERS = ("mel", "external")


@dataclasses.dataclass(frozen=True)
class MelParams:
    """Parameters of the ``mel`` encoder; stored in the dataset metadata."""

    num_mels: int = 64
    subframes: int = 4
    fmin: float = 0.0
    fmax: float = 8000.0

    @property
    def dim(self) -> int:
        return self.num_mels * self.subframes

    @property
    def hop(self) -> int:
        if SAMPLES_PER_FRAME % self.subframes:
            raise ValueError(f"subframes must divide {SAMPLES_PER_FRAME}, got {self.subframes}")
        return SAMPLES_PER_FRAME // self.subframes

    @property
    def win_length(self) -> int:
        return max(400, self.hop)

    @property
    def n_fft(self) -> int:
        return 1 << int(np.ceil(np.log2(self.win_length)))


@functools.cache
def _mel_basis(params: MelParams) -> np.ndarray:
    import librosa  # on first use: AudioEncoderSpec is read where librosa is not installed

    return librosa.filters.mel(
        sr=SAMPLE_RATE, n_fft=params.n_fft, n_mels=params.num_mels, fmin=params.fmin, fmax=params.fmax
    ).astype(np.float64)


def encode_waveform(waveform: np.ndarray, params: MelParams = MelParams()) -> np.ndarray:
    """The ``mel`` embedding of a 16 kHz mono waveform.

    Args:
      waveform: float [N] at 16 kHz in [-1, 1]. T = N // 640 frames; a remainder of fewer
        than 640 samples gets no frame (pad the waveform first to keep it).
      params: encoder parameters.

    Returns:
      float32 [T, D], D = params.dim.
    """
    import librosa

    num_frames = len(waveform) // SAMPLES_PER_FRAME
    x = np.asarray(waveform[: num_frames * SAMPLES_PER_FRAME], np.float64)
    # Column i is centred on sample hop * i + hop / 2, the middle of sub-frame i.
    pad = params.n_fft // 2 - params.hop // 2
    x = np.pad(x, (pad, pad))
    spec = librosa.stft(
        x,
        n_fft=params.n_fft,
        hop_length=params.hop,
        win_length=params.win_length,
        window="hann",
        center=False,
    )[:, : num_frames * params.subframes]
    mel = _mel_basis(params) @ (np.abs(spec) ** 2)
    feats = (np.log(mel + LOG_FLOOR) + LOG_SHIFT) / LOG_SCALE  # [num_mels, T * subframes]
    return feats.T.reshape(num_frames, params.dim).astype(np.float32)


def external_path(embeddings_dir: str, relative_path: str) -> str:
    """Where the ``external`` encoder looks for a clip's [T, D] ``.npy``."""
    return os.path.join(embeddings_dir, os.path.splitext(relative_path)[0] + ".npy")


def load_external(path: str, num_frames: int, max_mismatch_frames: int) -> np.ndarray:
    """Loads an external [T', D] embedding and fits it to T frames.

    Within ``max_mismatch_frames`` the array is cut, or extended by repeating its last row.

    Raises:
      ClipError: "missing_embeddings", "bad_embeddings" or "length_mismatch".
    """
    if not os.path.exists(path):
        raise ClipError("missing_embeddings", f"no external embedding file {path}")
    try:
        emb = np.load(path)
    except (OSError, ValueError) as e:
        raise ClipError("bad_embeddings", f"cannot read {path}: {e}") from e
    if emb.ndim != 2 or len(emb) == 0 or not np.issubdtype(emb.dtype, np.number):
        raise ClipError("bad_embeddings", f"{path} must hold a [T, D] number array, got {emb.shape}")
    if abs(len(emb) - num_frames) > max_mismatch_frames:
        raise ClipError("length_mismatch", f"{len(emb)} external embeddings for {num_frames} video frames")
    index = np.minimum(np.arange(num_frames), len(emb) - 1)
    return emb[index].astype(np.float32)


@dataclasses.dataclass(frozen=True)
class AudioEncoderSpec:
    """Which per-frame audio embedding a dataset holds and a model expects.

    One value for datasets (their metadata), exports, the silence embedding of audio
    guidance and the check that a dataset fits a config. Its JSON form is
    ``{"name", "dim", "params"}`` with the mel parameters (or ``{"source": "external"}``)
    under ``params``; ``from_json`` also reads the flat form older exports stored
    (``num_mels`` and ``subframes`` beside name and dim, the band edges at their defaults).

    Attributes:
      name: "mel", or the label of an external encoder (e.g. "sda", "external").
      dim: D, the embedding size (None for an external encoder before its first file).
      mel: the mel parameters; None for an external encoder.
    """

    name: str
    dim: int | None
    mel: MelParams | None = None

    @classmethod
    def for_mel(cls, mel: MelParams = MelParams()) -> AudioEncoderSpec:
        return cls("mel", mel.dim, mel)

    @classmethod
    def external(cls, dim: int | None = None, label: str = "") -> AudioEncoderSpec:
        return cls(label or "external", dim, None)

    @classmethod
    def from_data_config(cls, data_config) -> AudioEncoderSpec:
        """The encoder a ``config.data`` block asks for."""
        if data_config.audio_encoder == "mel":
            return cls.for_mel(
                MelParams(
                    num_mels=data_config.mel_bins,
                    subframes=data_config.mel_subframes,
                    fmin=float(data_config.mel_fmin),
                    fmax=float(data_config.mel_fmax),
                )
            )
        return cls(data_config.audio_encoder, data_config.audio_dim, None)

    @classmethod
    def from_json(cls, spec: dict) -> AudioEncoderSpec:
        """Reads the nested form, and the flat form of older exports."""
        if spec["name"] != "mel":
            return cls(spec["name"], spec.get("dim"), None)
        params = spec.get("params")
        if params is None:  # the flat form: only the two sizes were stored
            params = dict(num_mels=spec["num_mels"], subframes=spec["subframes"])
        return cls.for_mel(MelParams(**params))

    def to_json(self) -> dict:
        if self.mel is not None:
            return dict(name=self.name, dim=self.dim, params=dataclasses.asdict(self.mel))
        return dict(name=self.name, dim=self.dim, params=dict(source="external"))

    def silence_embedding(self) -> np.ndarray:
        """The embedding of one frame of digital silence, float32 [D].

        Audio guidance uses it as "no audio". Only the ``mel`` encoder runs here; its
        silence is the log floor in every band.

        Raises:
          ValueError: for another encoder.
        """
        if self.mel is None:
            raise ValueError(
                "audio guidance needs the embedding of silence, which only the mel encoder computes here; "
                f"this model uses the {self.name!r} encoder"
            )
        return encode_waveform(np.zeros(SAMPLES_PER_FRAME, np.float32), self.mel)[0]

    def check_matches(self, data_config) -> None:
        """Raises ValueError when these embeddings do not fit ``config.data``.

        Compares the name with ``audio_encoder``, D with ``audio_dim`` and, for ``mel``,
        every mel parameter with the config's.
        """
        problems = []
        if self.name != data_config.audio_encoder:
            problems.append(
                f"encoder {self.name!r} vs config.data.audio_encoder={data_config.audio_encoder!r}"
            )
        if self.dim != data_config.audio_dim:
            problems.append(f"D={self.dim} vs config.data.audio_dim={data_config.audio_dim}")
        if self.mel is not None:
            for key, field in (
                ("num_mels", "mel_bins"),
                ("subframes", "mel_subframes"),
                ("fmin", "mel_fmin"),
                ("fmax", "mel_fmax"),
            ):
                if getattr(self.mel, key) != data_config[field]:
                    problems.append(
                        f"mel {key}={getattr(self.mel, key)} vs config.data.{field}={data_config[field]}"
                    )
        if problems:
            raise ValueError("dataset audio embeddings do not match the config: " + "; ".join(problems))
