#!/usr/bin/env bash
# The whole product on the bundled GRID clips, on this CPU, in about half an hour:
#   prepare the clips -> train configs/grid_demo.py -> export -> sample the two held-out
#   clips (bbaf2n: a speaker never seen in training; swwp2s: the speaker of pwij3p)
#   -> evaluate them against the real videos and two reference rows.
#   bash scripts/demo.sh            (OUT=demo_output by default)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
OUT="${OUT:-demo_output}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet -c constraints-cpu.txt -e ".[eval]"
PY="$VENV/bin/python"
export JAX_PLATFORMS=cpu

echo "== 1/4 prepare data/samples/grid (cached after the first run)"
DATA="$("$PY" -m dheads_jax.data.cache --config=configs/grid_demo.py 2>/dev/null | tail -n 1)"
echo "dataset: $DATA"

echo "== 2/4 train configs/grid_demo.py (progress, loss curve and sample strips in $OUT/train)"
"$PY" run_train.py --config=configs/grid_demo.py --workdir="$OUT/train"

echo "== 3/4 sample the held-out test clips from $OUT/train/export"
"$PY" run_sample.py --export="$OUT/train/export" --dataset="$DATA" --split=test \
  --output_dir="$OUT/videos" --batch_size=2

echo "== 4/4 evaluate"
"$PY" run_evaluate.py --generated="$OUT/videos" --reference="$DATA" --split=test \
  --output="$OUT/report"

echo
echo "videos:      $OUT/videos/*.mp4"
echo "training:    $OUT/train/loss_curve.png, $OUT/train/samples/"
echo "report:      $OUT/report/report.md (report.json and PNG plots beside it)"
cat "$OUT/report/report.md"
