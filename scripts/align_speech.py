"""Phone alignment of English speech to a known transcript, with PyPI's pocketsphinx 5.

  python scripts/align_speech.py LIST.tsv

Each line of LIST.tsv is ``wav<TAB>transcript<TAB>output``: a 16 kHz mono 16-bit WAV, its
words, and the ``.phones.align`` file to write (GRID's format: ``start end label`` lines in
units of 1/25000 s; labels are CMU ARPAbet phones in lower case, ``sil`` for silence).
Needs only the standard library and ``pip install pocketsphinx`` (its wheel carries the
US English acoustic model and dictionary), so it can run in a throw-away environment; the
project never imports it. Used by scripts/make_talking_samples.py.
"""

from __future__ import annotations

import sys
import wave

from pocketsphinx import Decoder

FRAME_S = 0.01  # pocketsphinx frames
UNITS = 25000


def align(raw: bytes, text: str) -> list[tuple[float, float, str]]:
    """(start s, end s, phone) of 16 kHz int16 ``raw`` forced onto ``text``."""
    decoder = Decoder(samprate=16000, bestpath=False, loglevel="FATAL")
    decoder.set_align_text(text)
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    out = []
    for word in decoder.get_alignment():
        for phone in word:
            label = "sil" if phone.name == "SIL" else phone.name.lower()
            out.append((phone.start * FRAME_S, (phone.start + phone.duration) * FRAME_S, label))
    return out


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for wav_path, text, out_path in rows:
        with wave.open(wav_path) as w:
            if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise SystemExit(f"{wav_path}: need 16 kHz mono 16-bit PCM")
            raw = w.readframes(w.getnframes())
        segments = align(raw, text)
        if not any(label != "sil" for _, _, label in segments):
            raise SystemExit(f"{wav_path}: pocketsphinx could not align {text!r}")
        with open(out_path, "w", encoding="utf-8") as f:
            f.writelines(f"{round(a * UNITS)} {round(b * UNITS)} {label}\n" for a, b, label in segments)
        print(f"wrote {out_path} ({len(segments)} phones)")


if __name__ == "__main__":
    main(sys.argv[1])
