"""run_distill.py: an export distilled into a student that samples in a few DDIM steps."""

from __future__ import annotations

import sys

from absl import app, flags, logging

from dheads_jax import distributed
from dheads_jax.progress import quiet_library_logs


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_library_logs()
    distributed.initialize()
    from dheads_jax import export
    from dheads_jax.train import distill, runner

    f = flags.FLAGS
    config = f.config
    if f.steps is not None:
        with config.unlocked():
            config.distill.student_steps = f.steps
    try:
        distill.distill(config, f.teacher, f.workdir)
    except (runner.TrainingError, export.ExportError) as e:
        logging.error("%s", e)
        print(f"run_distill.py: {e}", file=sys.stderr)
        return 1
    return 0
