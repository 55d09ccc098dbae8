"""Edge locations as routing sees them, and the choice of which one answers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0

Location = tuple[float, float]
"""(latitude, longitude) in decimal degrees."""

_FAMILIES = ("A", "AAAA")


@dataclass(frozen=True)
class Site:
    """An edge location: where it is, the addresses of its healthy edges, its health,
    and its ``weight`` (Rule 4 of the package: distances are divided by it)."""

    name: str
    lat: float
    lon: float
    addresses: tuple[str, ...]
    healthy: bool = True
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not -90.0 <= self.lat <= 90.0:
            raise ValueError(f"site {self.name!r}: latitude {self.lat} is outside -90..90")
        if not -180.0 <= self.lon <= 180.0:
            raise ValueError(f"site {self.name!r}: longitude {self.lon} is outside -180..180")
        if self.weight < 0:
            raise ValueError(f"site {self.name!r}: weight {self.weight} is negative")
        if not isinstance(self.addresses, tuple):
            object.__setattr__(self, "addresses", tuple(self.addresses))

    def addresses_for(self, family: str) -> list[str]:
        """This site's IPv4 addresses for ``"A"``, IPv6 for ``"AAAA"``."""
        want_v6 = _check_family(family) == "AAAA"
        return [a for a in self.addresses if (":" in a) == want_v6]


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (haversine, earth radius 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def rank_sites(sites: Sequence[Site], client: Location | None) -> list[Site]:
    """Candidate sites, best first (see the rules in the package docstring).

    Only sites with at least one address are candidates; the healthy ones if any
    is healthy, else all of them. Nearest to ``client`` first by distance / weight,
    ties by name; a client with an unknown location (``None``) gets configured
    order. Sites of weight 0 come after all others, nearest first (standbys).
    """
    with_addresses = [s for s in sites if s.addresses]
    candidates = [s for s in with_addresses if s.healthy] or with_addresses
    if client is None:
        return sorted(candidates, key=lambda s: s.weight == 0)  # stable: configured order
    lat, lon = client
    return sorted(candidates, key=lambda s: _reach(s, lat, lon))


def _reach(site: Site, lat: float, lon: float) -> tuple[bool, float, str]:
    distance = distance_km(lat, lon, site.lat, site.lon)
    if site.weight == 0:
        return True, distance, site.name
    return False, distance / site.weight, site.name


def answer_addresses(
    sites: Sequence[Site], client: Location | None, family: str = "A"
) -> tuple[Site | None, list[str]]:
    """The site that answers a query of ``family`` ("A" or "AAAA"), and its addresses.

    Ranks only the sites having addresses of that family, so an AAAA-only site is
    skipped for A queries. If every site that could answer is down, the answer
    holds the addresses of all of them, nearest site first (the returned site is
    the nearest): the monitor may be the one that is wrong, and answering beats
    not answering. ``(None, [])`` when no site has such addresses.
    """
    _check_family(family)
    usable = [s for s in sites if s.addresses_for(family)]
    ranked = rank_sites(usable, client)
    if not ranked:
        return None, []
    if ranked[0].healthy:
        return ranked[0], ranked[0].addresses_for(family)
    everything = [a for site in ranked for a in site.addresses_for(family)]
    return ranked[0], list(dict.fromkeys(everything))


def _check_family(family: str) -> str:
    if family not in _FAMILIES:
        raise ValueError(f"family must be 'A' or 'AAAA', not {family!r}")
    return family
