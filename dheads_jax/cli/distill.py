"""run_distill.py: an export distilled into a student that samples in a few DDIM steps."""

from __future__ import annotations

import sys

from absl import flags, logging

from dheads_jax.cli import start


def main(argv) -> int:
    start(argv)
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
