"""Sample talking-head videos from an export. A thin command over dheads_jax.generate.

One video:
  python run_sample.py --checkpoint=EXPORT_DIR --id_image=face.jpg --audio=speech.wav \
      --output=out.mp4 [--steps=100] [--sampler=ddpm|ddim] [--seed=0] [--upscale=256]
A set (outputs that already exist are skipped, so an interrupted run resumes):
  python run_sample.py --checkpoint=EXPORT_DIR --manifest=jobs.csv       # id_image,audio,output
  python run_sample.py --checkpoint=EXPORT_DIR --dataset=DIR --split=test --output_dir=OUT
Export a training checkpoint:
  python run_sample.py --export_from=WORKDIR --export_to=EXPORT_DIR [--weights=ema|raw] [--export_dtype=bfloat16]

Outputs: .mp4 (H.264 25 fps with AAC audio), .npy (uint8 [T, H, W, 3]) or a folder of PNGs
(an output path without extension). Everything is written under a temporary name first.
"""

import json
import os
import sys

from absl import app, flags, logging

flags.DEFINE_string("checkpoint", None, "An export folder (run_train.py writes WORKDIR/export).")
flags.DEFINE_string("id_image", None, "Identity: an image (any format) or a video (its first frame).")
flags.DEFINE_string("audio", None, "Speech: any audio file or a video with sound.")
flags.DEFINE_string("output", None, "Output .mp4, .npy, or folder for PNG frames.")
flags.DEFINE_string("audio_embeddings", None, "Precomputed [T, D] .npy for exports with an external encoder.")
flags.DEFINE_string("audio_encoder_file", None, "The authors' TorchScript SDA encoder (audio_encoder.pt).")
flags.DEFINE_string("manifest", None, "CSV with columns id_image, audio, output.")
flags.DEFINE_string("dataset", None, "A prepared dataset: identity = each clip's first frame.")
flags.DEFINE_string("split", "test", "Split of --dataset.")
flags.DEFINE_string("output_dir", None, "Where --dataset outputs go (<clip_id>.mp4).")
flags.DEFINE_integer("steps", None, "Denoising steps per frame (default: the export's sampling.steps).")
flags.DEFINE_enum("sampler", None, ["ddpm", "ddim"], "ddpm (official) or ddim.")
flags.DEFINE_float("eta", None, "DDIM noise scale.")
flags.DEFINE_float(
    "audio_guidance",
    None,
    "[ours] classifier-free guidance scale on the audio, silence as the null (default: the export's "
    "sampling.audio_guidance; 1 is off, as the official sampler).",
)
flags.DEFINE_bool(
    "shared_noise",
    None,
    "[ours] every frame of a video starts from the same noise (default: the export's "
    "sampling.shared_noise; off, as the official sampler, draws fresh noise per frame).",
)
flags.DEFINE_integer("seed", 0, "Seed; a video's noise depends only on it and the video's index.")
flags.DEFINE_integer("batch_size", None, "Videos sampled together (default: the device count).")
flags.DEFINE_integer("upscale", None, "Resize frames to this size on output (the official demo uses 256).")
flags.DEFINE_string("export_from", None, "A training workdir to export.")
flags.DEFINE_string("export_to", None, "The export folder to write.")
flags.DEFINE_enum("weights", "auto", ["auto", "ema", "raw"], "Which parameters to export.")
flags.DEFINE_enum("export_dtype", "float32", ["float32", "bfloat16"], "Storage dtype of the export.")
flags.DEFINE_integer("step", None, "Checkpoint step to export (default: latest).")
FLAGS = flags.FLAGS


def single_job(s, generate):
    if not (FLAGS.id_image and FLAGS.audio and FLAGS.output):
        raise app.UsageError("one video needs --id_image, --audio and --output")
    identity = generate.load_identity(FLAGS.id_image, s.image_size)
    waveform, emb = generate.load_audio(FLAGS.audio, s.meta, FLAGS.audio_embeddings, FLAGS.audio_encoder_file)
    from dheads_jax import video_io

    video_io.check_writable(FLAGS.output)
    return [generate.Job(identity, emb, waveform, FLAGS.output, 0)], []


def manifest_jobs(s, generate):
    jobs, report = [], []
    for row in generate.read_manifest(FLAGS.manifest):
        if os.path.exists(row["output"]):
            report.append(dict(output=row["output"], status="exists, skipped"))
            continue
        try:
            identity = generate.load_identity(row["id_image"], s.image_size)
            waveform, emb = generate.load_audio(row["audio"], s.meta)
            jobs.append(generate.Job(identity, emb, waveform, row["output"], row["row"]))
        except generate.InputError as e:
            logging.error("%s", e)
            report.append(dict(output=row["output"], status="failed", reason=str(e)))
    return jobs, report


def dataset_jobs(s, generate):
    from dheads_jax.data import reader

    if not FLAGS.output_dir:
        raise app.UsageError("--dataset needs --output_dir")
    jobs, report = [], []
    for i, clip in enumerate(reader.load_clips(FLAGS.dataset, FLAGS.split)):
        out = os.path.join(FLAGS.output_dir, clip.clip_id + ".mp4")
        if os.path.exists(out):
            report.append(dict(output=out, status="exists, skipped"))
            continue
        if clip.frames.shape[1] != s.image_size or clip.audio.shape[1] != s.meta["audio_encoder"]["dim"]:
            raise generate.InputError(
                f"{FLAGS.dataset}: clips are {clip.frames.shape[1]} px with D={clip.audio.shape[1]}, the export needs "
                f"{s.image_size} px with D={s.meta['audio_encoder']['dim']}"
            )
        os.makedirs(os.path.dirname(out), exist_ok=True)
        identity = clip.frames[0].astype("float32") / 127.5 - 1.0
        jobs.append(generate.Job(identity, clip.audio, clip.waveform, out, i))
    return jobs, report


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from dheads_jax import export, generate, parallel, video_io

    try:
        if FLAGS.export_from:
            if not FLAGS.export_to:
                raise app.UsageError("--export_from needs --export_to")
            path = generate.export_from_workdir(
                FLAGS.export_from, FLAGS.export_to, FLAGS.weights, FLAGS.export_dtype, FLAGS.step
            )
            print(f"exported {FLAGS.export_from} to {path}")
            return 0
        if not FLAGS.checkpoint:
            raise app.UsageError("--checkpoint (an export folder) is required")
        import jax

        mesh = parallel.make_mesh() if jax.device_count() > 1 else None
        s = generate.Sampler.from_export(
            FLAGS.checkpoint,
            FLAGS.steps,
            FLAGS.sampler,
            FLAGS.eta,
            FLAGS.seed,
            mesh,
            FLAGS.audio_guidance,
            FLAGS.shared_noise,
        )
        if FLAGS.manifest:
            jobs, report = manifest_jobs(s, generate)
        elif FLAGS.dataset:
            jobs, report = dataset_jobs(s, generate)
        else:
            jobs, report = single_job(s, generate)
        written = s.run(jobs, FLAGS.batch_size or jax.device_count(), FLAGS.upscale)
    except (generate.InputError, export.ExportError, video_io.MediaError) as e:
        print(f"run_sample.py: {e}", file=sys.stderr)
        return 1
    report += [dict(output=p, status="written") for p in written]
    failed = [r for r in report if r["status"] == "failed"]
    if FLAGS.manifest or FLAGS.dataset:
        folder = FLAGS.output_dir or os.path.dirname(os.path.abspath(FLAGS.manifest))
        path = os.path.join(folder, "sample_report.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        os.replace(path + ".tmp", path)
        print(
            f"{len(written)} written, {len(report) - len(written) - len(failed)} skipped, {len(failed)} failed; {path}"
        )
    else:
        print(f"wrote {written[0]}")
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
