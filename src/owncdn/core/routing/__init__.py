"""Geo routing decisions for the GeoDNS role, pure: no sockets, files or clocks.

The DNS server looks the client up in the GeoIP database (``owncdn.dns.geo``) and
passes the result in; everything here is a function of (sites with health, client
location), so a routing table is tested as rows, gdnsd style.

- ``sites``   ``Site``, ``distance_km`` (haversine), ``rank_sites`` (nearest healthy
              first) and ``answer_addresses`` (the A / AAAA answer for a query).
- ``health``  ``next_state`` / ``Hysteresis``: an edge goes down after ``fall``
              consecutive failed checks and up after ``rise`` consecutive good ones,
              so it does not flap.
- ``edges``   ``EdgeHealth`` (a registered edge as the monitor judged it) and
              ``location_sites``: configured locations plus their healthy edges.
- ``ecs``     ``ecs_scope``: the EDNS Client Subnet scope prefix to answer with
              (RFC 7871 section 7.2.1).
- ``explain`` ``explain_lines``: why a client gets its answer, as text (``owncdn route
              explain``, ``owncdn watch`` and the dashboard's ``GET /v1/route/explain``).

Rules:

1. A site without addresses is never answered.
2. Healthy sites win. When no site is healthy, every site is a candidate, and the
   answer holds all of them, because answering with locations that may be down
   beats answering with nothing.
3. A client with a known location gets candidates nearest first (great-circle
   distance; ties broken by name). A client with an unknown location gets them in
   configured order, so the first configured site is the default.
4. Weights: "nearest" compares distance / weight, so a site of weight 2 draws
   clients from twice as far as one of weight 1 (a larger site takes more of the
   load between them). A site of weight 0 is a standby: it comes after every
   site with a weight, so it answers only when all of those are down.
"""

from owncdn.core.routing.ecs import ecs_scope
from owncdn.core.routing.edges import EdgeHealth, location_sites, unplaced
from owncdn.core.routing.health import DEFAULT_FALL, DEFAULT_RISE, CheckState, Hysteresis, next_state
from owncdn.core.routing.sites import (
    EARTH_RADIUS_KM,
    Site,
    answer_addresses,
    distance_km,
    rank_sites,
)

__all__ = [
    "DEFAULT_FALL",
    "DEFAULT_RISE",
    "EARTH_RADIUS_KM",
    "CheckState",
    "EdgeHealth",
    "Hysteresis",
    "Site",
    "answer_addresses",
    "distance_km",
    "ecs_scope",
    "location_sites",
    "next_state",
    "rank_sites",
    "unplaced",
]
