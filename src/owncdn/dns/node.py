"""The DNS server as a node of the control plane: each config version becomes a zone.

`DnsNode` is what `owncdn.edge.sync.SyncAgent` drives (the same sync as edges): a
version is turned into a zone (`build_zone`) and swapped in at once; a version that
does not build keeps the old zone and is reported rejected. Purges concern caches,
which a DNS server has none of: they are acknowledged with nothing removed.
Edge health (the `health` channel, `owncdn.dns.health`) arrives as the list of the
environment's edges; `set_edges` rebuilds the zone of the current config with it. Which locations serve
each push service's current release (the `release_ready` channel, `owncdn.dns.releases`)
arrives per service; `set_ready` rebuilds the zone likewise.
"""

from __future__ import annotations

from owncdn.dns.cdnzone import build_zone


class DnsNode:
    def __init__(self, server, geo=None, config=None) -> None:
        self.server = server
        self.geo = geo
        self.serial = 0
        self.config = config  # the config the served zone was built from
        self.edges: list = []  # registered edges with health (owncdn.core.routing.EdgeHealth)
        self.ready: dict[str, list[str]] = {}  # push service -> locations serving its current release

    def __repr__(self) -> str:
        return f"<DnsNode serial={self.serial} {self.server!r}>"

    def apply_config(self, config) -> None:
        """Raises ValueError (ZoneError) when the version does not make a zone."""
        serial = self.serial + 1
        zone = build_zone(config, self.geo, serial=serial, edges=self.edges, ready=self.ready)  # ZoneError: rejected
        self.server.set_zone(zone)
        self.serial = serial
        self.config = config

    def set_edges(self, edges) -> None:
        """New edge health: the current config's zone, rebuilt with it, swapped in."""
        self.edges = list(edges)
        if self.config is not None:
            self.apply_config(self.config)

    def set_ready(self, service: str, locations: list[str] | None) -> None:
        """Where ``service``'s current release is served (None: forget it); rebuilds the zone."""
        if locations is None:
            self.ready.pop(service, None)
        else:
            self.ready[service] = list(locations)
        if self.config is not None:
            self.apply_config(self.config)

    def purge(self, spec: dict) -> int:
        return 0
