"""The simulated world of ``owncdn world``, pure: cities, latencies, addresses, floors.

No sockets, files or clocks. The WAN emulator (``owncdn.testing.wan``) and the
``owncdn world`` command take their numbers from here, so the latency model is
tested as rows.

- ``cities``   ``City``, ``CITIES`` (the 13 visitor cities), ``EDGE_LOCATIONS``
               (the 9 cities with an edge location) and ``pick`` (a small world).
- ``latency``  ``one_way`` (great-circle distance / speed of light in fibre x
               routing factor + a constant), ``rtt``, ``nearest`` and ``floor``
               (the physical lower bound of a request).
- ``addresses`` the address plan: one /24 per city, one address per host role.
- ``chart``    a hand-written SVG bar chart of a scenario table.
- ``emulator`` the WAN emulator's own error: lateness percentiles from the
               forwarder's histogram, residual per crossing from an echo probe.
"""

from owncdn.core.world.addresses import ROLES, address, city_of, subnet
from owncdn.core.world.cities import CITIES, EDGE_LOCATIONS, City, by_key, pick
from owncdn.core.world.latency import (
    FIBRE_KM_PER_S,
    LAST_MILE_S,
    ROUND_TRIPS,
    ROUTING_FACTOR,
    LatencyModel,
)

__all__ = [
    "CITIES", "EDGE_LOCATIONS", "FIBRE_KM_PER_S", "LAST_MILE_S", "ROLES", "ROUND_TRIPS", "ROUTING_FACTOR",
    "City", "LatencyModel", "address", "by_key", "city_of", "pick", "subnet",
]
