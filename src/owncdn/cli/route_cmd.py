"""``owncdn route explain``: why a client gets the answer it gets."""

from __future__ import annotations

from pathlib import Path

import typer

from owncdn.cli.edge_cmds import _load
from owncdn.core.routing.explain import explain_lines  # shared with the API and `owncdn watch`

__all__ = ["explain_lines", "route_app"]

route_app = typer.Typer(help="GeoDNS routing.", no_args_is_help=True)


@route_app.command("explain")
def explain(
    client: str = typer.Option(..., help="The resolver's (or client's) address."),
    name: str = typer.Option(..., help="The name asked, e.g. blog.cdn.example.net"),
    ecs: str = typer.Option(None, help="An EDNS client subnet, e.g. 203.0.113.0/24."),
    down: list[str] = typer.Option([], help="Treat this location as down (repeatable)."),
    config: Path = typer.Option(Path("cdn.yaml"), "--config", "-c", help="The config file."),
    geoip: Path = typer.Option(None, help="A MaxMind-format .mmdb city database (default: DB-IP City Lite, as `owncdn dns`)."),
    control: str = typer.Option(None, "--control", envvar="OWNCDN_CONTROL",
                                help="Control plane URL: take edge health from its monitor."),
    token: str = typer.Option(None, "--token", envvar="OWNCDN_TOKEN", help="API token (scope read) for --control."),
    env: str = typer.Option("production", "--env", "-e", help="Environment whose edges to use (with --control)."),
) -> None:
    """Where DNS sends a client: the locations in order, the answer and its fallbacks.

    Prints the client's location, the ordered choice of locations with their health,
    the answer, the ECS scope and the fallback chain."""
    from owncdn.dns.geodefault import open_geo

    cfg = _load(config)
    edges = _edges_from_control(control, token, env) if control else None
    try:
        geo = open_geo(geoip)  # the same database `owncdn dns` would open (dns/geodefault.py)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"owncdn: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        for line in explain_lines(cfg, geo, client, name, ecs, frozenset(down), edges):
            typer.echo(line)
    except ValueError as exc:
        typer.echo(f"owncdn: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        if geo is not None:
            geo.close()


def _edges_from_control(control: str, token: str | None, env: str):
    from owncdn.cli.fleet_cmds import client
    from owncdn.client import ApiError
    from owncdn.core.routing import EdgeHealth

    try:
        with client(control, token) as api:  # no --token: the admin token `owncdn up` left
            return [EdgeHealth.from_dict(e) for e in api.edge_health(env)]
    except ApiError as exc:
        typer.echo(f"owncdn: {exc}", err=True)
        raise typer.Exit(1) from None
