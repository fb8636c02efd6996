"""run_evaluate.py: generated videos against their ground truth, a report written."""

from __future__ import annotations

import os
import sys

from absl import flags

from dheads_jax import distributed
from dheads_jax.progress import quiet_library_logs


def main(argv) -> int:
    quiet_library_logs()
    f = flags.FLAGS
    if len(argv) > 1:
        print(f"run_evaluate.py: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    missing = [n for n in ("generated", "reference", "output") if not getattr(f, n)]
    if missing:
        print(f"run_evaluate.py: --{', --'.join(missing)} required", file=sys.stderr)
        return 2
    distributed.initialize()
    from dheads_jax import evaluate

    try:
        result = evaluate.evaluate(
            f.generated,
            f.reference,
            f.output,
            f.split,
            fvd=f.fvd,
            fid=f.fid,
            fid_frames_per_video=f.fid_frames_per_video,
        )
    except evaluate.EvaluationError as e:
        print(f"run_evaluate.py: {e}", file=sys.stderr)
        return 1
    print(f"{result['num_videos']} videos evaluated; report: {os.path.join(f.output, 'report.md')}")
    for reason in result["not_computed"].values():
        print(reason)
    return 0
