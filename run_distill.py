"""Distil an export into a student that samples in a few DDIM steps. A thin command over dheads_jax.train.distill.

  python run_distill.py --teacher=WORKDIR/export --workdir=DIR [--steps=4]
  python run_distill.py --teacher=EXPORT --workdir=DIR --config=configs/crema.py \
      --config.distill.steps_per_round=20000 --config.train.batch_size=64

Progressive distillation: halving rounds from the teacher's n0 = N * 2^k DDIM steps down to
N (--steps), each student step trained to match two of its teacher's, the teacher's audio
guidance distilled into the student's single pass. The network, its data and diffusion
settings come from the teacher export; the run (batch, optimiser, mesh, ``distill`` block,
dataset when --config names one) from --config. WORKDIR/export is an ordinary export:
``run_sample.py --export=WORKDIR/export`` samples it with N DDIM steps, one network pass each.

Rerunning the same command continues from the latest checkpoint in --workdir (SIGTERM saves
one at the next step boundary). Several processes: the flags of run_train.py.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from dheads_jax import distributed
from dheads_jax.cli import distill

config_flags.DEFINE_config_file(
    "config",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Config of the run (batch, optimiser, mesh, distill block); the network comes from --teacher.",
    lock_config=True,
)
flags.DEFINE_string("teacher", None, "The teacher export folder.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and the student export.")
flags.DEFINE_integer("steps", None, "The student's DDIM steps N (default: config.distill.student_steps).")
distributed.define_flags()
flags.mark_flags_as_required(["teacher", "workdir"])

if __name__ == "__main__":
    app.run(distill.main)
