#!/usr/bin/env bash
# Install everything the tests need (Debian packages when run as root) and run them all.
set -euo pipefail
cd "$(dirname "$0")/.."
DEBIAN_PACKAGES="nginx curl openssl postgresql dnsutils knot-dnsutils nghttp2-client pebble chromium iproute2"
if [ "$(id -u)" = 0 ]; then
  missing=""
  for pkg in $DEBIAN_PACKAGES; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    apt-get update -qq
    # Tests start their own nginx instances; the packaged service need not run.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi
. scripts/venv.sh
ensure_venv "[test]"
exec .venv/bin/python -m pytest "$@"
