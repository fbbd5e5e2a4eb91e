#!/usr/bin/env bash
# The test suite (README, second command; `.ci/run` calls exactly this): sets up the
# environment, then runs pytest. `--slow` runs only the slow checks; other arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$repo/scripts/setup.sh")"
cd "$repo"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
marker="not slow"
if [[ "${1:-}" == "--slow" ]]; then
  marker="slow"
  shift
fi
exec "$venv/bin/python" -m pytest -m "$marker" -p no:cacheprovider "$@"
