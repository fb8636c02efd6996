"""The talking measures of dheads_jax.metrics.talking on synthetic signals and a real GRID clip."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dheads_jax import media
from dheads_jax.metrics import talking

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "data", "samples")
EYES = 30.0  # outer eye-corner distance of the synthetic faces, pixels


def face(gaps: np.ndarray) -> np.ndarray:
    """[T, 68, 2] landmarks whose lip gap (gap / eye distance) is ``gaps``."""
    lm = np.zeros((len(gaps), 68, 2), np.float32)
    lm[:, 36] = (10.0, 20.0)
    lm[:, 45] = (10.0 + EYES, 20.0)
    for top, bottom in ((61, 67), (62, 66), (63, 65)):
        lm[:, top] = (25.0, 40.0)
        lm[:, bottom, 0] = 25.0
        lm[:, bottom, 1] = 40.0 + np.asarray(gaps) * EYES
    return lm


def speech_with_envelope(amplitude: np.ndarray) -> np.ndarray:
    """16 kHz samples of +-amplitude[k] in frame k: the RMS envelope is exactly ``amplitude``."""
    rng = np.random.default_rng(0)
    signs = rng.choice([-1.0, 1.0], size=len(amplitude) * media.SAMPLES_PER_FRAME)
    return (np.repeat(amplitude, media.SAMPLES_PER_FRAME) * signs).astype(np.float32)


def syllables(num_frames: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(
        0.3 + 0.3 * np.sin(np.arange(num_frames) * 2 * np.pi / 5) + 0.2 * rng.random(num_frames), 0, 1
    )


def test_lip_gap_is_the_ratio_to_the_eye_distance():
    np.testing.assert_allclose(talking.lip_gap(face(np.array([0.0, 0.05, 0.1]))), [0.0, 0.05, 0.1], atol=1e-6)


def test_still_video_has_zero_std_and_no_correlation():
    lm = face(np.full(50, 0.04))
    waveform = speech_with_envelope(syllables(50))
    gap = talking.lip_gap(lm)
    assert talking.lip_gap_std(gap) == 0.0
    assert talking.av_correlation(gap, waveform) == (0.0, None)
    assert talking.av_correlation(gap, waveform, high_pass=False) == (0.0, None)
    stats = talking.talking_stats(lm, waveform)
    assert stats["gap_std"] == 0.0 and stats["av_corr"] == 0.0 and stats["av_lag"] is None
    assert stats["closure"] is None and stats["closed_in_speech"] is None


def test_silence_has_no_correlation_and_no_landmarks_give_nan():
    gap = 0.05 + 0.05 * syllables(50)
    assert talking.av_correlation(gap, np.zeros(50 * media.SAMPLES_PER_FRAME, np.float32)) == (0.0, None)
    corr, lag = talking.av_correlation(np.full(50, np.nan), speech_with_envelope(syllables(50)))
    assert np.isnan(corr) and lag is None
    assert np.isnan(talking.lip_gap_std(np.full(5, np.nan)))


@pytest.mark.parametrize("delay", [2, -1, 0])
def test_gap_following_the_envelope_late_gives_that_lag(delay):
    n = 100
    amplitude = syllables(n + 10)
    envelope = amplitude[5 : 5 + n]
    gap = 0.03 + 0.1 * amplitude[5 - delay : 5 - delay + n]  # gap[k] = envelope[k - delay]
    waveform = speech_with_envelope(envelope)
    corr, lag = talking.av_correlation(talking.lip_gap(face(gap)), waveform)
    assert lag == delay
    assert corr > 0.97
    raw, _ = talking.av_correlation(gap, waveform, high_pass=False)
    assert raw > 0.97


def test_null_correlation_is_far_below_the_matched_one():
    n = 80
    gap = 0.03 + 0.1 * syllables(n, seed=1)
    matched, _ = talking.av_correlation(gap, speech_with_envelope(syllables(n, seed=1)))
    others = [speech_with_envelope(np.random.default_rng(s).random(n)) for s in range(5)]
    null = talking.null_av_correlation(gap, others)
    assert matched > 0.99
    assert -0.3 < null < 0.5


SEGMENTS = [
    talking.Segment(0.0, 0.4, "sil"),
    talking.Segment(0.4, 0.8, "bin"),  # onset frame 10
    talking.Segment(0.8, 1.2, "red"),
    talking.Segment(1.2, 1.6, "place"),  # onset frame 30
    talking.Segment(1.6, 2.0, "m"),  # the letter: /em/, no closure at its start
    talking.Segment(2.0, 2.4, "sil"),
]


def test_bilabial_words_and_phones():
    assert [
        w
        for w in ("bin", "blue", "by", "place", "please", "b", "p", "m", "white", "sil", "Mein")
        if talking.starts_bilabial(w)
    ] == [
        "bin",
        "blue",
        "by",
        "place",
        "please",
        "b",
        "p",
        "Mein",
    ]
    assert [
        p for p in ("p", "b", "m", "B", "p2", "m:", "w", "sil", "em") if talking.is_bilabial_phone(p)
    ] == [
        "p",
        "b",
        "m",
        "p2",
        "m:",
    ]
    np.testing.assert_allclose(talking.bilabial_onsets(SEGMENTS, phones=False), [0.4, 1.2])


def test_closure_rate_at_known_bilabial_onsets():
    onsets = talking.bilabial_onsets(SEGMENTS, phones=False)
    gap = np.full(60, 0.1)
    assert talking.closure_rate(gap, onsets) == 0.0  # never closes
    assert talking.closed_in_speech(gap, SEGMENTS) == 0.0
    gap[11] = 0.02  # one frame after the onset of "bin"
    gap[29] = 0.02  # one frame before that of "place"
    assert talking.closure_rate(gap, onsets) == 1.0
    # 2 of the 40 speech frames (10..49) are closed.
    assert talking.closed_in_speech(gap, SEGMENTS) == pytest.approx(2 / 40)
    gap[29] = 0.1
    gap[32] = 0.02  # two frames late: outside the window
    assert talking.closure_rate(gap, onsets) == 0.5
    assert talking.closure_rate(np.full(60, 0.02), onsets) == 1.0  # a mouth that never opens...
    assert talking.closed_in_speech(np.full(60, 0.02), SEGMENTS) == 1.0  # ...is closed all along
    assert talking.closure_rate(gap, np.array([5.0])) is None  # onset after the video
    stats = talking.talking_stats(face(gap), speech_with_envelope(syllables(60)), SEGMENTS)
    assert stats["onsets"] == 2 and stats["closure"] == 0.5


def test_psnr_outside_the_lower_face():
    rng = np.random.default_rng(0)
    identity = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    top, bottom, left, right = talking.lower_face_box(64)
    assert (top, bottom, left, right) == (35, 64, 10, 54)
    inside = np.repeat(identity[None], 3, 0)
    inside[:, top:bottom, left:right] = 255 - inside[:, top:bottom, left:right]
    assert talking.psnr_outside_lower_face(inside, identity) == talking.PSNR_CAP_DB
    outside = identity[None].astype(np.int16).copy()
    outside[0, :top] += np.where(outside[0, :top] < 128, 16, -16).astype(
        np.int16
    )  # every pixel above the box
    outside = outside.astype(np.uint8)
    num_outside = 64 * 64 - (bottom - top) * (right - left)
    mse = 16.0**2 * top * 64 / num_outside
    assert talking.psnr_outside_lower_face(outside, identity) == pytest.approx(10 * np.log10(255.0**2 / mse))


def test_drift_ratio():
    per_frame = np.concatenate([np.full(125, 0.1), np.full(500, 0.5), np.full(125, 0.15)])
    assert talking.drift_ratio(per_frame) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        talking.drift_ratio(np.ones(200))


GRID_ALIGN = """0 12250 sil
12250 19250 set
19250 27250 white
27250 30500 with
30500 36000 p
36000 43250 two
43250 55250 soon
55250 74500 sil
"""


def test_read_align_gives_the_word_timings(tmp_path):
    path = tmp_path / "swwp2s.align"
    path.write_text(GRID_ALIGN)
    segments = talking.read_align(str(path))
    assert [s.label for s in segments] == ["sil", "set", "white", "with", "p", "two", "soon", "sil"]
    assert segments[1] == talking.Segment(0.49, 0.77, "set")
    assert segments[4].start == pytest.approx(1.22) and segments[4].end == pytest.approx(1.44)
    assert not talking.is_phone_alignment(str(path))
    np.testing.assert_allclose(talking.bilabial_onsets(segments, phones=False), [1.22])
    out = tmp_path / "copy.phones.align"
    talking.write_align(str(out), segments)
    assert out.read_text() == GRID_ALIGN and talking.is_phone_alignment(str(out))
    bad = tmp_path / "bad.align"
    bad.write_text("0 100\n")
    with pytest.raises(ValueError, match="bad.align:1"):
        talking.read_align(str(bad))


def test_bundled_phone_alignment_agrees_with_grid_words():
    """pocketsphinx's phones of swwp2s start each word within 2 frames of GRID's own timings."""
    phones = talking.read_align(os.path.join(SAMPLES, "speech", "align", "grid_swwp2s.phones.align"))
    np.testing.assert_allclose(talking.bilabial_onsets(phones, phones=True), [1.25])
    starts = {0.49: "s", 0.77: "w", 1.09: "w", 1.22: "p", 1.44: "t", 1.73: "s"}  # GRID word onsets
    for t, first in starts.items():
        nearest = min((s for s in phones if s.label == first), key=lambda s: abs(s.start - t))
        assert abs(nearest.start - t) <= 2 / media.FPS


def test_real_grid_clip_talks():
    """swwp2s, aligned at 64 px like the benchmark: it moves, with the audio, and closes at "p"."""
    from dheads_jax.data import align
    from dheads_jax.metrics import landmarks

    path = os.path.join(SAMPLES, "grid", "swwp2s.mpg")
    frames, start = media.read_video(path)
    waveform, audio_start = media.read_audio(path)
    waveform = media.fit_waveform(media.shift_waveform(waveform, audio_start - start), len(frames))
    crops, _ = align.align_frames(frames, landmarks.video_landmarks(frames), 64, 2.0)
    segments = talking.read_align(os.path.join(SAMPLES, "speech", "align", "grid_swwp2s.phones.align"))
    stats = talking.talking_stats(landmarks.video_landmarks(crops), waveform, segments, phones=True)
    assert 0.03 < stats["gap_std"] < 0.08
    assert stats["av_corr"] > 0.4 and stats["av_lag"] in (-1, 0, 1)
    assert stats["onsets"] == 1 and stats["closure"] == 1.0
    assert stats["closed_in_speech"] < 0.3
    still = talking.talking_stats(
        landmarks.video_landmarks(crops[:1].repeat(75, 0)), waveform, segments, True
    )
    assert still["gap_std"] == 0.0 and still["av_corr"] == 0.0
