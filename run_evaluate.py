"""Evaluate generated talking-face videos against their ground truth. A thin command over dheads_jax.evaluate.

  python run_evaluate.py --generated=DIR --reference=DIR_OR_DATASET --output=DIR \
      [--split=test] [--fid_frames_per_video=16] [--fvd=true] [--fid=true]

``--reference`` is a prepared dataset (its ``--split`` clips are the ground truth, matched
by clip id) or a folder of videos. On several processes (the flags of run_train.py:
--coordinator_address/--num_processes/--process_id, or --distributed) each process
evaluates its share of the videos; process 0 merges them and writes the same report. Writes report.json, report.md and PNG plots into
``--output``; bad input is one line on stderr and exit status 1.
"""

from absl import app, flags

from dheads_jax import distributed
from dheads_jax.cli import evaluate

flags.DEFINE_string("generated", None, "Folder of generated videos (searched recursively).")
flags.DEFINE_string("reference", None, "Prepared dataset folder or folder of ground-truth videos.")
flags.DEFINE_string("output", None, "Folder for report.json, report.md and the PNG plots.")
flags.DEFINE_string("split", "test", "Split of a prepared dataset --reference.")
flags.DEFINE_integer("fid_frames_per_video", 16, "Evenly spaced frames per video for FID (0: all).")
flags.DEFINE_bool("fvd", True, "Compute FVD (I3D on the CPU takes about 2 s per 16-frame clip).")
flags.DEFINE_bool("fid", True, "Compute FID (needs torch: pip install -e .[eval]).")
distributed.define_flags()

if __name__ == "__main__":
    app.run(evaluate.main)
