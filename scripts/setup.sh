#!/usr/bin/env bash
# Install jvp_cli with its test tools (Python >= 3.10), saying what it does.
#
# Where no virtual environment is active, it creates one in .venv (Debian's and Ubuntu's
# system Python refuse `pip install`: "externally managed") and installs there; run the tool
# as .venv/bin/vjp, or `. .venv/bin/activate` first. An active venv (or conda env) is used
# as it is, and .venv is made a link to it, so .venv/bin/vjp works the same either way.
# PYTHON picks the interpreter that creates .venv (default python3).
#
# torch, where it is missing: a CPU build. A plain `pip install torch` on Linux resolves to
# the CUDA build and about 2.7 GB of NVIDIA wheels, so the set-up first asks pip (a dry run)
# what the plain install would bring; it uses it when that pulls no NVIDIA wheels (a CPU wheel
# already on the machine, macOS, a local mirror), and PyTorch's CPU wheel index otherwise.
# JVP_CLI_TORCH=cuda installs the CUDA build from the default index instead.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'setup: %s\n' "$*" >&2; }

TORCH_SPEC="torch==2.13.0"
CPU_INDEX="https://download.pytorch.org/whl/cpu"
PY=${PYTHON:-python3}

ACTIVE=${VIRTUAL_ENV:-${CONDA_PREFIX:-}}
if [ -n "$ACTIVE" ]; then
  PY=python
  say "installing into the active environment $ACTIVE"
  # .venv/bin/vjp and .venv/bin/python (the README's commands) then name this environment
  if [ -L .venv ] || [ ! -e .venv ]; then
    [ "$(readlink .venv 2>/dev/null)" = "$ACTIVE" ] || {
      ln -sfn "$ACTIVE" .venv
      say "linked .venv -> $ACTIVE"
    }
  elif [ ! .venv -ef "$ACTIVE" ]; then
    say "note: .venv is another environment; the README's .venv/bin commands use that one"
  fi
else
  if [ ! -x .venv/bin/python ]; then
    say "no virtual environment is active: creating .venv with $PY"
    if ! "$PY" -m venv .venv; then
      say "could not create .venv; on Debian/Ubuntu: apt install python3-venv, then rerun"
      exit 1
    fi
  else
    say "using the existing .venv"
  fi
  PY=.venv/bin/python
fi
"$PY" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' 2>/dev/null || {
  say "Python >= 3.10 is needed; $("$PY" --version 2>&1) is too old"
  exit 1
}

pulls_nvidia() {
  # 0 when a plain install of $TORCH_SPEC would bring NVIDIA (CUDA) wheels, 1 when not,
  # 2 when pip cannot say (an old pip without --dry-run --report)
  local report
  report=$("$PY" -m pip install --dry-run --quiet --report - "$TORCH_SPEC" 2>/dev/null) || return 2
  printf '%s' "$report" | "$PY" -c '
import json, sys
names = [i["metadata"]["name"].lower() for i in json.load(sys.stdin).get("install", [])]
sys.exit(0 if any(n.startswith("nvidia") for n in names) else 1)'
}

if "$PY" -c "import torch" >/dev/null 2>&1; then
  say "torch is already installed: $("$PY" -c 'import torch; print(torch.__version__)')"
elif [ "${JVP_CLI_TORCH:-cpu}" = "cuda" ]; then
  say "installing $TORCH_SPEC, the CUDA build (JVP_CLI_TORCH=cuda): a download of several GB"
  "$PY" -m pip install "$TORCH_SPEC"
else
  say "torch is missing: asking pip which $TORCH_SPEC build a plain install would bring ..."
  status=0
  pulls_nvidia || status=$?
  if [ "$status" -eq 1 ]; then
    say "installing $TORCH_SPEC (a CPU build, no NVIDIA wheels)"
    "$PY" -m pip install "$TORCH_SPEC"
  else
    say "installing $TORCH_SPEC from PyTorch's CPU wheel index ($CPU_INDEX)"
    "$PY" -m pip install "$TORCH_SPEC" --index-url "$CPU_INDEX"
  fi
fi

# Graphviz's dot draws --graph-out's SVG and PNG (a .dot file needs nothing); its tests
# are skipped without it. Installed here only as root with apt-get (CI, a container);
# anywhere else the set-up says how and goes on.
if command -v dot >/dev/null 2>&1; then
  say "Graphviz is installed: $(dot -V 2>&1 | head -n 1)"
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  say "Graphviz's dot is missing (for --graph-out FILE.svg/.png): apt-get install graphviz ..."
  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz; } \
      >/dev/null 2>&1; then
    say "installed $(dot -V 2>&1 | head -n 1)"
  else
    say "note: could not install graphviz with apt-get; --graph-out writes .dot files only"
  fi
else
  say "note: Graphviz's dot is not installed, so --graph-out writes .dot files only (SVG and" \
    "PNG need it: apt-get install graphviz, brew install graphviz or conda install graphviz)"
fi

say "installing jvp_cli (editable) with its test tools ..."
"$PY" -m pip install --quiet -e ".[test]"
say "done: $("$PY" -m jvp_cli --version)"
say "run it as .venv/bin/vjp (tests: .venv/bin/python -m pytest), or . .venv/bin/activate first"
