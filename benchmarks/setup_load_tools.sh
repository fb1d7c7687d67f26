#!/usr/bin/env bash
# Load generators for benchmarks/serving_load.py and benchmarks/feed_freshness.py, from
# package registries only: wrk from Debian (apt-get, needs root) and vegeta from the Go
# module proxy (needs Go; installs to $(go env GOPATH)/bin, which the benchmarks also search).
set -euo pipefail

if ! command -v wrk >/dev/null; then
  apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
fi
if ! command -v vegeta >/dev/null && [ ! -x "$(go env GOPATH)/bin/vegeta" ]; then
  (cd /tmp && go install github.com/tsenart/vegeta/v12@v12.13.0)
fi
wrk --version 2>&1 | head -1 || true
"$(command -v vegeta || echo "$(go env GOPATH)/bin/vegeta")" -version | head -1
