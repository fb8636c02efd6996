"""Makes the held-out photos and speech of benchmarks/talking.py (data/samples/photos, speech).

  python scripts/make_talking_samples.py --mahotas=DIR --openclipart=DIR --pocketsphinx_testdata=DIR \
      --cremad=DIR --grid_other=DIR [--pocketsphinx_python=PYTHON]

Run once by hand; the benchmark only reads what this writes. Inputs, all from packages:

* ``--mahotas``: the unpacked PyPI wheel of mahotas (``pip download --no-deps mahotas``,
  unzip): its demo photo ``mahotas/demos/data/luispedro.jpg``, copied byte for byte.
* ``--openclipart``: Debian's openclipart-svg unpacked (``apt-get download openclipart-svg;
  dpkg -x openclipart-svg_*.deb DIR``); two SVGs are rendered with ``rsvg-convert`` (Debian's
  librsvg2-bin) 600 px wide on white.
* ``--cremad``: a folder with CREMA-D clip 1001_DFA_NEU_XX.flv (its frame 0 is the photo).
* ``--grid_other``: a folder with the original GRID clips bbab8n.mpg, s16_bgal9n.mpg,
  s25_bbwx8n.mpg and s27_bbbp8n.mpg (speakers 2, 16, 25 and 27; GRID file names, the
  speaker prefixed where two speakers share one), for their phone alignments.
* ``--pocketsphinx_testdata``: Debian's pocketsphinx-testdata unpacked: two LibriVox clips
  of ``usr/share/pocketsphinx/test/data/librivox``.
* espeak-ng (Debian's espeak-ng 1.51) on the PATH and its library, for three sentences and
  their phoneme timings (from the library's phoneme events, synthesised with the same voice
  and text: the command line's WAV starts with the very same samples).
* ``--pocketsphinx_python``: a Python with ``pip install pocketsphinx`` (5.x) for the phone
  alignments of the English speech (scripts/align_speech.py); without it they are skipped.

Photos are cropped to a square of 2.2 face widths around dlib's face box (the whole image
where it is smaller) and saved at most 320 px as JPEG (quality 90); each must pass
``align.align_image``. Speech is 16 kHz mono; the noisy clip is LibriVox 0880 plus pink
noise (numpy seed 0) at 5 dB SNR (signal and noise power over the whole clip).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from PIL import Image  # noqa: E402

from dheads_jax import media  # noqa: E402
from dheads_jax.data import align, faces  # noqa: E402
from dheads_jax.metrics import talking  # noqa: E402

PHOTOS = os.path.join(ROOT, "data", "samples", "photos")
SPEECH = os.path.join(ROOT, "data", "samples", "speech")
ALIGN = os.path.join(SPEECH, "align")

flags.DEFINE_string("mahotas", None, "The unpacked mahotas wheel (its demo photo).", required=True)
flags.DEFINE_string("openclipart", None, "Debian's openclipart-svg unpacked (two SVGs).", required=True)
flags.DEFINE_string(
    "pocketsphinx_testdata", None, "Debian's pocketsphinx-testdata unpacked (LibriVox clips).", required=True
)
flags.DEFINE_string("cremad", None, "A folder with CREMA-D clip 1001_DFA_NEU_XX.flv.", required=True)
flags.DEFINE_string("grid_other", None, "A folder with the four original GRID clips.", required=True)
flags.DEFINE_string("pocketsphinx_python", None, "A Python with pocketsphinx (phone alignments).")
flags.DEFINE_bool("skip_photos", False, "Make the speech only.")
FLAGS = flags.FLAGS

ESPEAK = {
    "fr_espeak": ("fr", "Bonjour mon petit ami, puis-je boire un peu de bière?"),
    "de_espeak": ("de", "Mein Bruder bringt morgen Brot und Milch mit."),
    "es_espeak": ("es", "Mi papá compra pan bueno por la mañana."),
}
LIBRIVOX = {
    "en_librivox": ("sense_and_sensibility_01_austen_64kb-0930.wav", None),
    "en_librivox_noisy": ("sense_and_sensibility_01_austen_64kb-0880.wav", 5.0),
}
GRID_WORDS = dict(
    command=dict(b="bin", l="lay", p="place", s="set"),
    colour=dict(b="blue", g="green", r="red", w="white"),
    preposition=dict(a="at", b="by", i="in", w="with"),
    digit=dict(zip("z123456789", "zero one two three four five six seven eight nine".split(), strict=True)),
    adverb=dict(a="again", n="now", p="please", s="soon"),
)


def grid_sentence(code: str) -> str:
    """The words of a GRID clip from its 6-letter code (e.g. bbaf2n: bin blue at f two now)."""
    w = GRID_WORDS
    return " ".join(
        [w["command"][code[0]], w["colour"][code[1]], w["preposition"][code[2]], code[3]]
        + [w["digit"][code[4]], w["adverb"][code[5]]]
    )


# ------------------------------------------------------------------------------ photos


def face_crop(image: np.ndarray, scale: float = 2.2, max_side: int = 320) -> Image.Image:
    rect = faces.default_detector().detect(np.ascontiguousarray(image))
    if rect is None:
        raise SystemExit("no face found")
    cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    half = scale * max(rect.width(), rect.height()) / 2
    h, w = image.shape[:2]
    box = [int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half)]
    box = [max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])]
    out = Image.fromarray(image).crop(box)
    out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return out


def render_svg(path: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        png = os.path.join(tmp, "x.png")
        subprocess.run(["rsvg-convert", "-w", "600", "-b", "white", path, "-o", png], check=True)
        return np.asarray(Image.open(png).convert("RGB"))


def save_photo(image: Image.Image, name: str) -> None:
    path = os.path.join(PHOTOS, name)
    image.save(path, quality=90)
    check_photo(path)


def check_photo(path: str) -> None:
    align.align_image(media.read_identity_image(path), 64)  # raises NoFaceError
    print(f"{path}: {os.path.getsize(path) // 1024} KB, aligned")


def make_photos(args) -> None:
    src = os.path.join(args.mahotas, "mahotas", "demos", "data", "luispedro.jpg")
    shutil.copyfile(src, os.path.join(PHOTOS, "luis_pedro_coelho.jpg"))
    check_photo(os.path.join(PHOTOS, "luis_pedro_coelho.jpg"))
    svg = os.path.join(args.openclipart, "usr", "share", "openclipart", "svg", "people")
    save_photo(face_crop(render_svg(os.path.join(svg, "martin_luther_king_jr._h_02.svg"))), "mlk_vector.jpg")
    save_photo(face_crop(render_svg(os.path.join(svg, "man_face_darek_adamkiewi_01.svg"))), "cartoon_man.jpg")
    frame = media.read_identity_image(os.path.join(args.cremad, "1001_DFA_NEU_XX.flv"))
    save_photo(face_crop(frame), "cremad_1001.jpg")


# ------------------------------------------------------------------------------ speech


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)
_PHONEME, _END = 7, 5


_ESPEAK = {}


def _espeak():
    if not _ESPEAK:
        lib = ctypes.CDLL("libespeak-ng.so.1")
        rate = lib.espeak_Initialize(2, 0, None, 0x0001 | 0x8000)  # synchronous, phoneme events
        _ESPEAK.update(lib=lib, rate=rate)
    return _ESPEAK["lib"], _ESPEAK["rate"]


def espeak_phonemes(voice: str, text: str) -> tuple[np.ndarray, int, list[tuple[int, str]]]:
    """(int16 samples, rate, [(start sample, phoneme mnemonic)]) from libespeak-ng's events."""
    lib, rate = _espeak()
    chunks, events = [], []

    @_CALLBACK
    def callback(wav, n, ev):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while ev[i].type != 0:
            if ev[i].type == _PHONEME:
                events.append((ev[i].sample, bytes(ev[i].id).split(b"\0")[0].decode()))
            elif ev[i].type == _END:
                events.append((ev[i].sample, "_"))
            i += 1
        return 0

    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise SystemExit(f"espeak-ng has no voice {voice}")
    data = text.encode()
    lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)  # character positions, UTF-8
    lib.espeak_Synchronize()
    return np.concatenate(chunks), rate, events


def resample_16k(x: np.ndarray, rate: int) -> np.ndarray:
    import librosa

    return (
        x.astype(np.float32)
        if rate == 16000
        else librosa.resample(x.astype(np.float32), orig_sr=rate, target_sr=16000)
    )


def make_espeak(name: str, voice: str, text: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "x.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-w", wav, text], check=True)
        cli, rate = sf.read(wav, dtype="int16")
    # One process per voice: libespeak-ng keeps state from one synthesis to the next.
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "events.npz")
        subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--espeak_events", voice, text, npz], check=True
        )
        with np.load(npz) as z:
            lib_samples, lib_rate = z["samples"], int(z["rate"])
            events = list(zip(z["starts"].tolist(), z["labels"].tolist(), strict=True))
    if lib_rate != rate or not np.array_equal(cli[: len(lib_samples)], lib_samples[: len(cli)]):
        raise SystemExit(f"{name}: the library's speech differs from the command line's")
    out = os.path.join(SPEECH, name + ".wav")
    sf.write(out, resample_16k(cli / 32768.0, rate), 16000, subtype="PCM_16")
    duration = len(cli) / rate
    segments = [talking.Segment(0.0, events[0][0] / rate, "sil")] if events and events[0][0] > 0 else []
    for (start, label), (end, _) in zip(events[:-1], events[1:], strict=True):
        if end > start:
            segments.append(
                talking.Segment(start / rate, end / rate, "sil" if label.startswith("_") else label)
            )
    segments.append(talking.Segment(events[-1][0] / rate, duration, "sil"))
    talking.write_align(os.path.join(ALIGN, name + ".phones.align"), segments)
    print(f"{out}: {duration:.2f} s, {len(segments)} segments; espeak-ng -v {voice} -w OUT.wav {text!r}")
    return out


def pink_noise(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return x / x.std()


def make_librivox(name: str, source: str, snr_db: float | None) -> str:
    x, rate = sf.read(source, dtype="float32")
    if rate != 16000 or x.ndim != 1:
        raise SystemExit(f"{source}: expected 16 kHz mono")
    if snr_db is not None:
        noise = pink_noise(len(x)) * np.sqrt(np.mean(x.astype(np.float64) ** 2) / 10 ** (snr_db / 10))
        x = x + noise
        peak = np.abs(x).max()
        if peak > 0.99:
            x = x * (0.99 / peak)
    out = os.path.join(SPEECH, name + ".flac")
    sf.write(out, x, 16000, subtype="PCM_16")
    print(
        f"{out}: {len(x) / 16000:.2f} s" + (f", pink noise at {snr_db} dB SNR" if snr_db is not None else "")
    )
    return out


def transcript(testdata: str, wav_name: str) -> str:
    path = os.path.join(testdata, "usr", "share", "pocketsphinx", "test", "data", "librivox", "transcription")
    key = "(" + wav_name[: -len(".wav")] + ")"
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip().endswith(key):
                return line.replace("<s>", "").replace("</s>", "").replace(key, "").strip()
    raise SystemExit(f"{path}: no transcription of {wav_name}")


def make_speech(args) -> None:
    os.makedirs(ALIGN, exist_ok=True)
    for name, (voice, text) in ESPEAK.items():
        make_espeak(name, voice, text)
    librivox = os.path.join(
        args.pocketsphinx_testdata, "usr", "share", "pocketsphinx", "test", "data", "librivox"
    )
    english = []  # (name, 16 kHz waveform to align, transcript)
    for name, (wav, snr) in LIBRIVOX.items():
        make_librivox(name, os.path.join(librivox, wav), snr)
        clean, _ = sf.read(os.path.join(librivox, wav), dtype="float32")  # the noisy clip: its clean original
        english.append((name, clean, transcript(args.pocketsphinx_testdata, wav)))
    grid = [os.path.join(ROOT, "data", "samples", "grid", c + ".mpg") for c in ("bbaf2n", "swwp2s")]
    if args.grid_other and os.path.isdir(args.grid_other):
        grid += sorted(
            os.path.join(args.grid_other, f) for f in os.listdir(args.grid_other) if f.endswith(".mpg")
        )
    for path in grid:
        base = os.path.basename(path)[: -len(".mpg")]
        frames, start = media.read_video(path)
        waveform, audio_start = media.read_audio(path)
        waveform = media.fit_waveform(media.shift_waveform(waveform, audio_start - start), len(frames))
        english.append(("grid_" + base, waveform, grid_sentence(base.split("_")[-1])))
    if not args.pocketsphinx_python:
        print("no --pocketsphinx_python: English phone alignments skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, waveform, text in english:
            wav = os.path.join(tmp, name + ".wav")
            sf.write(wav, waveform, 16000, subtype="PCM_16")
            rows.append(f"{wav}\t{text}\t{os.path.join(ALIGN, name + '.phones.align')}\n")
        tsv = os.path.join(tmp, "list.tsv")
        with open(tsv, "w", encoding="utf-8") as f:
            f.writelines(rows)
        subprocess.run(
            [args.pocketsphinx_python, os.path.join(ROOT, "scripts", "align_speech.py"), tsv], check=True
        )


def write_espeak_events(voice: str, text: str, out: str) -> None:
    """One synthesis with its phoneme events, saved to ``out`` (.npz); run in a fresh process."""
    samples, rate, events = espeak_phonemes(voice, text)
    np.savez(out, samples=samples, rate=rate, starts=[e[0] for e in events], labels=[e[1] for e in events])


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.skip_photos:
        make_photos(FLAGS)
    make_speech(FLAGS)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--espeak_events"]:  # internal: make_espeak's child process
        write_espeak_events(*sys.argv[2:5])
    else:
        app.run(main)
