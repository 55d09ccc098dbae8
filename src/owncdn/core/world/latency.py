"""The latency model of the simulated world, and the physical floor of a request.

Rules:

1. The one-way delay between two cities is
   ``scale x (distance / FIBRE_KM_PER_S x ROUTING_FACTOR + LAST_MILE_S)``:
   great-circle distance (haversine), light in fibre at about 200,000 km/s (two
   thirds of c), a routing factor of 1.5 because cables do not follow great
   circles and packets cross routers, and 1 ms of last mile and queueing. Two
   hosts in the same city are 1 ms apart. Frankfurt - Sydney (16,483 km) comes out
   at 124.6 ms one way, 249 ms round trip, close to what pings between those cloud
   regions show.
2. ``scale`` multiplies every delay (1.0 is the real world); tests use a larger
   scale so that CPU noise on a busy machine cannot change a comparison.
3. The nearest edge location of a visitor is the one at the smallest great-circle
   distance, the same rule owncdn's GeoDNS answers by.
4. The floor of a request is the round-trip time to the server times the round
   trips its protocol steps need (``ROUND_TRIPS``: a DNS query 1, a TCP handshake
   1, an HTTP request on an open connection 1; TLS 1.3 would add 1). No server,
   however fast, answers sooner.
"""

from __future__ import annotations

from dataclasses import dataclass

from owncdn.core.routing.sites import distance_km
from owncdn.core.world.cities import City

FIBRE_KM_PER_S = 200_000.0
ROUTING_FACTOR = 1.5
LAST_MILE_S = 0.001
ROUND_TRIPS = {"dns": 1, "tcp": 1, "tls": 1, "http": 1}


@dataclass(frozen=True)
class LatencyModel:
    scale: float = 1.0
    routing_factor: float = ROUTING_FACTOR
    last_mile: float = LAST_MILE_S

    def one_way(self, a: City, b: City) -> float:
        """Seconds a packet from ``a`` takes to reach ``b`` (rule 1)."""
        km = distance_km(a.lat, a.lon, b.lat, b.lon)
        return self.scale * (km / FIBRE_KM_PER_S * self.routing_factor + self.last_mile)

    def rtt(self, a: City, b: City) -> float:
        return self.one_way(a, b) + self.one_way(b, a)

    def nearest(self, visitor: City, locations: list[City]) -> City:
        """The edge location DNS sends ``visitor`` to (rule 3)."""
        return min(locations, key=lambda c: (distance_km(visitor.lat, visitor.lon, c.lat, c.lon), c.key))

    def floor(self, visitor: City, server: City, steps: tuple[str, ...] = ("tcp", "http")) -> float:
        """Seconds a request from ``visitor`` to ``server`` needs at least (rule 4)."""
        return self.rtt(visitor, server) * sum(ROUND_TRIPS[s] for s in steps)
