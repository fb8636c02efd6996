#!/usr/bin/env bash
# The test command: creates .venv (if missing), installs the package with its test
# extras, checks lint, formatting and the import layers, runs the test suite on CPU.
#   bash scripts/test.sh [extra pytest args]     e.g. -m "not slow" for a quick loop
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet -c constraints-cpu.txt -e ".[test,torch,eval,beam]"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/lint-imports"
export JAX_PLATFORMS=cpu
"$VENV/bin/python" -m pytest -n 2 --durations=15 "$@"
