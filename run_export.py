"""Export a training checkpoint for inference. A thin command over dheads_jax.train.exporting.

  python run_export.py --workdir=WORKDIR --export=EXPORT_DIR [--weights=auto|ema|raw] \
      [--dtype=float32|bfloat16] [--step=N]

Writes the latest checkpoint of WORKDIR (or --step's) as an export, the folder that
run_sample.py --export, run_app.py --export and run_distill.py --teacher read; run_train.py
writes one of its last checkpoint to WORKDIR/export by itself. --weights=auto takes the EMA
parameters when the checkpoint has them. --export_from, --export_to and --export_dtype are
older names of --workdir, --export and --dtype (run_sample.py still takes them too). On
several processes: the flags of run_train.py.
"""

from absl import app, flags

from dheads_jax import distributed
from dheads_jax.cli import export

flags.DEFINE_string("workdir", None, "A training workdir to export.")
flags.DEFINE_string("export", None, "The export folder to write.")
flags.DEFINE_enum("weights", "auto", ["auto", "ema", "raw"], "Which parameters to export.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Storage dtype of the export.")
flags.DEFINE_integer("step", None, "Checkpoint step to export (default: latest).")
flags.DEFINE_alias("export_from", "workdir")
flags.DEFINE_alias("export_to", "export")
flags.DEFINE_alias("export_dtype", "dtype")
distributed.define_flags()
flags.mark_flags_as_required(["workdir", "export"])

if __name__ == "__main__":
    app.run(export.main)
