#!/usr/bin/env bash
# The test suite (README, second command; `.ci/run` calls exactly this): sets up the
# environment, then runs pytest. `--slow` runs only the slow checks; other arguments go to pytest
# (`-n 0` runs in one process). The test files are spread over one worker process per core, at
# most 4 (ALBERT_TEST_WORKERS overrides): one process keeps the cores only half busy, most
# tests being small TensorFlow graphs. A file stays in one worker, so its module fixtures are
# built once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
marker="not slow"
if [[ "${1:-}" == "--slow" ]]; then
  marker="slow"
  shift
fi
cores="$(nproc 2>/dev/null || echo 2)"
workers="${ALBERT_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}"
exec "$venv/bin/python" -m pytest -m "$marker" -p no:cacheprovider -n "$workers" --dist loadfile "$@"
