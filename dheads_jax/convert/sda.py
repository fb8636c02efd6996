"""The authors' audio encoder (``audio_encoder.pt``, SDA pretrained on LRW), run as their demo runs it.

  python -m dheads_jax.convert.sda --audio=speech.wav --encoder=audio_encoder.pt --output=emb.npy

The encoder is a TorchScript module called once per window as
``emb, _, state = encoder(window [1, 1, 3200], torch.LongTensor([3200]), init_state=state)``
with a 2-layer GRU state of shape (2, 1, 256) that starts at zero and is carried from
window to window; ``emb`` holds 256 numbers. The waveform (16 kHz mono, float in [-1, 1])
is padded with 1280 zeros on each side and cut into 3200-sample windows (0.2 s) every 640
samples (one 25 fps frame), so window k covers samples [640 k - 1280, 640 k + 1920) of the
original and is centred on the middle of frame k.

Number of frames: T = floor(N / 640) for N >= 640 samples (the count of whole windows in
the padded signal, (N + 2560 - 3200) // 640 + 1); a remainder shorter than one frame adds
no frame, as everywhere in this project. Audio shorter than one frame (40 ms) is an error.

PyTorch is an optional dependency: ``pip install -e .[torch]``. The embeddings are the
``sda`` audio encoder of ``configs/crema.py`` (D = 256).
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
from absl import flags

from dheads_jax.convert import command
from dheads_jax.media import SAMPLES_PER_FRAME

WINDOW = 3200
HOP = SAMPLES_PER_FRAME  # one 25 fps frame: 640 samples
PAD = 1280
STATE_SHAPE = (2, 1, 256)
DIM = 256


class SDAError(ValueError):
    """Audio or an encoder file that cannot be used; the message is one line."""


def num_frames(num_samples: int) -> int:
    """Frames (and embeddings) of ``num_samples`` samples: floor(N / 640), 0 below one frame."""
    return max((num_samples + 2 * PAD - WINDOW) // HOP + 1, 0)


def windows(waveform_16k: np.ndarray) -> np.ndarray:
    """The encoder's input windows: [T, 3200] float32, zero padding of 1280 samples each side.

    Args:
      waveform_16k: [N] mono samples at 16 kHz.

    Returns:
      [T, 3200] with T = ``num_frames(N)``; row k is padded[640 k : 640 k + 3200].
    """
    x = np.asarray(waveform_16k, np.float32)
    if x.ndim != 1:
        raise SDAError(f"the SDA encoder takes mono audio [N], got shape {x.shape}")
    n = num_frames(len(x))
    if n < 1:
        raise SDAError(f"audio of {len(x)} samples is shorter than one video frame ({HOP} samples at 16 kHz)")
    padded = np.pad(x, (PAD, PAD))
    return np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[::HOP][:n].copy()


def load_encoder(encoder_path: str):
    """(torch module, the TorchScript encoder in eval mode on the CPU)."""
    try:
        import torch
    except ImportError as e:
        raise SDAError(
            f"PyTorch is not installed ({e}); the SDA encoder needs the optional extra: pip install -e .[torch]"
        ) from None
    if not os.path.isfile(encoder_path):
        raise SDAError(f"{encoder_path}: no such encoder file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's deprecation notice
            encoder = torch.jit.load(encoder_path, map_location="cpu")
    except Exception as e:  # torch raises many types for files it cannot read
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise SDAError(
            f"{encoder_path}: not a TorchScript audio encoder ({type(e).__name__}: {first})"
        ) from None
    return torch, encoder.eval()


def encode_windows(torch, encoder, frames: np.ndarray) -> np.ndarray:
    """Runs the encoder window by window, carrying the GRU state. frames: [T, 3200] -> [T, 256]."""
    state = torch.zeros(STATE_SHAPE)
    lengths = torch.LongTensor([WINDOW])
    out = np.zeros((len(frames), DIM), np.float32)
    with torch.no_grad():
        for k, window in enumerate(frames):
            emb, _, state = encoder(torch.from_numpy(window)[None, None], lengths, init_state=state)
            emb = emb.detach().float().reshape(-1)
            if emb.numel() != DIM:
                raise SDAError(f"the audio encoder returned {emb.numel()} numbers per window, expected {DIM}")
            out[k] = emb.numpy()
    return out


def sda_embeddings(waveform_16k: np.ndarray, encoder_path: str) -> np.ndarray:
    """Per-frame SDA embeddings of a 16 kHz waveform, as the authors' demo computes them.

    Args:
      waveform_16k: [N] float mono samples at 16 kHz in [-1, 1].
      encoder_path: the authors' TorchScript encoder (``audio_encoder.pt``).

    Returns:
      [T, 256] float32, T = floor(N / 640): row k belongs to video frame k (25 fps).

    Raises:
      SDAError: PyTorch missing, an unreadable encoder, or audio shorter than one frame.
    """
    frames = windows(waveform_16k)
    torch, encoder = load_encoder(encoder_path)
    return encode_windows(torch, encoder, frames)


def define_flags(values: flags.FlagValues) -> None:
    """The flags of ``python -m dheads_jax.convert.sda``, on ``values``."""
    flags.DEFINE_string(
        "audio", None, "Any audio file or video with sound.", required=True, flag_values=values
    )
    flags.DEFINE_string("encoder", None, "The authors' audio_encoder.pt.", required=True, flag_values=values)
    flags.DEFINE_string(
        "output", None, "The .npy file to write ([T, 256] float32).", required=True, flag_values=values
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: embeddings of one audio file to a .npy file (for --audio_embeddings)."""
    args = command.parse("python -m dheads_jax.convert.sda", __doc__.split("\n")[0], argv, define_flags)
    from dheads_jax import media

    try:
        waveform, _ = media.read_audio(args.audio)
        emb = sda_embeddings(waveform, args.encoder)
    except (SDAError, media.MediaError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    np.save(args.output, emb)
    print(f"wrote {args.output}: {emb.shape[0]} frames x {emb.shape[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
