"""``owncdn edge``: one edge, from cdn.yaml or following a control plane."""

from __future__ import annotations

from pathlib import Path

import typer

from owncdn.configfile import load_config
from owncdn.core.config import ConfigError

__all__ = ["register"]


def _load(path: Path):
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None


def _run(coro) -> None:
    import uvloop

    try:
        uvloop.run(coro)
    except OSError as exc:
        typer.echo(f"owncdn: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


def edge(
    config: Path = typer.Option(None, "--config", "-c",
                                help="The config file (default cdn.yaml; optional with --control)."),
    listen: str = typer.Option("0.0.0.0:8080", help="HOST:PORT for visitors."),
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
    reuse_port: bool = typer.Option(False, "--reuse-port", hidden=True, help="Bind with SO_REUSEPORT (workers)."),
    disk_share: int = typer.Option(1, "--disk-share", hidden=True, min=1,
                                   help="Workers sharing the disk tier (each keeps size / N)."),
) -> None:
    """Run an edge: a caching reverse proxy in front of the config's origins."""
    import sys

    from owncdn.core.config import parse_config
    from owncdn.edge.server import serve_forever

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
                       reuse_port=reuse_port, disk_share=disk_share))


def register(app: typer.Typer) -> None:
    app.command()(edge)
