#!/usr/bin/env bash
# The main job on the embedded default (README, first command): sets up the environment, then
# runs the whole main job on data/default (vocabulary, records, pretraining, eval, SST-2
# fine-tuning from the pretrained and from a random start, export).
# Extra arguments are passed to `python scripts/main_job.py`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$venv/bin/python" scripts/main_job.py "$@"
