"""``owncdn dns``: the authoritative DNS of the CDN zone, from cdn.yaml."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from owncdn.cli.edge_cmds import _load, _run


def dns(
    config: Path = typer.Option(Path("cdn.yaml"), "--config", "-c", help="The config file."),
    listen: str = typer.Option("0.0.0.0:53", help="HOST:PORT for UDP and TCP queries."),
    geoip: Path = typer.Option(None, help="A MaxMind-format .mmdb city database (GeoLite2-City, DB-IP City Lite)."),
) -> None:
    """Answer for the CDN zone: each service's name with the nearest location's edges."""
    from owncdn.dns.cdnzone import build_zone
    from owncdn.dns.geo import GeoDatabase
    from owncdn.dns.server import DnsServer
    from owncdn.edge.server import _split

    cfg = _load(config)
    geo = GeoDatabase(str(geoip)) if geoip else None
    host, port = _split(listen)

    async def main() -> None:
        server = await DnsServer.start(build_zone(cfg, geo), host, port)
        typer.echo(f"owncdn dns: zone {cfg.dns.zone} on {host}:{server.port} (udp, tcp)"
                   f"{'' if geo else '; no --geoip: answers use the configured location order'}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.close()

    try:
        _run(main())
    finally:
        if geo is not None:
            geo.close()
