"""``owncdn dns``: the authoritative DNS of the CDN zone, from cdn.yaml or following
the control plane (each config version becomes a zone; `owncdn.dns.node`)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from owncdn.cli.edge_cmds import _load, _run


def dns(
    config: Path = typer.Option(None, "--config", "-c", help="The config file (default cdn.yaml; optional with --control)."),
    listen: str = typer.Option("0.0.0.0:53", help="HOST:PORT for UDP and TCP queries."),
    geoip: Path = typer.Option(None, help="A MaxMind-format .mmdb city database (GeoLite2-City, DB-IP City Lite)."),
    control: str = typer.Option(None, envvar="OWNCDN_CONTROL", help="Control plane URL: follow its config versions."),
    token: str = typer.Option(None, envvar="OWNCDN_BOOTSTRAP_TOKEN", help="Bootstrap token (first start only)."),
    state_dir: Path = typer.Option(Path(".owncdn-dns"), help="Node identity and last-known-good config."),
    env: str = typer.Option("production", help="Environment to follow (with --control)."),
    name: str = typer.Option("dns-1", help="Node name (with --control)."),
    location: str = typer.Option("local", help="Location of this DNS server (with --control)."),
) -> None:
    """Answer for the CDN zone: each service's name with the nearest location's edges."""
    from owncdn.core.config import parse_config
    from owncdn.dns.cdnzone import build_zone
    from owncdn.dns.geo import GeoDatabase
    from owncdn.dns.node import DnsNode
    from owncdn.dns.server import DnsServer
    from owncdn.edge.server import _snapshot_config, _split

    if config is None and control is not None and not Path("cdn.yaml").exists():
        cfg = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
    else:
        cfg = _load(config or Path("cdn.yaml"))
    geo = GeoDatabase(str(geoip)) if geoip else None
    host, port = _split(listen)

    async def main() -> None:
        nonlocal cfg
        agent = None
        if control is not None:
            from owncdn.edge.sync import SyncAgent

            agent = SyncAgent(None, control, token, state_dir, name=name, location=location, env=env,
                              address=listen, kind="dns")
            snapshot = agent.restore()
            if snapshot is not None:
                cfg = _snapshot_config(snapshot, agent) or cfg
        server = await DnsServer.start(build_zone(cfg, geo), host, port)
        if agent is not None:
            agent.edge = DnsNode(server, geo)
            agent.address = f"{host}:{server.port}"
            agent.start()
        typer.echo(f"owncdn dns: zone {cfg.dns.zone} on {host}:{server.port} (udp, tcp)"
                   f"{'' if geo else '; no --geoip: answers use the configured location order'}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        if agent is not None:
            await agent.stop()
        await server.close()

    try:
        _run(main())
    finally:
        if geo is not None:
            geo.close()
