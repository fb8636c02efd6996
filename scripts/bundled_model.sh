#!/usr/bin/env bash
# Retrains the default model that ships in the package (dheads_jax/bundled/default) from the
# bundled GRID clips, on this CPU:
#   train configs/bundled.py -> distil it to 4 one-pass DDIM steps -> sample and evaluate the
#   two held-out GRID clips -> measure it on the held-out photos -> install it with its
#   provenance (command, commit, data and licence, figures) in its export.json.
#   bash scripts/bundled_model.sh            (OUT=bundled_output by default)
# Bit for bit on one machine (same seeds); figures vary across machines (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
OUT="${OUT:-bundled_output}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet -c constraints-cpu.txt -e ".[eval]"
PY="$VENV/bin/python"
export JAX_PLATFORMS=cpu

echo "== 1/6 prepare data/samples/grid (cached after the first run)"
DATA="$("$PY" -m dheads_jax.data.cache --config=configs/bundled.py 2>/dev/null | tail -n 1)"
echo "dataset: $DATA"

echo "== 2/6 train the teacher, configs/bundled.py"
"$PY" run_train.py --config=configs/bundled.py --workdir="$OUT/train"

echo "== 3/6 distil it into a 4-step student"
"$PY" run_distill.py --teacher="$OUT/train/export" --workdir="$OUT/distill" --config=configs/bundled.py

echo "== 4/6 sample and evaluate the held-out GRID clips"
"$PY" run_sample.py --export="$OUT/distill/export" --dataset="$DATA" --split=test \
  --output_dir="$OUT/videos" --batch_size=2
"$PY" run_evaluate.py --generated="$OUT/videos" --reference="$DATA" --split=test --output="$OUT/report"

echo "== 5/6 held-out photos: first frame, grain, 30 s drift"
"$PY" benchmarks/new_faces.py --export="$OUT/distill/export" --out="$OUT/new_faces.txt" \
  --figures="$OUT/figures"

echo "== 6/6 install into dheads_jax/bundled/default"
"$PY" scripts/install_bundled.py --export="$OUT/distill/export" --teacher="$OUT/train/export" \
  --report="$OUT/report/report.json" --new_faces="$OUT/new_faces.txt"
