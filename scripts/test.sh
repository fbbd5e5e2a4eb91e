#!/usr/bin/env bash
# The test suite (README, second command; `.ci/run` calls exactly this): sets up the
# environment, then runs pytest. `--slow` runs only the slow checks; other arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
marker="not slow"
if [[ "${1:-}" == "--slow" ]]; then
  marker="slow"
  shift
fi
exec "$venv/bin/python" -m pytest -m "$marker" -p no:cacheprovider "$@"
