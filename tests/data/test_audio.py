"""Audio: the frame-count rule, the mel encoder, external embeddings and the encoder spec."""

import numpy as np
import pytest

from dheads_jax import media
from dheads_jax.data import ClipError, audio


def test_frame_count_rule_and_waveform_fit():
    assert media.SAMPLES_PER_FRAME == 640
    w = np.arange(47648, dtype=np.float32)  # GRID audio: 74.45 frames for 75 video frames
    fitted = media.fit_waveform(w, 75)
    assert fitted.shape == (48000,)
    np.testing.assert_array_equal(fitted[:47648], w)
    assert not fitted[47648:].any()
    np.testing.assert_array_equal(media.fit_waveform(w, 10), w[:6400])
    np.testing.assert_array_equal(media.shift_waveform(w[:5], 2 / 16000), [0, 0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(media.shift_waveform(w[:5], -2 / 16000), [2, 3, 4])


def test_mel_shapes_determinism_and_timing():
    params = audio.MelParams()
    assert (params.dim, params.hop, params.win_length, params.n_fft) == (256, 160, 400, 512)
    t = np.arange(16000) / 16000
    tone = np.zeros(16000, np.float32)
    tone[640 * 10 : 640 * 12] = 0.5 * np.sin(2 * np.pi * 1000 * t[: 2 * 640])  # frames 10, 11
    emb = audio.encode_waveform(tone, params)
    assert emb.shape == (25, 256) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb, audio.encode_waveform(tone.copy(), params))
    energy = emb.reshape(25, 4, 64).mean((1, 2))
    assert set(np.argsort(energy)[-2:]) == {10, 11}
    silence = (np.log(audio.LOG_FLOOR) + audio.LOG_SHIFT) / audio.LOG_SCALE
    np.testing.assert_allclose(emb[:9], silence, atol=1e-4)  # the tone does not leak 1 frame early
    # Within a frame, sub-frames keep 10 ms timing: the 1 kHz band peaks in the tone's frames.
    band = emb.reshape(25, 4, 64)[10].mean(0).argmax()
    import librosa

    mel_freqs = librosa.mel_frequencies(n_mels=66, fmin=0, fmax=8000)[1:-1]
    assert abs(mel_freqs[band] - 1000) < 150
    # A remainder of fewer than 640 samples gets no frame.
    assert audio.encode_waveform(np.zeros(640 * 3 + 639), audio.MelParams(8, 1)).shape == (3, 8)


def test_external_embeddings_fit_and_errors(tmp_path):
    path = str(tmp_path / "clip.npy")
    np.save(path, np.arange(12, dtype=np.float64).reshape(6, 2))
    out = audio.load_external(path, 8, max_mismatch_frames=2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], [0, 2, 4, 6, 8, 10, 10, 10])
    np.testing.assert_array_equal(audio.load_external(path, 4, 2)[:, 1], [1, 3, 5, 7])
    with pytest.raises(ClipError) as e:
        audio.load_external(path, 20, 2)
    assert e.value.reason == "length_mismatch"
    with pytest.raises(ClipError) as e:
        audio.load_external(str(tmp_path / "none.npy"), 6, 2)
    assert e.value.reason == "missing_embeddings"
    assert audio.external_path("/emb", "s1/a.mp4") == "/emb/s1/a.npy"


def test_encoder_spec_is_checked_against_the_config():
    import ml_collections

    cfg = ml_collections.ConfigDict(
        dict(audio_encoder="mel", audio_dim=8, mel_bins=8, mel_subframes=1, mel_fmin=0.0, mel_fmax=8000.0)
    )
    Spec = audio.AudioEncoderSpec
    Spec.for_mel(audio.MelParams(8, 1)).check_matches(cfg)
    assert Spec.from_data_config(cfg) == Spec.for_mel(audio.MelParams(8, 1))
    with pytest.raises(ValueError, match="audio_dim=8"):
        Spec.for_mel().check_matches(cfg)
    with pytest.raises(ValueError, match="fmax=4000.0 vs config.data.mel_fmax=8000.0"):
        Spec.for_mel(audio.MelParams(8, 1, fmax=4000.0)).check_matches(cfg)
    cfg.audio_encoder, cfg.audio_dim = "sda", 256
    Spec.external(256, "sda").check_matches(cfg)
    with pytest.raises(ValueError, match="'external' vs config.data.audio_encoder='sda'"):
        Spec.external(256).check_matches(cfg)


def test_encoder_spec_json_round_trip_and_the_old_flat_form():
    Spec = audio.AudioEncoderSpec
    mel = Spec.for_mel(audio.MelParams(16, 2, fmin=50.0, fmax=7000.0))
    assert mel.to_json() == dict(
        name="mel", dim=32, params=dict(num_mels=16, subframes=2, fmin=50.0, fmax=7000.0)
    )
    assert Spec.from_json(mel.to_json()) == mel
    ext = Spec.external(256, "sda")
    assert ext.to_json() == dict(name="sda", dim=256, params=dict(source="external"))
    assert Spec.from_json(ext.to_json()) == ext
    # Exports written before the nested form stored only the two sizes: the band edges
    # were always the defaults then.
    assert Spec.from_json(dict(name="mel", dim=32, num_mels=16, subframes=2)) == Spec.for_mel(
        audio.MelParams(16, 2)
    )


def test_silence_embedding_is_the_log_floor_of_the_mel_encoder():
    emb = audio.AudioEncoderSpec.for_mel(audio.MelParams(8, 4)).silence_embedding()
    assert emb.shape == (32,)
    np.testing.assert_allclose(emb, (np.log(1e-6) + 7.0) / 4.0, rtol=1e-5)
    with pytest.raises(ValueError, match="only the mel encoder"):
        audio.AudioEncoderSpec.external(256, "sda").silence_embedding()
