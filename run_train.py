"""Train Diffused Heads. A thin command over the dheads_jax library.

python run_train.py --config=configs/crema.py --describe
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from dheads_jax import describe

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
_DESCRIBE = flags.DEFINE_bool(
    "describe", False, "Print the model's size, FLOPs and memory without allocating it, then exit."
)
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _DESCRIBE.value:
        print(describe.format_description(describe.describe(_CONFIG.value)))
        return 0
    print("run_train.py: the training loop is not built yet; only --describe works.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    app.run(main)
