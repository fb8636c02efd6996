#!/usr/bin/env bash
# Retrains the default model that ships in the package (dheads_jax/bundled/default) from the
# bundled GRID clips (data/samples/grid_more), on this CPU:
#   prepare the clips (and export them as arrays) -> train configs/bundled.py -> sample and
#   evaluate the held-out GRID clips -> measure talking on the held-out photos and speech ->
#   install it with its provenance (command, commit, data and licence, figures) in export.json.
#   bash scripts/bundled_model.sh                 (OUT=bundled_output, SEED=0 by default)
#   SEED=1 OUT=bundled_seed1 INSTALL=0 bash scripts/bundled_model.sh    (another training seed)
# Bit for bit on one machine (same seed); figures vary across machines and seeds (README).
set -euo pipefail
source "$(dirname "$0")/env.sh" eval
OUT="${OUT:-bundled_output}"
SEED="${SEED:-0}"
INSTALL="${INSTALL:-1}"
export JAX_PLATFORMS=cpu

echo "== 1/5 prepare data/samples/grid_more (cached after the first run) and its arrays"
DATA="$("$PY" -m dheads_jax.data.cache --config=configs/bundled.py 2>/dev/null | tail -n 1)"
ARRAYS="$DATA.arrays"
[ -d "$ARRAYS" ] || "$PY" data/prepare.py --output_dir="$DATA" --arrays_dir="$ARRAYS"
echo "dataset: $DATA (arrays: $ARRAYS)"

echo "== 2/5 train configs/bundled.py, seed $SEED (the same batches from the arrays as from the TFRecords)"
"$PY" run_train.py --config=configs/bundled.py --workdir="$OUT/train" \
  --config.data.dataset_dir="$ARRAYS" --config.seed="$SEED"
EXPORT="$OUT/train/export"

echo "== 3/5 sample and evaluate the held-out GRID clips"
"$PY" run_sample.py --export="$EXPORT" --dataset="$DATA" --split=test --output_dir="$OUT/videos" --batch_size=2
"$PY" run_evaluate.py --generated="$OUT/videos" --reference="$DATA" --split=test --output="$OUT/report"

echo "== 4/5 talking: held-out photos x held-out speech, real GRID speakers, 30 s drift"
"$PY" -m benchmarks.talking --export="$EXPORT" --seeds=0 --output="$OUT/talking.txt" --figures="$OUT/figures"

if [ "$INSTALL" = 1 ]; then
  echo "== 5/5 install into dheads_jax/bundled/default"
  "$PY" scripts/install_bundled.py --export="$EXPORT" --report="$OUT/report/report.json" \
    --talking="$OUT/talking.txt" --seed="$SEED"
fi
