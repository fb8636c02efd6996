"""run_train.py: a training run (or, with --describe, the model's size and cost)."""

from __future__ import annotations

import sys

from absl import app, flags, logging

from dheads_jax import distributed
from dheads_jax.cli import start


def main(argv) -> int:
    start(argv, processes=False)
    f = flags.FLAGS
    if f.describe:
        from dheads_jax import describe

        print(describe.format_description(describe.describe(f.config)))
        return 0
    if not f.workdir:
        raise app.UsageError("--workdir is required to train")
    distributed.initialize()
    from dheads_jax.train import loop, runner

    try:
        loop.train(f.config, f.workdir)
    except runner.TrainingError as e:
        logging.error("%s", e)
        print(f"run_train.py: {e}", file=sys.stderr)
        return 1
    return 0
