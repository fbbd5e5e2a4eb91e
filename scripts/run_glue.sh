#!/usr/bin/env bash
# The GLUE recipe (the original's run_glue.sh, in one command): sets up the environment, then
# fine-tunes and evaluates every GLUE task from one checkpoint with the original's per-task
# hyper-parameters and writes the summary table and the submission folder. The logic is in
# scripts/run_glue.py; arguments go to it (relative paths are taken from the caller's directory).
#   bash scripts/run_glue.sh --model_dir=albert_base_v2 --data_dir=glue --output_dir=runs/glue
set -euo pipefail
caller="$PWD"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$caller"
exec "$venv/bin/python" "$repo/scripts/run_glue.py" "$@"
