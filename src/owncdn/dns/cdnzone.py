"""The CDN zone from cdn.yaml: one routed name per service, answered by geography.

Rules:
1. The zone is `dns.zone`; each service answers as `<service>.<zone>` with the
   addresses of the nearest location (`owncdn.core.routing.answer_addresses`) by the
   client's position: the EDNS client subnet when the query has one with a non-zero
   source prefix, else the resolver's address, looked up in the GeoIP database.
2. Locations take part when they have addresses (`locations[].addresses`) and
   coordinates; health comes from a mapping the caller keeps (all healthy by
   default). When every location is down, the answer holds them all.
3. The ECS scope is the prefix length of the database network that decided the
   answer (`owncdn.core.routing.ecs_scope`).
4. Clients at one position get one answer, so the wire fast path may share cached
   bytes between them (`route_key`).
5. Extra records (`dns.records`) are served as declared; `@` is the zone itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from owncdn.core.routing import Site, answer_addresses, ecs_scope
from owncdn.dns.zone import ClientSubnet, Record, Soa, Zone


def _absolute(name: str, origin: str) -> str:
    if name in ("@", ""):
        return origin
    return name if name.endswith(".") else f"{name}.{origin}"


def build_zone(config, geo=None, healthy: Mapping[str, bool] | None = None, serial: int = 1) -> Zone:
    """The zone of `config`; `geo` locates clients (an `owncdn.dns.geo.GeoDatabase`)."""
    settings = config.dns
    origin = settings.zone.strip(".") + "."
    health = healthy or {}
    sites = [
        Site(loc.name, loc.lat or 0.0, loc.lon or 0.0, tuple(loc.addresses), health.get(loc.name, True))
        for loc in config.locations if loc.addresses
    ]
    ttl = int(settings.ttl)

    def position(client: str, ecs: ClientSubnet | None):
        if geo is None:
            return None, None
        address = ecs.address if ecs is not None and ecs.source_prefix > 0 else client
        try:
            return geo.locate(address)
        except ValueError:
            return None, None

    def route(name: str, family: int, client: str, ecs: ClientSubnet | None):
        coords, prefix = position(client, ecs)
        _, addresses = answer_addresses(sites, coords, "AAAA" if family == 6 else "A")
        scope = ecs_scope(ecs.source_prefix, prefix, ecs.family) if ecs is not None else None
        return addresses, ttl, scope

    def route_key(client: str, ecs: ClientSubnet | None):
        return position(client, ecs), ecs.source_prefix if ecs is not None else None

    nameservers = [_absolute(ns, origin) for ns in settings.nameservers]
    soa = Soa(mname=nameservers[0] if nameservers else origin,
              rname=_absolute(settings.hostmaster, origin), serial=serial, minimum=ttl)
    records = [Record(_absolute(r.name, origin), r.type, int(r.ttl), r.value) for r in settings.records]
    routed = [f"{svc.name}.{origin}" for svc in config.services]
    return Zone(origin, soa, nameservers, records, routed, route=route, route_key=route_key)
