"""The DNS server as a node of the control plane: each config version becomes a zone.

`DnsNode` is what `owncdn.edge.sync.SyncAgent` drives (the same sync as edges): a
version is turned into a zone (`build_zone`) and swapped in at once; a version that
does not build keeps the old zone and is reported rejected. Purges concern caches,
which a DNS server has none of: they are acknowledged with nothing removed.
"""

from __future__ import annotations

from owncdn.dns.cdnzone import build_zone


class DnsNode:
    def __init__(self, server, geo=None) -> None:
        self.server = server
        self.geo = geo
        self.serial = 0

    def __repr__(self) -> str:
        return f"<DnsNode serial={self.serial} {self.server!r}>"

    def apply_config(self, config) -> None:
        """Raises ValueError (ZoneError) when the version does not make a zone."""
        serial = self.serial + 1
        zone = build_zone(config, self.geo, serial=serial)  # ZoneError: the version is rejected
        self.server.set_zone(zone)
        self.serial = serial

    def purge(self, spec: dict) -> int:
        return 0
