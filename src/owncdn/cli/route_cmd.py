"""``owncdn route explain``: why a client gets the answer it gets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from owncdn.cli.edge_cmds import _load

route_app = typer.Typer(help="GeoDNS routing.", no_args_is_help=True)


def explain_lines(config, geo, client: str, name: str, ecs: str | None = None,
                  down: frozenset[str] = frozenset()) -> list[str]:
    """The explanation as lines (no I/O but the GeoIP lookup, done by `geo`)."""
    from owncdn.core.routing import Site, answer_addresses, distance_km, ecs_scope, rank_sites

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
    sites = [Site(loc.name, loc.lat or 0.0, loc.lon or 0.0, tuple(loc.addresses), loc.name not in down)
             for loc in config.locations if loc.addresses]
    lines.append(f"name {name}: service {service}; locations in the order tried (down ones last):")
    ranked = rank_sites(sites, coords)
    everyone = rank_sites([replace(s, healthy=True) for s in sites], coords)  # by distance alone
    ordered = ranked + [s for s in everyone if s.name not in {r.name for r in ranked}]
    by_name = {s.name: s for s in sites}
    for i, site in enumerate((by_name[s.name] for s in ordered), start=1):
        far = f"{distance_km(coords[0], coords[1], site.lat, site.lon):8,.0f} km" if coords else "        -"
        state = "healthy" if site.healthy else "DOWN"
        lines.append(f"  {i}. {site.name:<8} {far}  {state:<7}  {', '.join(site.addresses)}")
    for family in ("A", "AAAA"):
        chosen, addresses = answer_addresses(sites, coords, family)
        if chosen is not None:
            lines.append(f"answer {family}: {', '.join(addresses)} from {chosen.name} (ttl {int(config.dns.ttl)})")
    if ecs:
        family = 6 if ":" in address else 1
        lines.append(f"ECS scope: /{ecs_scope(source, prefix, family)}")
    healthy = [s.name for s in sites if s.healthy]
    if not healthy:
        lines.append("every location is down: the answer holds all of them, nearest first")
    return lines


@route_app.command("explain")
def explain(
    client: str = typer.Option(..., help="The resolver's (or client's) address."),
    name: str = typer.Option(..., help="The name asked, e.g. blog.cdn.example.net"),
    ecs: str = typer.Option(None, help="An EDNS client subnet, e.g. 203.0.113.0/24."),
    down: list[str] = typer.Option([], help="Treat this location as down (repeatable)."),
    config: Path = typer.Option(Path("cdn.yaml"), "--config", "-c", help="The config file."),
    geoip: Path = typer.Option(None, help="A MaxMind-format .mmdb city database."),
) -> None:
    """Print the client's location, the ordered choice of locations, the answer, the scope."""
    from owncdn.dns.geo import GeoDatabase

    cfg = _load(config)
    geo = GeoDatabase(str(geoip)) if geoip else None
    try:
        for line in explain_lines(cfg, geo, client, name, ecs, frozenset(down)):
            typer.echo(line)
    except ValueError as exc:
        typer.echo(f"owncdn: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        if geo is not None:
            geo.close()
