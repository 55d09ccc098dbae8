"""The address plan of the simulated world.

Rules:

1. City number n (``City.index``) owns the subnet ``10.n.0.0/24``; the geo database
   the world's DNS and edges use maps that subnet to the city's coordinates.
2. Each host in a city has a fixed last octet by role (``ROLES``): a visitor .10,
   an edge location (edge and its DNS server) .20, the origin .30, the control
   plane .40.
3. The lab host (the emulator's own process in the root namespace, which drives
   the control plane's API) is ``10.255.0.1``; it belongs to no city and sees
   no delay.
"""

from __future__ import annotations

from owncdn.core.world.cities import CITIES, City

ROLES = {"visitor": 10, "edge": 20, "origin": 30, "control": 40}
LAB_ADDRESS = "10.255.0.1"
NETWORK = "10.0.0.0/8"


def subnet(city: City) -> str:
    """The city's /24 (rule 1)."""
    return f"10.{city.index}.0.0/24"


def address(city: City, role: str) -> str:
    """The address of the host with ``role`` in ``city`` (rule 2)."""
    return f"10.{city.index}.0.{ROLES[role]}"


def city_of(ip: str) -> City | None:
    """The city owning ``ip``, or None (the lab host, or outside the plan)."""
    parts = ip.split(".")
    if len(parts) != 4 or parts[0] != "10" or parts[2] != "0":
        return None
    n = int(parts[1])
    return CITIES[n - 1] if 1 <= n <= len(CITIES) else None
