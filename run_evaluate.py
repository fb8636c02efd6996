"""Evaluate generated talking-face videos against their ground truth. A thin command over dheads_jax.evaluate.

  python run_evaluate.py --generated=DIR --reference=DIR_OR_DATASET --output=DIR \
      [--split=test] [--fid_frames_per_video=16] [--fvd=true] [--fid=true]

``--reference`` is a prepared dataset (its ``--split`` clips are the ground truth, matched
by clip id) or a folder of videos. On several processes (the flags of run_train.py:
--coordinator_address/--num_processes/--process_id, or --distributed) each process
evaluates its share of the videos; process 0 merges them and writes the same report. Writes report.json, report.md and PNG plots into
``--output``; bad input is one line on stderr and exit status 1.
"""

import os
import sys

from absl import app, flags

from dheads_jax import distributed
from dheads_jax.progress import quiet_library_logs

flags.DEFINE_string("generated", None, "Folder of generated videos (searched recursively).")
flags.DEFINE_string("reference", None, "Prepared dataset folder or folder of ground-truth videos.")
flags.DEFINE_string("output", None, "Folder for report.json, report.md and the PNG plots.")
flags.DEFINE_string("split", "test", "Split of a prepared dataset --reference.")
flags.DEFINE_integer("fid_frames_per_video", 16, "Evenly spaced frames per video for FID (0: all).")
flags.DEFINE_bool("fvd", True, "Compute FVD (I3D on the CPU takes about 2 s per 16-frame clip).")
flags.DEFINE_bool("fid", True, "Compute FID (needs torch: pip install -e .[eval]).")
distributed.define_flags()
FLAGS = flags.FLAGS


def main(argv):
    quiet_library_logs()
    if len(argv) > 1:
        print(f"run_evaluate.py: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    missing = [n for n in ("generated", "reference", "output") if not getattr(FLAGS, n)]
    if missing:
        print(f"run_evaluate.py: --{', --'.join(missing)} required", file=sys.stderr)
        return 2
    distributed.initialize()
    from dheads_jax import evaluate

    try:
        result = evaluate.evaluate(
            FLAGS.generated,
            FLAGS.reference,
            FLAGS.output,
            FLAGS.split,
            fvd=FLAGS.fvd,
            fid=FLAGS.fid,
            fid_frames_per_video=FLAGS.fid_frames_per_video,
        )
    except evaluate.EvaluationError as e:
        print(f"run_evaluate.py: {e}", file=sys.stderr)
        return 1
    print(f"{result['num_videos']} videos evaluated; report: {os.path.join(FLAGS.output, 'report.md')}")
    for reason in result["not_computed"].values():
        print(reason)
    return 0


if __name__ == "__main__":
    app.run(main)
