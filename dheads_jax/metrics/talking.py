"""Does the face talk? Lip movement, its timing against the speech, lip closures, identity, drift.

Measures of ``benchmarks/talking.py``, for generated and real videos alike. All of them work
at 25 fps on 68-point landmarks (``landmarks.video_landmarks``) of aligned square crops.

- Lip gap (``lip_gap``): ``lipsync.mouth_opening``, the mean gap between the inner lips
  (points 61-67, 62-66, 63-65) divided by the distance of the outer eye corners (36, 45).
- Lip-gap std (``lip_gap_std``): the standard deviation over frames of the lip gap (the
  population std, ddof 0, NaN frames ignored): 0 for a still video.
- AV correlation (``av_correlation``): the lip gap against the audio RMS envelope
  (``lipsync.audio_envelope``: the RMS of each frame's 640 samples). Both signals are
  high-passed first (``lipsync.high_pass``: minus their centred 9-frame moving average, so
  the syllable-rate movement, not the slow speech / silence level, decides), then the
  Pearson correlation of gap[k] with envelope[k - d] is taken for every lag d in
  [-``MAX_LAG``, ``MAX_LAG``] = [-3, 3] frames; the result is the largest of these and its
  lag (positive: the lips move after the sound). A constant signal (a still video, silence)
  has no defined correlation: 0 and no lag. ``av_correlation(..., high_pass=False)`` is the
  same on the raw signals, a cross-check.
- Null AV correlation (``null_av_correlation``): the AV correlation of the video against
  the speech of other clips, its chance level: the largest of 7 correlations of unrelated
  signals is above 0 (about 0.15 for 70 frames).
- Bilabial onsets (``bilabial_onsets``) from a time alignment of the speech
  (``read_align``: GRID's ``.align`` format, one ``start end label`` line per segment in
  units of 1/25000 s). In a word alignment every word whose first sound is /b/, /p/ or /m/:
  it starts with the letter b, p or m, except the spelled letter "m" (/em/); GRID's
  vocabulary gives bin, blue, by, place, please and the letters b and p. In a phone
  alignment (files named ``*.phones.align``) every phone ``p``, ``b`` or ``m`` (CMU
  ARPAbet in lower case, or eSpeak NG's mnemonics, which are case-sensitive: eSpeak's
  ``B`` is the Spanish approximant, made without closing the lips, and does not count).
- Closure rate (``closure_rate``): the fraction of bilabial onsets at which the lips close:
  the smallest lip gap of the 3 frames centred on the onset's frame (round(t * 25) - 1 to
  + 1) is below ``CLOSURE_THRESHOLD`` = 0.045. Derivation of the window and the threshold: on
  40 real clips of GRID speaker s1 (every 7th of ``grid_more/s1``, with GRID's own word
  alignments; aligned 64 px crops as the benchmark makes them) the median lip gap around
  the 53 bilabial word onsets is smallest at the onset's frame (0.040) and rises to 0.047 /
  0.044 one frame before / after and 0.055 / 0.064 two frames away, hence the 3 frames; the
  smallest gap of that window is below 0.045 at 89 % of the onsets (its 90th percentile is
  0.046). 0.045 lies just above the closed-mouth mode of the lip gap over all their frames
  (0.03 to 0.04) and well below the median gap during speech (0.073); 15 % of the speech
  frames are below it.
- Closed in speech (``closed_in_speech``): the fraction of frames inside the aligned speech
  (segments that are not silence) whose lip gap is below the threshold: the chance level of
  the closure rate. A mouth that never opens scores 1 on both, one that never closes 0 on
  both; a talking mouth scores high on the first and low on the second (real s1 clips: about
  0.9 and 0.15).
- Identity PSNR outside the lower face (``psnr_outside_lower_face``): the PSNR of each
  frame against the aligned identity photo over the pixels outside ``lower_face_box``, a
  fixed box of the aligned crop, rows [0.55, 1.0) and columns [0.15, 0.85) of the side: in
  the aligned GRID frames the nose base (point 33) is at 0.59 down, the mouth (48-67) at
  0.37 to 0.63 across and 0.64 to 0.79 down, the lower jaw (points 2-14) at 0.18 to 0.80
  across and the chin at 0.88 down, so the box holds the mouth, jaw and chin of a speaking
  face whatever it does, and the PSNR sees the eyes, brows, nose, hair and background; the
  mean over frames.
- Drift ratio (``drift_ratio``): a per-frame distance to the identity (LPIPS in the
  benchmark), the mean over the last 5 s divided by that over the first 5 s.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from dheads_jax.media import FPS, SAMPLES_PER_FRAME
from dheads_jax.metrics import lipsync

MAX_LAG = 3
CLOSURE_THRESHOLD = 0.045
CLOSURE_WINDOW = (-1, 1)  # frames around the onset's frame, inclusive
ALIGN_UNITS = 25000  # GRID .align time units per second
SILENCE = frozenset({"sil", "sp", "<sil>", "sil>", "_", "_:", "_!", "_|", "||", "pau", "<s>", "</s>"})
BILABIAL_PHONES = frozenset({"p", "b", "m"})
LOWER_FACE_ROWS = (0.55, 1.0)
LOWER_FACE_COLS = (0.15, 0.85)
PSNR_CAP_DB = 100.0
WINDOW_S = 5


@dataclasses.dataclass(frozen=True)
class Segment:
    """One line of an alignment: ``label`` from ``start`` to ``end`` seconds."""

    start: float
    end: float
    label: str


def lip_gap(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over the outer eye-corner distance, float64 [T], of landmarks [T, 68, 2]."""
    return lipsync.mouth_opening(landmarks)


def lip_gap_std(gap: np.ndarray) -> float:
    """Population std over frames of the lip gap (NaN frames ignored; NaN without any)."""
    gap = np.asarray(gap, np.float64)
    gap = gap[np.isfinite(gap)]
    return float((gap - gap[0]).std()) if len(gap) else float("nan")  # exactly 0 when constant


def _constant(x: np.ndarray) -> bool:
    x = x[np.isfinite(x)]
    return len(x) < 2 or float(np.ptp(x)) < 1e-9


def av_correlation(
    gap: np.ndarray, waveform: np.ndarray, max_lag: int = MAX_LAG, high_pass: bool = True
) -> tuple[float, int | None]:
    """(correlation, lag) of the lip gap with the RMS envelope, both high-passed by default.

    Args:
      gap: [T] lip gap at 25 fps.
      waveform: float32 16 kHz mono, sample 0 at frame 0 (cut or padded to T frames).
      max_lag: lags searched, in frames, both ways.
      high_pass: subtract the 9-frame moving average of both signals first (``False``: the
        raw signals, as a cross-check).

    Returns:
      The largest Pearson correlation over lags in [-max_lag, max_lag] and its lag
      (positive: the lips late). (0.0, None) when either signal is constant; (NaN, None)
      when it is undefined (no landmarks, too few frames).
    """
    gap = np.asarray(gap, np.float64)
    if np.isfinite(gap).sum() < lipsync.MIN_OVERLAP:
        return float("nan"), None
    envelope = lipsync.audio_envelope(waveform, len(gap))
    if high_pass:
        stats = lipsync.sync_stats(gap, envelope, max_lag)
    else:
        curve = lipsync.lagged_correlation(gap, envelope, max_lag)
        flat = _constant(gap) or _constant(envelope)
        stats = dict(correlation=0.0 if flat else None, curve=curve, offset=None)
        if not flat and np.isfinite(curve).any():
            stats["offset"] = int(np.nanargmax(curve)) - max_lag
    if stats["offset"] is None:
        value = stats["correlation"]
        return (0.0, None) if value == 0.0 else (float("nan"), None)
    return float(stats["curve"][stats["offset"] + max_lag]), int(stats["offset"])


def null_av_correlation(gap: np.ndarray, others: list[np.ndarray], max_lag: int = MAX_LAG) -> float | None:
    """Chance level of ``av_correlation``: its mean against the speech of other clips.

    Each waveform of ``others`` (speech the video was not made from) and the gap are cut to
    the shorter of the two; the largest correlation over lags of noise is above 0 (about
    0.15 for 70 frames), so a video's AV correlation means something only above this.
    """
    values = []
    gap = np.asarray(gap, np.float64)
    for w in others:
        n = min(len(gap), len(w) // SAMPLES_PER_FRAME)
        corr, _ = av_correlation(gap[:n], w[: n * SAMPLES_PER_FRAME], max_lag)
        if np.isfinite(corr):
            values.append(corr)
    return float(np.mean(values)) if values else None


def read_align(path: str) -> list[Segment]:
    """Segments of a GRID-format alignment: ``start end label`` lines, times in 1/25000 s."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 3:
                raise ValueError(f"{path}:{n}: expected 'start end label', got {line.strip()!r}")
            start, end = int(parts[0]) / ALIGN_UNITS, int(parts[1]) / ALIGN_UNITS
            out.append(Segment(start, end, parts[2]))
    return out


def is_phone_alignment(path: str) -> bool:
    """Whether an alignment file holds phones (``*.phones.align``) rather than words."""
    return os.path.basename(path).endswith(".phones.align")


def write_align(path: str, segments: list[Segment]) -> None:
    """Writes segments in GRID's format (times rounded to 1/25000 s)."""
    lines = [f"{round(s.start * ALIGN_UNITS)} {round(s.end * ALIGN_UNITS)} {s.label}" for s in segments]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def starts_bilabial(word: str) -> bool:
    """Whether a word's first sound is /b/, /p/ or /m/ (by its spelling; the letter "m" is /em/)."""
    w = word.lower()
    return bool(w) and w[0] in "bpm" and w != "m" and w not in SILENCE


def is_bilabial_phone(label: str) -> bool:
    """Whether a phone label is p, b or m (stress digits and length marks dropped; case kept)."""
    return re.sub(r"[^A-Za-z]", "", label) in BILABIAL_PHONES


def bilabial_onsets(segments: list[Segment], phones: bool) -> np.ndarray:
    """Start times (s) of the bilabial words (``phones`` False) or phones (True)."""
    test = is_bilabial_phone if phones else starts_bilabial
    return np.array([s.start for s in segments if test(s.label)], np.float64)


def closure_rate(
    gap: np.ndarray,
    onsets: np.ndarray,
    threshold: float = CLOSURE_THRESHOLD,
    window: tuple[int, int] = CLOSURE_WINDOW,
) -> float | None:
    """Fraction of onsets whose window of frames holds a lip gap below ``threshold``.

    Args:
      gap: [T] lip gap at 25 fps.
      onsets: onset times in seconds; those whose window lies outside the video are dropped.
      threshold: the closure threshold (lip gap units).
      window: first and last frame offsets around round(onset * 25), inclusive.

    Returns:
      The rate in [0, 1], or None without any onset inside the video (or without landmarks).
    """
    gap = np.asarray(gap, np.float64)
    closed = []
    for t in np.asarray(onsets, np.float64):
        k = int(round(t * FPS))
        lo, hi = max(0, k + window[0]), min(len(gap), k + window[1] + 1)
        values = gap[lo:hi]
        values = values[np.isfinite(values)]
        if len(values):
            closed.append(bool(values.min() < threshold))
    return float(np.mean(closed)) if closed else None


def speech_frames(segments: list[Segment], num_frames: int) -> np.ndarray:
    """bool [T]: frames whose time k / 25 lies inside a segment that is not silence."""
    times = np.arange(num_frames) / FPS
    inside = np.zeros(num_frames, bool)
    for s in segments:
        if s.label.lower() not in SILENCE:
            inside |= (times >= s.start) & (times < s.end)
    return inside


def closed_in_speech(
    gap: np.ndarray, segments: list[Segment], threshold: float = CLOSURE_THRESHOLD
) -> float | None:
    """Fraction of speech frames (``speech_frames``) with a lip gap below ``threshold``."""
    gap = np.asarray(gap, np.float64)
    values = gap[speech_frames(segments, len(gap)) & np.isfinite(gap)]
    return float((values < threshold).mean()) if len(values) else None


def lower_face_box(size: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), half-open, of the lower-face box of an aligned size x size crop."""
    top, bottom = (int(round(f * size)) for f in LOWER_FACE_ROWS)
    left, right = (int(round(f * size)) for f in LOWER_FACE_COLS)
    return top, bottom, left, right


def psnr_outside_lower_face(frames: np.ndarray, identity: np.ndarray) -> float:
    """Mean over frames of the PSNR (dB, capped at 100) outside ``lower_face_box``.

    Args:
      frames: uint8 [T, S, S, 3].
      identity: uint8 [S, S, 3], the aligned identity.
    """
    frames = np.asarray(frames, np.float64)
    identity = np.asarray(identity, np.float64)
    size = identity.shape[0]
    top, bottom, left, right = lower_face_box(size)
    mask = np.ones(identity.shape[:2], bool)
    mask[top:bottom, left:right] = False
    err = ((frames - identity[None]) ** 2)[:, mask].reshape(len(frames), -1).mean(-1)
    psnr = 10 * np.log10(255.0**2 / np.maximum(err, 1e-12))
    return float(np.minimum(psnr, PSNR_CAP_DB).mean())


def drift_ratio(per_frame: np.ndarray, window_s: float = WINDOW_S, fps: int = FPS) -> float:
    """Mean of ``per_frame`` over the last ``window_s`` seconds over that of the first."""
    per_frame = np.asarray(per_frame, np.float64)
    n = int(round(window_s * fps))
    if len(per_frame) < 2 * n:
        raise ValueError(f"{len(per_frame)} frames, fewer than two windows of {n}")
    first = per_frame[:n].mean()
    return float(per_frame[-n:].mean() / first) if first > 0 else float("nan")


def talking_stats(
    landmarks: np.ndarray, waveform: np.ndarray, segments: list[Segment] | None = None, phones: bool = False
) -> dict:
    """The talking measures of one video.

    Args:
      landmarks: [T, 68, 2] of the video's aligned crops.
      waveform: its 16 kHz speech, sample 0 at frame 0.
      segments: an alignment of the speech, or None (closure measures None).
      phones: whether ``segments`` are phones.

    Returns:
      dict: gap [T], gap_std, av_corr, av_lag, av_corr_raw (the same without the high-pass),
      onsets (count), closure, closed_in_speech.
    """
    gap = lip_gap(landmarks)
    corr, lag = av_correlation(gap, waveform)
    raw, _ = av_correlation(gap, waveform, high_pass=False)
    out = dict(gap=gap, gap_std=lip_gap_std(gap), av_corr=corr, av_lag=lag, av_corr_raw=raw)
    if segments is None:
        return out | dict(onsets=0, closure=None, closed_in_speech=None)
    onsets = bilabial_onsets(segments, phones)
    onsets = onsets[np.round(onsets * FPS) < len(gap)]
    return out | dict(
        onsets=len(onsets),
        closure=closure_rate(gap, onsets),
        closed_in_speech=closed_in_speech(gap, segments),
    )
