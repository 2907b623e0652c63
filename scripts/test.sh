#!/usr/bin/env bash
# Set up .venv if needed, then run the whole pytest suite (unit + e2e). Arguments go to pytest:
#   bash scripts/test.sh -q -k barrier
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec "$VENV_PY" -m pytest "$@"
