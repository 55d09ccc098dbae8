"""Locations as routing sees them, from cdn.yaml plus the registered edges' health.

The DNS server gets the edges of its environment from the control plane (the
``health`` state channel); ``location_sites`` turns the configured locations and
those edges into the ``Site`` values routing ranks.

Rules:

1. A location's addresses are its configured ``addresses`` followed by the IP of
   each of its healthy registered edges (by edge name). An edge registered at
   ``0.0.0.0``, ``::`` or a host name adds no address, only health.
2. A location with registered edges is healthy when at least one of them is; one
   without any is healthy (nothing says otherwise). ``down`` (location names)
   marks locations down on top of that.
3. A down location keeps every address, its down edges' too: when every location
   is down, the answer holds all of them (``answer_addresses``).
4. Edges whose location is not configured are left out (there are no coordinates
   to route by); ``unplaced`` lists them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from owncdn.core.routing.sites import Site


@dataclass(frozen=True)
class EdgeHealth:
    """One registered edge as the monitor last judged it."""

    name: str
    location: str
    address: str  # HOST:PORT of its public listener, as registered
    healthy: bool = True

    @property
    def ip(self) -> str | None:
        """The address's host when it is a specific IP address, else None (Rule 1)."""
        host = self.address.rpartition(":")[0].strip("[]") if ":" in self.address else self.address
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return None
        return None if ip.is_unspecified else str(ip)

    @classmethod
    def from_dict(cls, data: dict) -> EdgeHealth:
        return cls(str(data["name"]), str(data["location"]), str(data["address"]), bool(data["healthy"]))


def location_sites(locations: Iterable, edges: Sequence[EdgeHealth] = (),
                   down: Iterable[str] = ()) -> list[Site]:
    """``Site`` values for ``locations`` (objects with ``name``, ``lat``, ``lon``,
    ``addresses``: the config's), in configured order; Rules 1-3."""
    down = frozenset(down)
    by_location: dict[str, list[EdgeHealth]] = {}
    for edge in sorted(edges, key=lambda e: e.name):
        by_location.setdefault(edge.location, []).append(edge)
    sites = []
    for loc in locations:
        here = by_location.get(loc.name, [])
        healthy = (not here or any(e.healthy for e in here)) and loc.name not in down
        chosen = [e for e in here if e.healthy] if healthy else here
        addresses = _unique([str(a) for a in loc.addresses] + [e.ip for e in chosen if e.ip])
        if addresses:
            sites.append(Site(loc.name, loc.lat or 0.0, loc.lon or 0.0, tuple(addresses), healthy,
                              float(getattr(loc, "weight", 1.0))))
    return sites


def unplaced(locations: Iterable, edges: Sequence[EdgeHealth]) -> list[EdgeHealth]:
    """Edges whose location is not configured (Rule 4)."""
    names = {loc.name for loc in locations}
    return [e for e in edges if e.location not in names]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
