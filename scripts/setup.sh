#!/usr/bin/env bash
# Create .venv and install sptui into it. Safe to run again: it only installs what is missing.
#   SPTUI_EXTRAS=test   also install the test tools (pytest, ...)
#   SPTUI_TORCH=...     the torch requirement to install first (default torch==2.13.0; on a CPU-only
#                       machine with a local CPU wheel, pip takes that file instead of a multi-GB CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "sptui needs Python >= 3.11" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
.venv/bin/python -c 'import torch' 2>/dev/null || pip install "${SPTUI_TORCH:-torch==2.13.0}"
extras=${SPTUI_EXTRAS:-}
pip install -e ".${extras:+[$extras]}"
echo "sptui is installed in .venv (activate with: . .venv/bin/activate)"
