"""Sample talking-head videos from an export. A thin command over dheads_jax.generate.

One video:
  python run_sample.py --id_image=face.jpg --audio=speech.wav --output=out.mp4   # the bundled model
  python run_sample.py --export=EXPORT_DIR --id_image=face.jpg --audio=speech.wav \
      --output=out.mp4 [--steps=100] [--sampler=ddpm|ddim] [--seed=0] [--upscale=256]
A set (outputs that already exist are skipped, so an interrupted run resumes):
  python run_sample.py --export=EXPORT_DIR --manifest=jobs.csv       # id_image,audio,output
  python run_sample.py --export=EXPORT_DIR --dataset=DIR --split=test --output_dir=OUT
A training checkpoint is exported by run_export.py (--export_from/--export_to/--weights/
--export_dtype/--step here are its older spelling and do the same).

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

from absl import app, flags

from dheads_jax import distributed
from dheads_jax.cli import sample

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
# run_export.py under its older flag names:
flags.DEFINE_string("export_from", None, "A training workdir to export.")
flags.DEFINE_string("export_to", None, "The export folder to write.")
flags.DEFINE_enum("weights", "auto", ["auto", "ema", "raw"], "Which parameters to export.")
flags.DEFINE_enum("export_dtype", "float32", ["float32", "bfloat16"], "Storage dtype of the export.")
flags.DEFINE_integer("step", None, "Checkpoint step to export (default: latest).")
sample.define_sampling_flags()
flags.adopt_module_key_flags(sample)  # in --help beside the flags above
distributed.define_flags()

if __name__ == "__main__":
    app.run(sample.main)
