"""The CDN zone from cdn.yaml: one routed name per service, answered by geography.

Rules:
1. The zone is `dns.zone`; each service answers as `<service>.<zone>` with the
   addresses of the nearest location (`owncdn.core.routing.answer_addresses`) by the
   client's position: the EDNS client subnet when the query has one with a non-zero
   source prefix, else the resolver's address, looked up in the GeoIP database.
2. Locations take part when they have addresses: their configured
   `locations[].addresses` plus those of their healthy registered edges (`edges`,
   from the control plane's health channel; `owncdn.core.routing.location_sites`).
   A location whose registered edges are all down is skipped, and so is one the
   `healthy` mapping marks down; when every location is down, the answer holds
   them all.
3. The ECS scope is the prefix length of the database network that decided the
   answer (`owncdn.core.routing.ecs_scope`).
4. Clients at one position get one answer, so the wire fast path may share cached
   bytes between them (`route_key`).
5. Extra records (`dns.records`) are served as declared; `@` is the zone itself.
6. A service with `locations` is answered only from those locations (nearest
   first, all of them when all are down). A push service with release information (`ready`: service -> locations serving its
   current release, from the control plane's `release_ready` channel) is answered
   only from those locations (`owncdn.core.routing.ready`).
7. A location's own `hostname` (the mirrors of a redirect service) inside the zone
   answers A / AAAA with that location's addresses as rule 2 chooses them (its
   healthy edges; all of them when none is), unless it is a service's name or a
   declared record already uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from owncdn.core.routing import EdgeHealth, answer_addresses, ecs_scope, location_sites
from owncdn.core.routing.ready import ready_sites
from owncdn.dns.zone import ClientSubnet, Record, Soa, Zone


def _absolute(name: str, origin: str) -> str:
    if name in ("@", ""):
        return origin
    return name if name.endswith(".") else f"{name}.{origin}"


def _location_records(locations, sites, origin: str, ttl: int, taken: set[str]) -> list[Record]:
    """Rule 7."""
    by_name = {site.name: site for site in sites}
    out = []
    for loc in locations:
        host = getattr(loc, "hostname", None)
        if not host:
            continue
        fqdn = str(host).rstrip(".").lower() + "."
        if not fqdn.endswith("." + origin.lower()) or fqdn in taken or loc.name not in by_name:
            continue
        for address in by_name[loc.name].addresses:
            out.append(Record(fqdn, "AAAA" if ":" in address else "A", ttl, address))
    return out


def _service_sites(services, sites, origin: str, ready: Mapping[str, Sequence[str]]) -> dict[str, list]:
    """Rule 6: the sites answering each service that does not use them all, by name."""
    out = {}
    for svc in services:
        chosen = sites
        wanted = getattr(svc, "locations", None)
        if wanted:
            chosen = [site for site in sites if site.name in set(wanted)]
        if getattr(svc, "mode", "pull") == "push":
            chosen = ready_sites(chosen, ready.get(svc.name))
        if chosen is not sites:
            out[f"{svc.name}.{origin}".lower()] = chosen
    return out


def build_zone(config, geo=None, healthy: Mapping[str, bool] | None = None, serial: int = 1,
               edges: Sequence[EdgeHealth] = (), ready: Mapping[str, Sequence[str]] | None = None) -> Zone:
    """The zone of `config`; `geo` locates clients (an `owncdn.dns.geo.GeoDatabase`);
    `edges` are the registered edges with their health (rule 2)."""
    settings = config.dns
    origin = settings.zone.strip(".") + "."
    down = [name for name, ok in (healthy or {}).items() if not ok]
    sites = location_sites(config.locations, edges, down)
    ttl = int(settings.ttl)
    service_sites = _service_sites(config.services, sites, origin, ready or {})  # rule 6

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
        candidates = service_sites.get(name.lower(), sites) if service_sites else sites
        _, addresses = answer_addresses(candidates, coords, "AAAA" if family == 6 else "A")
        scope = ecs_scope(ecs.source_prefix, prefix, ecs.family) if ecs is not None else None
        return addresses, ttl, scope

    def route_key(client: str, ecs: ClientSubnet | None):
        return position(client, ecs), ecs.source_prefix if ecs is not None else None

    nameservers = [_absolute(ns, origin) for ns in settings.nameservers]
    soa = Soa(mname=nameservers[0] if nameservers else origin,
              rname=_absolute(settings.hostmaster, origin), serial=serial, minimum=ttl)
    records = [Record(_absolute(r.name, origin), r.type, int(r.ttl), r.value) for r in settings.records]
    routed = [f"{svc.name}.{origin}" for svc in config.services]
    records += _location_records(config.locations, sites, origin, ttl,
                                 {r.name.lower() for r in records} | {n.lower() for n in routed})
    return Zone(origin, soa, nameservers, records, routed, route=route, route_key=route_key)
