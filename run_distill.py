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
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from dheads_jax import distributed
from dheads_jax.progress import quiet_library_logs

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Config of the run (batch, optimiser, mesh, distill block); the network comes from --teacher.",
    lock_config=True,
)
_TEACHER = flags.DEFINE_string("teacher", None, "The teacher export folder.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and the student export.")
_STEPS = flags.DEFINE_integer(
    "steps", None, "The student's DDIM steps N (default: config.distill.student_steps)."
)
distributed.define_flags()
flags.mark_flags_as_required(["teacher", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_library_logs()
    distributed.initialize()
    from dheads_jax import export
    from dheads_jax.train import distill, runner

    config = _CONFIG.value
    if _STEPS.value is not None:
        with config.unlocked():
            config.distill.student_steps = _STEPS.value
    try:
        distill.distill(config, _TEACHER.value, _WORKDIR.value)
    except (runner.TrainingError, export.ExportError) as e:
        logging.error("%s", e)
        print(f"run_distill.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
