# Sourced by the other scripts: sets `repo` and `venv` (built or reused by setup.sh), enters
# the repository, and exports the environment every command of the project runs with.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$repo/scripts/setup.sh")"
cd "$repo"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
