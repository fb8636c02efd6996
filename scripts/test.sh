#!/usr/bin/env bash
# The test command: creates .venv (if missing), installs the package with its test
# extras, checks lint, formatting and the import layers, runs the test suite on CPU.
#   bash scripts/test.sh [extra pytest args]     e.g. -m "not slow" for a quick loop
set -euo pipefail
source "$(dirname "$0")/env.sh" test,data,eval,torch,beam,app
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "browser tests: will run in headless $(command -v chromium) with $(command -v chromedriver)"
else
  echo "browser tests: will be skipped (chromium/chromedriver not found; apt-get install chromium chromium-driver)"
fi
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/lint-imports"
export JAX_PLATFORMS=cpu
"$VENV/bin/python" -m pytest -n 2 --dist worksteal --durations=15 "$@"
