#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and prints its path.
#
# The environment lives outside the work tree, in
#   ${ALBERT_VENV_ROOT:-$HOME/.cache/albert-tf2}/venv-<first 16 hex of sha256(requirements.txt)>
# so that a fresh clone reuses an environment built earlier on the same machine, and a
# change of requirements.txt builds a new one. A build that did not finish is never reused:
# the marker file `.complete` is written last, after an import check.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$repo/requirements.txt"
hash="$(sha256sum "$req" | cut -c1-16)"
root="${ALBERT_VENV_ROOT:-$HOME/.cache/albert-tf2}"
venv="$root/venv-$hash"
if [[ ! -f "$venv/.complete" ]]; then
  echo "setup: building the virtual environment $venv (a few minutes, once)" >&2
  rm -rf "$venv"
  mkdir -p "$root"
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
  # pip's notes about unreachable local index folders of this machine are filtered out.
  if ! "$venv/bin/python" -m pip install --quiet --upgrade pip \
         2> >(grep -v "^WARNING: Location" >&2); then
    echo "setup: upgrading pip failed" >&2; exit 1
  fi
  if ! "$venv/bin/python" -m pip install --quiet -r "$req" \
         2> >(grep -v "^WARNING: Location" >&2); then
    echo "setup: pip could not install $req (see above)" >&2; exit 1
  fi
  TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" -c \
    "import tensorflow, tf_keras, tensorflow_hub, tensorflow_text, official, sentencepiece
import safetensors, onnxruntime, tf2onnx, importlib.util
assert importlib.util.find_spec('apache_beam')" >&2
  touch "$venv/.complete"
  echo "setup: done" >&2
fi
echo "$venv"
