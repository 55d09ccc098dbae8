#!/usr/bin/env bash
# Install owncdn into .venv and run a local CDN: a demo origin and an edge in front of it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
ensure_venv ""
exec .venv/bin/owncdn up "$@"
