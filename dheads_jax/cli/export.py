"""run_export.py: a training checkpoint of a workdir written as an inference export.

run_sample.py's older flags ``--export_from``, ``--export_to``, ``--weights``,
``--export_dtype`` and ``--step`` do the same through ``export_workdir``.
"""

from __future__ import annotations

import sys

from absl import flags

from dheads_jax.cli import start


def export_workdir(
    command: str, workdir: str, export_dir: str, weights: str, dtype: str, step: int | None
) -> int:
    """Exports a checkpoint of ``workdir`` to ``export_dir``; returns the exit status.

    Prints ``exported WORKDIR to EXPORT_DIR``, or one line ``command: problem`` on stderr
    (no checkpoint, EMA asked of a checkpoint without it) and returns 1.
    """
    from dheads_jax import export
    from dheads_jax.train import exporting

    try:
        path = exporting.export_from_workdir(workdir, export_dir, weights, dtype, step)
    except export.ExportError as e:
        print(f"{command}: {e}", file=sys.stderr)
        return 1
    print(f"exported {workdir} to {path}")
    return 0


def main(argv) -> int:
    start(argv)
    f = flags.FLAGS
    return export_workdir("run_export.py", f.workdir, f.export, f.weights, f.dtype, f.step)
