"""Installs a trained export as the package's default model, with its provenance.

  python scripts/install_bundled.py --export=DIR/train/export --report=DIR/report/report.json \
      --talking=DIR/talking.txt --seed=0 [--teacher=EXPORT]

Called by scripts/bundled_model.sh. Copies the export to dheads_jax/bundled/default (through a
temporary name and a rename) and records in its export.json, under ``provenance.bundled``:
the command and commit that made it, the training data and its licence, the training seed,
the sampler (and the teacher of a distilled export), the evaluation suite's figures on the
held-out GRID clips and the talking table of the held-out photos and speech. Refuses an
export larger than the 20 MB the package allows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dheads_jax import bundled, export  # noqa: E402
from dheads_jax.sampling import SamplingOptions  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("export", None, "The export to install.", required=True)
flags.DEFINE_string("teacher", None, "The teacher's export, for a distilled student (for the record).")
flags.DEFINE_string(
    "report", None, "run_evaluate.py's report.json on the held-out GRID clips.", required=True
)
flags.DEFINE_string("talking", None, "benchmarks/talking.py's table for this export.", required=True)
flags.DEFINE_integer("seed", 0, "The training seed (config.seed).")

MAX_BYTES = 20 << 20
DATA = dict(
    clips="data/samples/grid_more: the 315 clips of the train split (GRID speakers s1, s4 and 11 more, "
    "3 s each at 25 fps; 311 prepared, 4 without a face in their first frame); 4 clips of 3 more "
    "speakers held out (test split)",
    licence="GRID audiovisual sentence corpus, CC BY 4.0. Attribution: M. Cooke, J. Barker, S. Cunningham "
    "and X. Shao, 'An audio-visual corpus for speech perception and automatic speech recognition', "
    "JASA 120(5), 2006 (data/samples/grid/README.md)",
)


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path) for f in names)


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode:
        return "unknown (not a git checkout)"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    )
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def main(argv):
    del argv
    size = folder_bytes(FLAGS.export)
    if size > MAX_BYTES:
        sys.exit(
            f"{FLAGS.export}: {size / 2**20:.1f} MB, more than the {MAX_BYTES >> 20} MB the package allows"
        )
    with open(os.path.join(FLAGS.export, "export.json"), encoding="utf-8") as f:
        meta = json.load(f)
    with open(FLAGS.report, encoding="utf-8") as f:
        report = json.load(f)
    with open(FLAGS.talking, encoding="utf-8") as f:
        talking = f.read().splitlines()
    options = SamplingOptions.from_config(export.config_from_meta(meta))
    record = dict(
        command="bash scripts/bundled_model.sh",
        commit=commit(),
        training_config="configs/bundled.py",
        seed=FLAGS.seed,
        data=DATA,
        sampling=dict(
            sampler=options.sampler,
            steps=options.steps,
            audio_guidance=options.audio_guidance,
            guidance_region=list(options.guidance_region),
            guidance_interval=list(options.guidance_interval),
            guidance_grey=options.guidance_grey,
            network_passes_per_frame=options.passes_per_frame(),
        ),
        held_out_grid=dict(clips=report.get("num_videos"), summary=report["summary"]),
        talking=talking,
        size_bytes=size,
    )
    if FLAGS.teacher:
        with open(os.path.join(FLAGS.teacher, "export.json"), encoding="utf-8") as f:
            teacher = json.load(f)
        record["teacher"] = dict(
            steps=teacher["provenance"].get("step"),
            sampler=teacher["config"]["sampling"]["sampler"],
            sampling_steps=teacher["config"]["sampling"]["steps"],
            audio_guidance=teacher["config"]["sampling"]["audio_guidance"],
        )
    meta["provenance"]["bundled"] = record
    target = bundled.DEFAULT_EXPORT
    tmp = f"{target}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(FLAGS.export, tmp)
    with open(os.path.join(tmp, "export.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    print(f"installed {FLAGS.export} ({size / 2**20:.1f} MB) as {target}")


if __name__ == "__main__":
    app.run(main)
