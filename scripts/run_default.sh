#!/usr/bin/env bash
# The main job on the embedded default (README, first command): sets up the environment, then
# runs the encoder pipeline on the tiny configuration and the original's golden checkpoint.
# Extra arguments are passed to `python -m albert.encoder_demo`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$venv/bin/python" -m albert.encoder_demo "$@"
