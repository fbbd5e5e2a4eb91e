#!/usr/bin/env bash
# The main job on the embedded default (README, first command): sets up the environment, then
# runs the encoder pipeline on the tiny configuration and the original's golden checkpoint.
# Extra arguments are passed to `python -m albert.encoder_demo`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$repo/scripts/setup.sh")"
cd "$repo"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$venv/bin/python" -m albert.encoder_demo "$@"
