#!/usr/bin/env bash
# Install nas and its test tools into ./.venv (created if missing). Idempotent.
# torch is pinned to 2.13.0 (the CPU wheel); an unpinned torch would pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
