"""How a model copes with faces it never saw: first-frame fidelity, grain and drift on held-out photos.

  python benchmarks/new_faces.py [--export=EXPORT]     # default: the bundled model
      [--sampler=ddim --steps=10 --eta=0 --audio_guidance=5]   # override the export's sampling

For every photo of data/samples/photos (portraits that are not GRID frames and were never
used in training) and every sampling seed:

* first frame: PSNR (dB) of the generated frame 0 against the aligned identity at the
  model's resolution. At frame 0 the model sees only the identity (its motion frames are the
  identity too), so it should nearly copy it;
* grain: the mean absolute Laplacian of the generated frames of a 3 s clip divided by that
  of the identity (1.0: as much fine detail as the photo; coloured grain drives it up);
* drift (``--long_seconds`` of speech: the audio of the bundled GRID clips joined): LPIPS
  of every frame to the identity, averaged per second; the last 5 s against the first 5 s.

Writes benchmarks/results/new_faces.txt (the table: mean and range over the seeds), and
into ``--figures``: new_faces_frames.png (a frame grid per photo: the aligned identity,
then frames 0, 0.5 s, 1 s, ... of the 3 s clip) and new_faces_drift.png (LPIPS per second).
"""

from __future__ import annotations

import glob
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from PIL import Image  # noqa: E402

from dheads_jax import bundled, generate, media  # noqa: E402
from dheads_jax.data import audio as audio_lib  # noqa: E402
from dheads_jax.imaging import to_uint8  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("export", None, "Export to measure (default: the bundled model).")
flags.DEFINE_string("photos", os.path.join(ROOT, "data", "samples", "photos"), "Folder of held-out photos.")
flags.DEFINE_string(
    "audio", os.path.join(ROOT, "data", "samples", "grid", "bbaf2n.mpg"), "Speech of the 3 s clip."
)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Sampling seeds.")
flags.DEFINE_integer("long_seconds", 30, "Seconds of joined speech for the drift study; 0 skips it.")
flags.DEFINE_string("out", os.path.join(ROOT, "benchmarks", "results", "new_faces.txt"), "Result table.")
flags.DEFINE_string("figures", os.path.join(ROOT, "docs", "bundled"), "Folder of the PNG figures.")
flags.DEFINE_enum("sampler", None, ["ddpm", "ddim", "dpmpp"], "Override the export's sampler.")
flags.DEFINE_integer("steps", None, "Override the export's steps per frame.")
flags.DEFINE_float("eta", None, "Override the export's DDIM eta.")
flags.DEFINE_float("audio_guidance", None, "Override the export's audio guidance.")

GRID_DIR = os.path.join(ROOT, "data", "samples", "grid")
WINDOW_S = 5


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def detail(frames: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of uint8 frames [..., H, W, 3]."""
    x = frames.astype(np.float64)
    lap = 4 * x[..., 1:-1, 1:-1, :] - x[..., :-2, 1:-1, :] - x[..., 2:, 1:-1, :] - x[..., 1:-1, :-2, :]
    lap = lap - x[..., 1:-1, 2:, :]
    return float(np.abs(lap).mean())


def long_speech(seconds: int) -> np.ndarray:
    """The bundled GRID clips' audio joined in name order, cut to ``seconds``."""
    parts = [media.read_audio(p)[0] for p in sorted(glob.glob(os.path.join(GRID_DIR, "*.mpg")))]
    waveform = np.concatenate(parts)
    need = seconds * media.SAMPLE_RATE
    if len(waveform) < need:
        raise ValueError(
            f"the bundled clips hold {len(waveform) / media.SAMPLE_RATE:.1f} s of speech, not {seconds}"
        )
    return waveform[:need]


def sample(sampler: generate.Sampler, identities: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """uint8 [V, T, S, S, 3] for V identities speaking the same audio."""
    jobs = [generate.Job(identity, embeddings, None, "", i) for i, identity in enumerate(identities)]
    out = np.zeros((len(jobs), len(embeddings)) + identities.shape[1:], np.uint8)
    start, last = time.time(), 0.0
    for k, frames, _ in sampler.frames(jobs):
        out[:, k] = frames
        if time.time() - last > 30:
            last = time.time()
            done = k + 1
            eta = (time.time() - start) / done * (len(embeddings) - done)
            logging.info(
                "frame %d/%d, %.2f frames/s, ETA %.0f s",
                done,
                len(embeddings),
                done / (time.time() - start),
                eta,
            )
    return out


def stats(values: list[float]) -> str:
    return f"{np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def main(argv):
    del argv
    from dheads_jax.metrics import perceptual

    export_dir = FLAGS.export or bundled.default_export()
    photos = sorted(
        glob.glob(os.path.join(FLAGS.photos, "*.jpg")) + glob.glob(os.path.join(FLAGS.photos, "*.png"))
    )
    seeds = [int(s) for s in FLAGS.seeds]
    overrides = dict(
        sampler=FLAGS.sampler, steps=FLAGS.steps, eta=FLAGS.eta, audio_guidance=FLAGS.audio_guidance
    )
    base = generate.Sampler.from_export(export_dir, overrides)
    size = base.image_size
    identities = np.stack([generate.load_identity(p, size) for p in photos])
    ident_u8 = to_uint8(identities)
    if base.encoder.mel is None:
        raise app.UsageError(f"{export_dir}: needs an export with the mel audio encoder")
    _, short_emb = generate.load_audio(FLAGS.audio, base.encoder)
    rows = {os.path.basename(p): dict(psnr=[], grain=[], drift=[], curves=[]) for p in photos}
    grids = {}
    timing = []
    for seed in seeds:
        sampler = generate.Sampler(base.config, base.params, base.meta, base.options, seed)
        t0 = time.time()
        clip = sample(sampler, identities, short_emb)
        timing.append(clip.shape[0] * clip.shape[1] / (time.time() - t0))
        for i, p in enumerate(photos):
            name = os.path.basename(p)
            rows[name]["psnr"].append(psnr(clip[i, 0], ident_u8[i]))
            rows[name]["grain"].append(detail(clip[i]) / detail(ident_u8[i][None]))
            if seed == seeds[0]:
                grids[name] = clip[i]
        if FLAGS.long_seconds:
            emb = audio_lib.encode_waveform(long_speech(FLAGS.long_seconds), base.encoder.mel)
            video = sample(sampler, identities, emb)
            for i, p in enumerate(photos):
                name = os.path.basename(p)
                target = np.broadcast_to(ident_u8[i], video[i].shape)
                per_frame = perceptual.lpips(video[i], np.ascontiguousarray(target))
                per_second = (
                    per_frame[: len(per_frame) // media.FPS * media.FPS].reshape(-1, media.FPS).mean(1)
                )
                rows[name]["curves"].append(per_second)
                first, last = per_second[:WINDOW_S].mean(), per_second[-WINDOW_S:].mean()
                rows[name]["drift"].append(float(last / first))

    lines = [
        "# benchmarks/new_faces.py",
        f"machine: {platform.machine()} {os.cpu_count()} cores; python {platform.python_version()}, jax {jax.__version__}",
        f"export: {os.path.relpath(export_dir, ROOT)} ({size} px; sampler {base.options.sampler}, "
        f"{base.options.steps} steps, eta {base.options.eta}, audio guidance {base.options.audio_guidance})",
        f"photos: {os.path.relpath(FLAGS.photos, ROOT)}; 3 s clip audio: {os.path.relpath(FLAGS.audio, ROOT)}; "
        f"seeds {seeds}: mean [min, max]; sampling {np.mean(timing):.2f} frames/s",
        "",
        f"{'photo':<20} {'first-frame PSNR dB':>26} {'grain (1 = photo)':>24} {'LPIPS last/first 5 s':>24}",
    ]
    for name, r in rows.items():
        drift = stats(r["drift"]) if r["drift"] else "-"
        lines.append(f"{name:<20} {stats(r['psnr']):>26} {stats(r['grain']):>24} {drift:>24}")
    all_psnr = [np.mean(r["psnr"]) for r in rows.values()]
    lines += ["", f"mean first-frame PSNR over the photos: {np.mean(all_psnr):.2f} dB (goal >= 26)"]
    if FLAGS.long_seconds:
        worst = max(max(r["drift"]) for r in rows.values())
        lines.append(f"worst LPIPS last-5-s / first-5-s ratio: {worst:.3f} (goal <= 1.10)")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(FLAGS.out), exist_ok=True)
    with open(FLAGS.out, "w", encoding="utf-8") as f:
        f.write(text)
    write_figures(ident_u8, grids, rows, size)


def write_figures(ident_u8, grids, rows, size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(FLAGS.figures, exist_ok=True)
    picks = list(range(0, 75, 12))
    lines = []
    for i, clip in enumerate(grids.values()):
        lines.append(np.concatenate([ident_u8[i]] + [clip[k] for k in picks if k < len(clip)], 1))
    grid = np.concatenate(lines, 0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(
        os.path.join(FLAGS.figures, "new_faces_frames.png")
    )
    if any(r["curves"] for r in rows.values()):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for name, r in rows.items():
            curves = np.stack(r["curves"])
            x = np.arange(1, curves.shape[1] + 1)
            ax.plot(x, curves.mean(0), label=name)
            ax.fill_between(x, curves.min(0), curves.max(0), alpha=0.2)
        ax.set_xlabel("second of video")
        ax.set_ylabel("LPIPS to the identity")
        ax.set_title(f"Drift on held-out photos ({size} px; mean and range over seeds)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(FLAGS.figures, "new_faces_drift.png"), dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    app.run(main)
