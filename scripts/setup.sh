#!/usr/bin/env bash
# Install jvp_cli with its test tools into the current Python environment (Python >= 3.10).
# torch comes first, as a CPU build where one is at hand: left to pip, the plain `torch>=2.2`
# requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  "$PY" -m pip install -q "torch==2.13.0" || "$PY" -m pip install -q "torch>=2.2"
fi
"$PY" -m pip install -q -e ".[test]"
