#!/usr/bin/env bash
# The accelerator plan: benchmarks/accelerator.py and the cuDNN attention test on a lent GPU
# whose image carries jax, flax, optax, orbax and torch but not ml_collections or pytest, in
# at most two calls. Each call runs from the repository root, writes under $OUT and prints
# a log; the JAX compilation cache (.jaxcache) makes a second call on a still-warm machine
# skip the compiles the first one did.
#
#   bash scripts/accelerator_plan.sh wheels      # here, once: the wheels to carry into .whl/ (0.6 MB)
#   bash scripts/accelerator_plan.sh 1           # on the device: carry [".whl"], timeout_s 560
#   bash scripts/accelerator_plan.sh 2           # on the device: the rows call 1 did not reach,
#                                                #   then the batch search (ROWS=... overrides)
#   OUT=/tmp/o ROWS=peak,train:2,sample:2,sample:2:cudnn,torch:2 BENCH_ARGS=--config=configs/test.py \
#     bash scripts/accelerator_plan.sh 1         # a dry run on a CPU
#
# What comes back under $OUT: env.txt (nvidia-smi, jax.print_environment_info, versions),
# accelerator_gpu.txt (the table, written row by row), rows.jsonl (the same rows as JSON),
# log.txt (per-row seconds and anything XLA printed), cudnn_test.txt (the bf16 cuDNN-vs-einsum
# test). Copy accelerator_gpu.txt to benchmarks/results/ with the command that made it.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS="ml_collections==1.1.0 pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 packaging"
CALL1="peak,train:10,sample:32,torch:10,train:32r,sample:32g,sample:1,sample:8,video:100,train:10:cudnn,sample:32:cudnn"
CALL2="train:32,train:64r,train:32r:dots_with_no_batch_dims_saveable,sample:32:dot_product,torch:10c,video:100:4"

if [ "${1:-}" = wheels ]; then
  mkdir -p .whl && python3 -m pip download --quiet --no-deps -d .whl $WHEELS && ls -la .whl
  exit
fi
OUT="${OUT:?set OUT to the folder whose files come back}"
python3 -m pip install --quiet --no-index --no-deps --no-compile --target "$PWD/.site" .whl/*.whl || exit 1
export PYTHONPATH="$PWD/.site:$PWD" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_PYTHON_CLIENT_MEM_FRACTION=0.92
export JAX_COMPILATION_CACHE_DIR="$PWD/.jaxcache" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
{
  nvidia-smi
  python3 -c 'import jax, flax, optax, numpy; jax.print_environment_info(); print("flax", flax.__version__, "optax", optax.__version__, "numpy", numpy.__version__)'
} > "$OUT/env.txt" 2>&1
case "${1:-}" in
  1) ROWS="${ROWS:-$CALL1}"; LIMIT="${LIMIT:-470}" ;;
  2) ROWS="${ROWS:-$CALL2}"; LIMIT="${LIMIT:-470}" ;;
  *) echo "usage: $0 wheels|1|2" >&2; exit 2 ;;
esac
# BENCH_ARGS: extra flags, e.g. "--config=configs/test.py" for a dry run on a CPU.
timeout "$LIMIT" python3 -m benchmarks.accelerator --rows="$ROWS" ${BENCH_ARGS:-} \
  --output="$OUT/accelerator_gpu_$1.txt" --jsonl="$OUT/rows.jsonl" 2>&1 | tee "$OUT/log_$1.txt"
echo "benchmark exit: ${PIPESTATUS[0]}" | tee -a "$OUT/log_$1.txt"
if [ "$1" = 1 ]; then
  timeout 60 python3 -m pytest -q -p no:cacheprovider tests/models/test_unet.py -k cudnn > "$OUT/cudnn_test.txt" 2>&1
  echo "cudnn test exit: $?" >> "$OUT/cudnn_test.txt"
fi
