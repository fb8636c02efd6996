# The Python environment of the scripts, sourced (not run) by them:
#   source "$(dirname "$0")/env.sh" EXTRAS     EXTRAS: the package's extras, e.g. eval or test,data
# Goes to the repository root, creates the virtual environment $VENV (default .venv) where it
# is missing, installs the package into it (editable, with EXTRAS, under constraints-cpu.txt,
# quietly) and defines VENV and PY (its python).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet -c constraints-cpu.txt -e ".${1:+[$1]}"
