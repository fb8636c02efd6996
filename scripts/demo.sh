#!/usr/bin/env bash
# The whole product on the bundled GRID clips, on this CPU, in about an hour:
#   prepare the clips -> train configs/grid_demo.py -> export -> distil it into a 4-step
#   student -> sample the two held-out clips with the student (bbaf2n: a speaker never seen
#   in training; swwp2s: the speaker of pwij3p) -> evaluate them against the real videos
#   and two reference rows.
#   bash scripts/demo.sh              (OUT=demo_output by default)
#   DISTILL=0 bash scripts/demo.sh    (about 32 min: no student, the teacher's guided DDIM 10)
# The student (configs/grid_demo.py's distill block: one round 8 -> 4 steps, 1500 steps) keeps
# the teacher's lip sync and image quality at 4 network passes a frame instead of 20
# (docs/samplers/README.md has the measurements).
set -euo pipefail
source "$(dirname "$0")/env.sh" eval
OUT="${OUT:-demo_output}"
DISTILL="${DISTILL:-1}"
export JAX_PLATFORMS=cpu

N=$([ "$DISTILL" = 1 ] && echo 5 || echo 4)
echo "== 1/$N prepare data/samples/grid (cached after the first run)"
DATA="$("$PY" -m dheads_jax.data.cache --config=configs/grid_demo.py 2>/dev/null | tail -n 1)"
echo "dataset: $DATA"

echo "== 2/$N train configs/grid_demo.py (progress, loss curve and sample strips in $OUT/train)"
"$PY" run_train.py --config=configs/grid_demo.py --workdir="$OUT/train"
EXPORT="$OUT/train/export"

if [ "$DISTILL" = 1 ]; then
  echo "== 3/$N distil $EXPORT into a 4-step student ($OUT/student)"
  # the distill block of configs/grid_demo.py; extra flags (e.g. a shorter round) in DISTILL_FLAGS
  # shellcheck disable=SC2086
  "$PY" run_distill.py --teacher="$EXPORT" --workdir="$OUT/student" --config=configs/grid_demo.py \
    ${DISTILL_FLAGS:-}
  EXPORT="$OUT/student/export"
fi

echo "== $((N - 1))/$N sample the held-out test clips from $EXPORT"
"$PY" run_sample.py --export="$EXPORT" --dataset="$DATA" --split=test \
  --output_dir="$OUT/videos" --batch_size=2

echo "== $N/$N evaluate"
"$PY" run_evaluate.py --generated="$OUT/videos" --reference="$DATA" --split=test \
  --output="$OUT/report"

echo
echo "videos:      $OUT/videos/*.mp4"
echo "training:    $OUT/train/loss_curve.png, $OUT/train/samples/"
[ "$DISTILL" = 1 ] && echo "student:     $OUT/student/export (its losses in $OUT/student/metrics.csv)"
echo "report:      $OUT/report/report.md (report.json and PNG plots beside it)"
cat "$OUT/report/report.md"
