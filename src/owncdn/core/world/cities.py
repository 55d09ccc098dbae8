"""The cities of the simulated world.

Rules:

1. A city has a short stable ``key`` (used in host and location names) and an
   ``index`` (1-based, its place in ``CITIES``); the index never changes, because
   the address plan (``addresses``) is built from it.
2. Visitors live in all 13 cities of ``CITIES``; edge locations exist in the 9
   cities of ``EDGE_LOCATIONS``; the origin is in Frankfurt.
3. ``pick(cities, locations)`` chooses a small world by taking the first N of
   ``VISITOR_ORDER`` and ``LOCATION_ORDER``: the orders put far-apart places first,
   so a 3-city, 2-location world already has a far visitor (Sydney, served from
   Singapore, with the origin in Frankfurt).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class City:
    key: str
    name: str
    lat: float
    lon: float
    index: int


_TABLE = [
    # key, name, latitude, longitude (the cloud region's metro area)
    ("ore", "Oregon", 45.60, -121.18),
    ("cal", "California", 37.34, -121.89),
    ("ohi", "Ohio", 39.96, -83.00),
    ("vir", "Virginia", 39.04, -77.49),
    ("dub", "Ireland", 53.35, -6.26),
    ("fra", "Frankfurt", 50.11, 8.68),
    ("lon", "London", 51.51, -0.13),
    ("bom", "Mumbai", 19.08, 72.88),
    ("sin", "Singapore", 1.35, 103.82),
    ("sel", "Seoul", 37.57, 126.98),
    ("tyo", "Tokyo", 35.68, 139.69),
    ("syd", "Sydney", -33.87, 151.21),
    ("gru", "Sao Paulo", -23.55, -46.63),
]

CITIES: tuple[City, ...] = tuple(City(k, n, lat, lon, i) for i, (k, n, lat, lon) in enumerate(_TABLE, start=1))
ORIGIN_CITY = "fra"
EDGE_LOCATIONS: tuple[str, ...] = ("fra", "lon", "vir", "ore", "gru", "bom", "sin", "tyo", "syd")
VISITOR_ORDER: tuple[str, ...] = ("fra", "syd", "vir", "sin", "ore", "bom", "tyo", "gru", "lon", "dub",
                                  "ohi", "cal", "sel")
LOCATION_ORDER: tuple[str, ...] = ("fra", "sin", "vir", "ore", "syd", "bom", "tyo", "gru", "lon")

_BY_KEY = {c.key: c for c in CITIES}


def by_key(key: str) -> City:
    """The city named ``key`` (KeyError for an unknown one)."""
    return _BY_KEY[key]


def pick(cities: int, locations: int) -> tuple[list[City], list[City]]:
    """(visitor cities, edge location cities) of a world with that many of each (rule 3)."""
    if not 1 <= cities <= len(VISITOR_ORDER) or not 1 <= locations <= len(LOCATION_ORDER):
        raise ValueError(f"cities must be 1..{len(VISITOR_ORDER)} and locations 1..{len(LOCATION_ORDER)}")
    return ([_BY_KEY[k] for k in VISITOR_ORDER[:cities]], [_BY_KEY[k] for k in LOCATION_ORDER[:locations]])
