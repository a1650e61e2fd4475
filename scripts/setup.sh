#!/usr/bin/env bash
# Create .venv and install the project with its dev tools. Idempotent: a stamp file skips finished work.
# Torch is installed first from the pinned CPU build; otherwise pip would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.installed
if [[ -f $stamp && $stamp -nt pyproject.toml ]]; then
  exit 0
fi
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev]'
touch "$stamp"
echo "setup: .venv ready"
