"""Train Diffused Heads. A thin command over dheads_jax.train.loop.

  python run_train.py --config=configs/crema.py --describe
  python run_train.py --config=configs/grid_demo.py --workdir=/tmp/grid_demo
  python run_train.py --config=configs/crema.py --workdir=DIR --config.optim.lr=1e-4

Several processes (one per host): add --coordinator_address=HOST:PORT
--num_processes=N --process_id=I (or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID; on Cloud TPU jax.distributed finds them itself with --distributed).
Rerunning the same command continues from the latest checkpoint in --workdir.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from dheads_jax import distributed
from dheads_jax.progress import quiet_library_logs

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
_DESCRIBE = flags.DEFINE_bool(
    "describe", False, "Print the model's size, FLOPs and memory without allocating it, then exit."
)
distributed.define_flags()
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_library_logs()
    if _DESCRIBE.value:
        from dheads_jax import describe

        print(describe.format_description(describe.describe(_CONFIG.value)))
        return 0
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required to train")
    distributed.initialize()
    from dheads_jax.train import loop, runner

    try:
        loop.train(_CONFIG.value, _WORKDIR.value)
    except runner.TrainingError as e:
        logging.error("%s", e)
        print(f"run_train.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
