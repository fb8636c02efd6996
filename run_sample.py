"""Sample talking-head videos from an export. A thin command over dheads_jax.generate.

One video:
  python run_sample.py --id_image=face.jpg --audio=speech.wav --output=out.mp4   # the bundled model
  python run_sample.py --export=EXPORT_DIR --id_image=face.jpg --audio=speech.wav \
      --output=out.mp4 [--steps=100] [--sampler=ddpm|ddim] [--seed=0] [--upscale=256]
A set (outputs that already exist are skipped, so an interrupted run resumes):
  python run_sample.py --export=EXPORT_DIR --manifest=jobs.csv       # id_image,audio,output
  python run_sample.py --export=EXPORT_DIR --dataset=DIR --split=test --output_dir=OUT
Export a training checkpoint:
  python run_sample.py --export_from=WORKDIR --export_to=EXPORT_DIR [--weights=ema|raw] [--export_dtype=bfloat16]

A set runs unchanged on several processes (one per host) with the flags of run_train.py:
--coordinator_address=HOST:PORT --num_processes=N --process_id=I, or --distributed. Each
process samples its share of the videos (balanced by length) on its own devices; process 0
writes one sample_report.json. Rerunning an interrupted set makes only what is missing.

Every field of the export's config.sampling can be overridden by a flag of the same name
(--steps, --sampler, --eta, --audio_guidance, --[no]shared_noise, --[no]stabilize,
--stabilize_every); unset flags keep the export's value. --checkpoint is an old name of
--export.

Outputs: .mp4 (H.264 25 fps with AAC audio), .npy (uint8 [T, H, W, 3]) or a folder of PNGs
(an output path without extension). Everything is written under a temporary name first.
"""

import sys

from absl import app, flags

from configs import default as default_config
from dheads_jax import bundled, distributed
from dheads_jax.progress import quiet_library_logs
from dheads_jax.sampling.options import OVERRIDABLE

flags.DEFINE_string(
    "export", None, "An export folder (run_train.py writes WORKDIR/export); default: the bundled model."
)
flags.DEFINE_alias("checkpoint", "export")
flags.DEFINE_string("id_image", None, "Identity: an image (any format) or a video (its first frame).")
flags.DEFINE_string("audio", None, "Speech: any audio file or a video with sound.")
flags.DEFINE_string("output", None, "Output .mp4, .npy, or folder for PNG frames.")
flags.DEFINE_string("audio_embeddings", None, "Precomputed [T, D] .npy for exports with an external encoder.")
flags.DEFINE_string("audio_encoder_file", None, "The authors' TorchScript SDA encoder (audio_encoder.pt).")
flags.DEFINE_string("manifest", None, "CSV with columns id_image, audio, output.")
flags.DEFINE_string("dataset", None, "A prepared dataset: identity = each clip's first frame.")
flags.DEFINE_string("split", "test", "Split of --dataset.")
flags.DEFINE_string("output_dir", None, "Where --dataset outputs go (<clip_id>.mp4).")
flags.DEFINE_integer("seed", 0, "Seed; a video's noise depends only on it and the video's index.")
flags.DEFINE_integer("batch_size", None, "Videos sampled together (default: the device count).")
flags.DEFINE_integer("upscale", None, "Resize frames to this size on output (the official demo uses 256).")
flags.DEFINE_string("export_from", None, "A training workdir to export.")
flags.DEFINE_string("export_to", None, "The export folder to write.")
flags.DEFINE_enum("weights", "auto", ["auto", "ema", "raw"], "Which parameters to export.")
flags.DEFINE_enum("export_dtype", "float32", ["float32", "bfloat16"], "Storage dtype of the export.")
flags.DEFINE_integer("step", None, "Checkpoint step to export (default: latest).")

SAMPLING_HELP = {
    "steps": "Denoising steps per frame.",
    "sampler": "ddpm (official), ddim, or dpmpp (DPM-Solver++(2M), deterministic, few steps).",
    "eta": "DDIM noise scale (0 is deterministic).",
    "audio_guidance": "[ours] classifier-free guidance scale on the audio, silence as the null; 1 is off.",
    "guidance_region": "[ours] guide only inside this box: top,bottom,left,right fractions of the frame.",
    "shared_noise": "[ours] every frame of a video starts from the same noise; off draws fresh noise per frame.",
    "stabilize": "Put the identity into the oldest motion slot every stabilize_every frames.",
    "stabilize_every": "Period of --stabilize in frames.",
}
DEFINE_BY_TYPE = {
    bool: flags.DEFINE_bool,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    tuple: flags.DEFINE_list,
}
for _name in OVERRIDABLE:
    _default = default_config.get_config().sampling[_name]
    DEFINE_BY_TYPE.get(type(_default), flags.DEFINE_string)(
        _name, None, f"{SAMPLING_HELP[_name]} Default: the export's sampling.{_name} (configs: {_default!r})."
    )
distributed.define_flags()
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_library_logs()
    distributed.initialize()
    from dheads_jax import generate

    try:
        if FLAGS.export_from:
            from dheads_jax.train import exporting

            if not FLAGS.export_to:
                raise app.UsageError("--export_from needs --export_to")
            path = exporting.export_from_workdir(
                FLAGS.export_from, FLAGS.export_to, FLAGS.weights, FLAGS.export_dtype, FLAGS.step
            )
            print(f"exported {FLAGS.export_from} to {path}")
            return 0
        export_dir = FLAGS.export
        if not export_dir:
            export_dir = bundled.default_export()
            print(f"run_sample.py: no --export given; using the bundled default model ({export_dir})")
        request = generate.Request(
            id_image=FLAGS.id_image,
            audio=FLAGS.audio,
            output=FLAGS.output,
            audio_embeddings=FLAGS.audio_embeddings,
            audio_encoder_file=FLAGS.audio_encoder_file,
            manifest=FLAGS.manifest,
            dataset=FLAGS.dataset,
            split=FLAGS.split,
            output_dir=FLAGS.output_dir,
        )
        overrides = {name: FLAGS[name].value for name in OVERRIDABLE}
        summary = generate.run(export_dir, request, overrides, FLAGS.seed, FLAGS.batch_size, FLAGS.upscale)
    except (*generate.EXPECTED_ERRORS, bundled.NoBundledModel) as e:
        print(f"run_sample.py: {e}", file=sys.stderr)
        return 1
    print(summary.message)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    app.run(main)
