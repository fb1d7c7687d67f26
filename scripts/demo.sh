#!/usr/bin/env bash
# README command 1: install RecoMind into .venv and run `recomind demo` on the embedded defaults
# (SQLite, in-process cache, local durable event log, local Parquet lake, all under ./.recomind).
# It seeds a demo catalog once, trains, and serves the API and web UI on 127.0.0.1.
# Arguments go to `recomind demo`, e.g. scripts/demo.sh --port 8080
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/python-env.sh
ensure_venv ""
exec .venv/bin/recomind demo "$@"
