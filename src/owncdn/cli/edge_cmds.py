"""``owncdn edge`` (one edge from cdn.yaml) and ``owncdn up`` (a CDN on this machine)."""

from __future__ import annotations

import asyncio
import socket
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
) -> None:
    """Run an edge: a caching reverse proxy in front of the config's origins."""
    from owncdn.core.config import parse_config
    from owncdn.edge.server import serve_forever

    if config is None and control is not None and not Path("cdn.yaml").exists():
        cfg = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
    else:
        cfg = _load(config or Path("cdn.yaml"))
    _run(serve_forever(cfg, listen=listen, admin=admin, edge_id=edge_id, location=location,
                       access_log=access_log, control=control, token=token, state_dir=state_dir, env=env))


def _port_or_free(port: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


UP_CONFIG = """\
# Written by `owncdn up`: the local CDN in front of the demo origin.
version: 1
edge:
  id: edge-1
  location: local
  memory_cache: 256MiB
  access_log: {log}
services:
  - name: demo
    hostnames: [localhost, demo.localhost, 127.0.0.1]
    origins: ["{origin}"]
    cache:
      stale_while_revalidate: 30s
"""


def up(
    port: int = typer.Option(8080, help="Edge port (a free one is used if taken)."),
    state_dir: Path = typer.Option(Path(".owncdn"), help="Where the generated config and logs go."),
) -> None:
    """Run a local CDN: a demo origin and an edge in front of it, and print where to look."""
    from owncdn.demo.site import demo_origin
    from owncdn.edge.server import EdgeServer

    async def main() -> None:
        origin = await demo_origin().start()
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / "cdn.yaml"
        path.write_text(UP_CONFIG.format(origin=origin.url, log=(state_dir / "access.log").resolve()))
        cfg = _load(path)
        edge_port = _port_or_free(port)
        server = await EdgeServer.start(cfg, listen=f"127.0.0.1:{edge_port}", admin="127.0.0.1:0")
        typer.echo(
            f"owncdn is up (Ctrl-C to stop)\n"
            f"  demo origin  {origin.url}\n"
            f"  edge-1       http://127.0.0.1:{server.port}   stats: http://127.0.0.1:{server.admin_port}/stats\n"
            f"  config       {path}\n"
            f"  access log   {state_dir / 'access.log'}\n"
            f"Try it (run twice: X-Cache goes MISS -> HIT):\n"
            f"  curl -sI http://demo.localhost:{server.port}/\n"
        )
        try:
            await asyncio.Event().wait()
        finally:
            await server.close()
            await origin.close()

    _run(main())


def register(app: typer.Typer) -> None:
    app.command()(edge)
    app.command()(up)
