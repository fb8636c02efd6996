"""The authors SDA audio encoder: windows and carried state."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is the optional extra: pip install -e .[torch]")

from dheads_jax import media  # noqa: E402
from dheads_jax.convert import sda  # noqa: E402
from dheads_jax.data.audio import AudioEncoderSpec  # noqa: E402

TOL = 1e-4
# A chain step amplifies network differences by coef1_q * sqrt(1 / abar - 1) where x0_hat is not
# clamped: about 1e4 at t = 999 of a 4-step chain. Measured: 5e-5 over 4 steps (forward: 1e-5).
CHAIN_TOL = 5e-4

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch", "ignore::torch.jit.TracerWarning")


class StandInEncoder(torch.nn.Module):
    """The official encoder's call: (window [1, 1, 3200], lengths [1], init_state [2, 1, 256])."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(sda.WINDOW, 16)
        self.rnn = torch.nn.GRU(16, 256, num_layers=2, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, init_state: torch.Tensor | None = None):
        feat = self.proj(x.reshape(x.shape[0], 1, -1)) * (lengths.float() / 3200.0)[:, None, None]
        out, state = self.rnn(feat, init_state)
        return out[:, -1], feat, state


def test_sda_windows_and_carried_state_match_a_whole_sequence_run(tmp_path):
    torch.manual_seed(0)
    encoder = StandInEncoder().eval()
    path = str(tmp_path / "audio_encoder.pt")
    torch.jit.script(encoder).save(path)
    rng = np.random.default_rng(0)
    n = 640 * 9 + 123  # a partial frame at the end adds no frame
    wave = rng.uniform(-0.5, 0.5, n).astype(np.float32)

    emb = sda.sda_embeddings(wave, path)
    assert emb.shape == (9, 256) and emb.dtype == np.float32
    assert [sda.num_frames(m) for m in (639, 640, 1279, 1280, n)] == [0, 1, 1, 2, 9]

    # Independent reference: explicit zero padding, window k = padded[640 k : 640 k + 3200],
    # and one GRU pass over the whole sequence (what carrying the state window to window means).
    padded = np.concatenate([np.zeros(1280, np.float32), wave, np.zeros(1280, np.float32)])
    wins = np.stack([padded[640 * k : 640 * k + 3200] for k in range(9)])
    assert np.array_equal(sda.windows(wave), wins)
    with torch.no_grad():
        feats = encoder.proj(torch.from_numpy(wins))[None]  # [1, T, 16]
        whole, _ = encoder.rnn(feats, torch.zeros(2, 1, 256))
    np.testing.assert_allclose(emb, whole[0].numpy(), atol=1e-5)
    # The carried state matters: a fresh state per window gives other embeddings.
    with torch.no_grad():
        fresh = torch.cat([encoder.rnn(feats[:, k : k + 1])[0][:, -1] for k in range(9)]).numpy()
    assert np.abs(fresh[1:] - emb[1:]).max() > 1e-3

    # The sampler's audio loading runs the encoder file the same way.
    import soundfile

    from dheads_jax import generate

    wav = str(tmp_path / "speech.wav")
    soundfile.write(wav, wave, media.SAMPLE_RATE, subtype="FLOAT")
    waveform, emb2 = generate.load_audio(wav, AudioEncoderSpec.external(256, "sda"), None, path)
    assert waveform.shape == (9 * 640,)
    np.testing.assert_allclose(emb2, sda.sda_embeddings(waveform, path), atol=1e-6)

    with pytest.raises(sda.SDAError, match="shorter than one video frame"):
        sda.sda_embeddings(wave[:600], path)
    with pytest.raises(sda.SDAError, match="not a TorchScript audio encoder"):
        bad = tmp_path / "bad.pt"
        bad.write_text("no")
        sda.sda_embeddings(wave, str(bad))
