#!/usr/bin/env bash
# README command 2: install everything and run the whole test suite against real servers.
#   Python packages into .venv (pip); PostgreSQL, MariaDB, Redis and Chromium (apt-get);
#   Apache Kafka and S3Proxy jars (Maven Central). Starts every server on 127.0.0.1 with its own
#   data folder and port, runs lint, type checks and the tests, stops the servers, and prints the
#   time of each stage. Large scenarios run at RECOMIND_TEST_SCALE (default: small for CI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/python-env.sh
source scripts/services/lib.sh

export RECOMIND_TEST_SCALE="${RECOMIND_TEST_SCALE:-small}"
# The real servers whose adapters the suite tests (each adapter's contract suite runs against its
# server when that server's RECOMIND_TEST_*_URL is set by start.sh).
read -r -a SERVERS <<<"${RECOMIND_TEST_SERVERS:-postgres mariadb redis kafka s3}"
declare -a STAGES=()
stage() {  # stage NAME COMMAND...: run it, remember how long it took
  local name=$1 start=$SECONDS
  shift
  printf '\n=== %s ===\n' "$name"
  "$@"
  STAGES+=("$(printf '%-28s %5ss' "$name" $((SECONDS - start)))")
}
report() {
  printf '\n=== stage times ===\n'
  printf '%s\n' "${STAGES[@]}"
}

install_browser() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null \
    || apt_install chromium chromium-driver
}
stop_services() { scripts/services/stop.sh "${SERVERS[@]}" || true; }

stage "python packages" ensure_venv "[test]"
stage "servers: install" scripts/services/install.sh "${SERVERS[@]}"
stage "browser: install" install_browser
trap 'stop_services; report' EXIT
stage "servers: start" scripts/services/start.sh "${SERVERS[@]}"
# shellcheck source=/dev/null
source "$SERVICES_DIR/env.sh"
export PATH="$PWD/.venv/bin:$PATH"
stage "lint (ruff)" bash -c 'ruff check . && ruff format --check .'
stage "types (mypy)" mypy
stage "unit + contract tests" pytest -q tests/unit tests/contract
stage "integration tests" pytest -q tests/integration
stage "end-to-end tests" pytest -q tests/e2e
