"""Several processes (one per host): start-up flags, barriers and gathering Python values.

Every command that can run on several processes (run_train.py, run_sample.py,
run_evaluate.py) takes the same flags: ``--coordinator_address=HOST:PORT
--num_processes=N --process_id=I`` (or the JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID variables), or ``--distributed`` where ``jax.distributed.initialize()``
finds its peers itself (Cloud TPU, SLURM).
"""

from __future__ import annotations

import os
import pickle
import socket

import jax
import numpy as np
from absl import flags


def define_flags() -> None:
    """The multi-process flags of a command (call once, at import time of the command)."""
    flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (several processes).")
    flags.DEFINE_integer("num_processes", None, "Number of processes (several processes).")
    flags.DEFINE_integer("process_id", None, "This process's index (several processes).")
    flags.DEFINE_bool(
        "distributed", False, "Call jax.distributed.initialize() with no arguments (TPU pods, SLURM)."
    )


def initialize() -> None:
    """jax.distributed.initialize when the flags or environment ask for several processes."""
    f = flags.FLAGS
    address = f.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    count = f.num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0") or 0)
    if f.distributed:
        jax.distributed.initialize()
    elif address and count > 1:
        index = f.process_id if f.process_id is not None else int(os.environ["JAX_PROCESS_ID"])
        if jax.config.jax_platforms in (None, "", "cpu"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(address, count, index)


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier of this name (nothing on one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"dheads_jax {name}")


def gather(value) -> list:
    """Every process's ``value`` (any picklable Python object), in process order, on every process.

    The values travel pickled, as uint8 arrays padded to the longest one, through one
    all-gather; on one process this is ``[value]``.
    """
    if jax.process_count() == 1:
        return [value]
    from jax.experimental import multihost_utils

    data = np.frombuffer(pickle.dumps(value), np.uint8)
    sizes = multihost_utils.process_allgather(np.array([data.size], np.int64))
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: data.size] = data
    everyone = multihost_utils.process_allgather(padded)
    return [pickle.loads(everyone[i, : int(sizes[i, 0])].tobytes()) for i in range(jax.process_count())]


def free_port() -> int:
    """A TCP port free on localhost now, for a coordinator of processes on this machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
