"""``explain_lines``: why a client gets the DNS answer it gets, as lines of text.

Shared by ``owncdn route explain`` (``cli/route_cmd.py``), ``owncdn watch`` and the
dashboard's route box (``GET /v1/route/explain``, ``control/dashboard/api.py``).

Rule 1: no I/O but the GeoIP lookup, which the ``geo`` object passed in does
(``None``: the position is unknown and the configured order is used).
Rule 2: the order, the answer and the fallback chain come from the same functions
the DNS server answers with (``rank_sites``, ``answer_addresses``,
``location_sites``), so the explanation cannot disagree with the answer.
"""

from __future__ import annotations

from dataclasses import replace

__all__ = ["explain_lines"]


def explain_lines(config, geo, client: str, name: str, ecs: str | None = None,
                  down: frozenset[str] = frozenset(), edges=None) -> list[str]:
    """The explanation as lines (no I/O but the GeoIP lookup, done by `geo`).

    `edges` (a list of `owncdn.core.routing.EdgeHealth`, from the control plane's
    monitor) adds each location's registered edges and their health; None: the
    configured addresses alone, every location up but those in `down`."""
    from owncdn.core.routing import answer_addresses, distance_km, ecs_scope, location_sites, rank_sites, unplaced

    origin = config.dns.zone.strip(".")
    short = name.strip(".")
    service = short[: -len(origin) - 1] if short.endswith("." + origin) else None
    if service is None or config.service(service) is None:
        return [f"{name}: not a service name of zone {origin} (expected <service>.{origin})"]
    address, source = (ecs.split("/")[0], int(ecs.split("/")[1])) if ecs else (client, None)
    coords, prefix = geo.locate(address) if geo is not None else (None, None)
    lines = [f"client {client}" + (f", ECS {ecs}" if ecs else "") + ": "
             + (f"at {coords[0]:.2f}, {coords[1]:.2f} (database network /{prefix})" if coords
                else "position unknown (configured order)")]
    sites = location_sites(config.locations, edges or (), down)
    limited = config.service(service).locations
    if limited:
        sites = [s for s in sites if s.name in set(limited)]
    source_of_health = "edge health from the control plane" if edges is not None else "no health data: all up"
    lines.append(f"name {name}: service {service}; locations in the order tried, down ones last "
                 f"({source_of_health}" + (f"; only {', '.join(limited)}" if limited else "") + "):")
    ranked = rank_sites(sites, coords)
    everyone = rank_sites([replace(s, healthy=True) for s in sites], coords)  # by distance alone
    ordered = ranked + [s for s in everyone if s.name not in {r.name for r in ranked}]
    by_name = {s.name: s for s in sites}
    for i, site in enumerate((by_name[s.name] for s in ordered), start=1):
        far = f"{distance_km(coords[0], coords[1], site.lat, site.lon):8,.0f} km" if coords else "        -"
        state = "healthy" if site.healthy else "DOWN"
        weight = "" if site.weight == 1 else f"  weight {site.weight:g}" + (" (standby)" if site.weight == 0 else "")
        lines.append(f"  {i}. {site.name:<8} {far}  {state:<7}  {', '.join(site.addresses)}{weight}")
        lines += _edge_lines(site.name, edges)
    for family in ("A", "AAAA"):
        chosen, addresses = answer_addresses(sites, coords, family)
        if chosen is not None:
            lines.append(f"answer {family}: {', '.join(addresses)} from {chosen.name} (ttl {int(config.dns.ttl)})")
    if ecs:
        family = 6 if ":" in address else 1
        lines.append(f"ECS scope: /{ecs_scope(source, prefix, family)}")
    chain = [by_name[s.name] for s in ordered]
    healthy = [s.name for s in chain if s.healthy]
    fallback = " -> ".join(f"{s.name}" + ("" if s.healthy else " (DOWN)") for s in chain)
    lines.append(f"fallback chain: {fallback or '(no location has addresses)'}")
    if sites and not healthy:
        lines.append("every location is down: the answer holds all of them, nearest first")
    for edge in unplaced(config.locations, edges or ()):
        lines.append(f"note: edge {edge.name} is registered at location {edge.location!r}, "
                     "which cdn.yaml does not declare: it gets no traffic")
    return lines


def _edge_lines(location: str, edges) -> list[str]:
    out = []
    for edge in sorted((e for e in (edges or ()) if e.location == location), key=lambda e: e.name):
        note = "" if edge.ip else "  (no routable address: health only)"
        out.append(f"       edge {edge.name:<12} {edge.address:<22} {'up' if edge.healthy else 'DOWN'}{note}")
    return out
