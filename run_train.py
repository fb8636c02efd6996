"""Train Diffused Heads. A thin command over dheads_jax.train.loop.

  python run_train.py --config=configs/crema.py --describe
  python run_train.py --config=configs/grid_demo.py --workdir=/tmp/grid_demo
  python run_train.py --config=configs/crema.py --workdir=DIR --config.optim.lr=1e-4

Several processes (one per host): add --coordinator_address=HOST:PORT
--num_processes=N --process_id=I (or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID; on Cloud TPU jax.distributed finds them itself with --distributed).
Rerunning the same command continues from the latest checkpoint in --workdir.
"""

from absl import app, flags
from ml_collections import config_flags

from dheads_jax import distributed
from dheads_jax.cli import train

config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.DEFINE_bool(
    "describe", False, "Print the model's size, FLOPs and memory without allocating it, then exit."
)
distributed.define_flags()
flags.mark_flags_as_required(["config"])

if __name__ == "__main__":
    app.run(train.main)
