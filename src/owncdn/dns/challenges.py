"""ACME DNS-01 on owncdn's DNS: the ``_acme-challenge`` TXT records of pending orders.

The control plane publishes them on the ``acme_dns`` channel (key
``_acme-challenge.<name>``, data ``values``); every DNS node serves them, over
whatever zone it serves, until the order is done.

Rules:
1. A challenge name inside the CDN zone becomes TXT records of the zone itself.
2. A name outside it (``_acme-challenge.blog.example.com``) is served as a small zone
   of its own (SOA and NS copied from the CDN zone, the TXT set at its apex): the
   operator delegates ``_acme-challenge.<hostname>`` to the CDN's nameservers (an NS
   record at their DNS provider, or a CNAME to a name owncdn serves), and the CA's
   resolver then asks owncdn.
3. The records sit *over* the zone: a new config version or an edge-health change
   rebuilds the zone underneath, and the challenge records stay (``ChallengeRecords.over``
   is applied by ``DnsServer`` to whatever zone it serves). With no challenges the
   server's zone is served untouched, so the query fast path is unchanged.
4. An overlaid zone is built once per (zone, set of records) and then reused, so the
   answer cache (which empties on a new zone object) is only emptied by changes.
"""

from __future__ import annotations

import dns.name

from owncdn.dns.zone import Record, Soa, Zone

__all__ = ["ChallengeRecords", "acme_dns_handler", "follow_challenges"]


class ChallengeRecords:
    def __init__(self) -> None:
        self.txt: dict[str, tuple[str, ...]] = {}
        self._memo: tuple[Zone, int, object] | None = None
        self.generation = 0

    def __repr__(self) -> str:
        return f"<ChallengeRecords names={len(self.txt)}>"

    def set(self, name: str, values) -> None:
        self.txt[name.rstrip(".").lower() + "."] = tuple(values)
        self.generation += 1

    def remove(self, name: str) -> None:
        self.txt.pop(name.rstrip(".").lower() + ".", None)
        self.generation += 1

    def over(self, zone: Zone):
        """Rule 3: ``zone`` with the challenge records (``zone`` itself when none)."""
        if not self.txt:
            return zone
        memo = self._memo
        if memo is not None and memo[0] is zone and memo[1] == self.generation:
            return memo[2]
        built = self._build(zone)
        self._memo = (zone, self.generation, built)
        return built

    def _build(self, zone: Zone):
        inside = zone
        outside: dict[dns.name.Name, Zone] = {}
        for name, values in sorted(self.txt.items()):
            if zone.contains(dns.name.from_text(name)):
                inside = inside.set_txt(name, values)  # Rule 1
            else:
                soa = Soa(zone.soa.mname, zone.soa.rname, zone.soa.serial, minimum=60, ttl=60)
                records = [Record(name, "TXT", 60, _quote(v)) for v in values]
                outside[dns.name.from_text(name)] = Zone(name, soa, zone.ns, records)  # Rule 2
        return inside if not outside else OverlaidZone(inside, outside)


class OverlaidZone:
    """The CDN zone plus small zones of challenge names outside it; the query
    interface of ``Zone`` that ``dns.wire`` uses, each name sent to its zone."""

    def __init__(self, zone: Zone, others: dict[dns.name.Name, Zone]) -> None:
        self.zone = zone
        self.others = others
        self.origin = zone.origin

    def __repr__(self) -> str:
        return f"<OverlaidZone {self.zone!r} +{len(self.others)} challenge zones>"

    def _for(self, name: dns.name.Name) -> Zone:
        if self.zone.contains(name):
            return self.zone
        for origin, other in self.others.items():
            if name.is_subdomain(origin):
                return other
        return self.zone

    def contains(self, name) -> bool:
        return self._for(name).contains(name)

    def exists(self, name) -> bool:
        return self._for(name).exists(name)

    def is_routed(self, name) -> bool:
        return self._for(name).is_routed(name)

    def get(self, name, rdtype):
        return self._for(name).get(name, rdtype)

    def types_at(self, name):
        return self._for(name).types_at(name)

    def resolve_routed(self, name, rdtype, client, ecs):
        return self._for(name).resolve_routed(name, rdtype, client, ecs)

    def negative_soa(self):
        return self.zone.negative_soa()

    def cache_key(self, client, ecs):
        return self.zone.cache_key(client, ecs)

    @property
    def soa(self):
        return self.zone.soa

    @property
    def ns(self):
        return self.zone.ns


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def acme_dns_handler(agent, http, data: dict) -> None:
    """The ``acme_dns`` channel (``edge/sync.py`` Rule 7) on a DNS node."""
    server = agent.edge.server
    if data.get("deleted"):
        server.challenges.remove(data["key"])
    else:
        server.challenges.set(data["key"], data["values"])


def follow_challenges(agent) -> None:
    agent.handlers["acme_dns"] = acme_dns_handler
