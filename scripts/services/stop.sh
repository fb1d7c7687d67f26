#!/usr/bin/env bash
# Stop the integration-test servers that scripts/services/start.sh started, found by the pid files in
# ${RECOMIND_SERVICES_DIR:-<repo>/.services}/<name>/<name>.pid. Each gets its clean-shutdown signal
# (PostgreSQL SIGINT, the others SIGTERM) and up to 60 s before SIGKILL. A pid is signalled only if
# its command line matches the service, so no other instance (e.g. a Debian default one) is touched.
# The data folders stay (for post-mortem logs) until the next start wipes them; env.sh is rewritten
# to list only what still runs, or removed.
#
# Usage: scripts/services/stop.sh [all|postgres|mariadb|redis|kafka|s3]...   (default: all)
set -euo pipefail
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

list=$(parse_services "$@")
mapfile -t services <<<"$list"
for s in "${services[@]}"; do
  t=$SECONDS
  if stop_service "$s"; then
    log "$s: stopped ($((SECONDS - t))s)"
  else
    log "$s: not running"
  fi
done
write_env
