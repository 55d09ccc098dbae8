"""The control plane and the CDN as code: `control`, `plan`, `apply`, `rollback`,
`versions`, `status`, `purge`, `token`.

Every command but `control` talks to the control plane through
`owncdn.client.Client`. Where it is and which token to use: `--control` /
`OWNCDN_CONTROL` and `--token` / `OWNCDN_TOKEN`, else the files `owncdn up` and
`owncdn control` leave in the state directory (`control.url`, `admin.token`).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from owncdn.cli.edge_cmds import _run

__all__ = ["register"]

DEFAULT_STATE = Path(".owncdn")
DEFAULT_CONTROL = "http://127.0.0.1:8400"

ControlOpt = typer.Option(None, "--control", envvar="OWNCDN_CONTROL", help="Control plane URL.")
TokenOpt = typer.Option(None, "--token", envvar="OWNCDN_TOKEN", help="API token.")
EnvOpt = typer.Option("production", "--env", "-e", help="Environment: staging, production, ...")
StateOpt = typer.Option(DEFAULT_STATE, "--state-dir", help="Where `owncdn up` / `owncdn control` keep state.")


def _fail(message: str) -> None:
    typer.echo(f"owncdn: {message}", err=True)
    raise typer.Exit(1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def client(control: str | None, token: str | None, state_dir: Path = DEFAULT_STATE):
    from owncdn.client import Client

    control = control or _read(state_dir / "control.url") or DEFAULT_CONTROL
    token = token or _read(state_dir / "control" / "admin.token") or _read(state_dir / "admin.token")
    return Client(control, token)


def _call(fn, *args, **kwargs):
    from owncdn.client import ApiError

    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        lines = [str(exc)] + [f"  {p}" for p in (exc.problems or [])]
        _fail("\n".join(lines))


def _load_env(path: Path, env: str):
    from owncdn.configfile import load_config
    from owncdn.core.config import ConfigError

    try:
        return load_config(path, environment=env)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None


# -- the control plane itself ------------------------------------------------------
def control(
    listen: str = typer.Option("127.0.0.1:8400", help="HOST:PORT of the REST API."),
    state_dir: Path = typer.Option(DEFAULT_STATE / "control", "--state-dir", help="State directory."),
    database: str = typer.Option(None, envvar="OWNCDN_DATABASE",
                                 help="postgresql://... for several replicas (default: SQLite in the state dir)."),
    zone: str = typer.Option("cdn.test", help="DNS zone of CDN hostnames (<service>.<zone>)."),
) -> None:
    """Run the control plane: desired state, versions, nodes, purges, the REST API."""
    from owncdn.control.server import first_start_tokens, open_store, serve
    from owncdn.edge.server import _split

    host, port = _split(listen)
    state_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(state_dir, database)
    for name, path in first_start_tokens(store, state_dir).items():
        typer.echo(f"created the {name} token: {path}")
    typer.echo(f"owncdn control plane on http://{host}:{port} (state: {state_dir})")

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(serve(store, host, port, zone))
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await asyncio.wait([task, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        task.cancel()

    try:
        _run(main())
    finally:
        store.close()


# -- the CDN as code --------------------------------------------------------------
def plan(
    path: Path = typer.Argument(Path("cdn.yaml"), help="The config file."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Show what `apply` would change, against what runs in ENV."""
    from owncdn.core.config import ConfigError, parse_config
    from owncdn.core.config.diff import diff_configs, render_plan

    new = _load_env(path, env)
    api = client(control_url, token, state_dir)
    versions = _call(api.list_versions, env)
    old = None
    if versions:
        latest = _call(api.get_version, env, versions[0]["number"])
        try:
            old = parse_config(latest["source"], f"{env} v{latest['number']}", lambda kind, name: f"${{{kind}:{name}}}",
                               env=env)
        except ConfigError:
            old = None
    typer.echo(f"{env}: v{versions[0]['number']} -> new version" if versions else f"{env}: nothing applied yet")
    typer.echo(render_plan(diff_configs(old, new)))


def apply(
    path: Path = typer.Argument(Path("cdn.yaml"), help="The config file."),
    env: str = EnvOpt, comment: str = typer.Option("", "--comment", "-m", help="Why (kept with the version)."),
    control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Store cdn.yaml as the next version of ENV; every edge of ENV follows it."""
    _load_env(path, env)  # an invalid file never leaves this machine
    api = client(control_url, token, state_dir)
    version = _call(api.add_version, env, path.read_text(), comment=comment)
    typer.echo(f"{env}: applied v{version['number']}")


def rollback(
    to: int = typer.Option(..., "--to", help="The earlier version to go back to."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Make an earlier version current again (as a new version)."""
    version = _call(client(control_url, token, state_dir).rollback, env, to)
    typer.echo(f"{env}: v{version['number']} is v{to} again")


def versions(env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt,
             state_dir: Path = StateOpt) -> None:
    """List the versions of ENV, newest first."""
    for v in _call(client(control_url, token, state_dir).list_versions, env):
        typer.echo(f"v{v['number']:<4} {v.get('comment') or ''}")


def status(env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt,
           state_dir: Path = StateOpt) -> None:
    """Which version each node runs, drift, and when it was last heard from."""
    from rich.console import Console
    from rich.table import Table

    st = _call(client(control_url, token, state_dir).status, env)
    table = Table(title=f"{env}: latest v{st.get('latest_version') or '-'}")
    for col in ("node", "kind", "location", "address", "running", "status", "drift", "last contact"):
        table.add_column(col)
    for n in st["nodes"]:
        ago = n.get("seconds_since_contact")
        table.add_row(n["name"], n["kind"], n["location"], n["address"], str(n.get("running_version") or "-"),
                      n["status"] + (f": {n['reason']}" if n.get("reason") else ""),
                      "yes" if n["drift"] else "no", "-" if ago is None else f"{ago:.1f}s ago")
    Console().print(table)


def purge(
    url: str = typer.Argument(None, help="A full URL to purge."),
    prefix: str = typer.Option(None, help="A URL prefix, or a path prefix with --service."),
    tag: str = typer.Option(None, help="A cache tag (Cache-Tag / Surrogate-Key)."),
    everything: bool = typer.Option(False, "--all", help="Everything (of --service, if given)."),
    soft: bool = typer.Option(False, help="Mark stale instead of removing."),
    service: str = typer.Option(None, help="Limit to one service."),
    timeout: float = typer.Option(10.0, help="Seconds to wait for every edge."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Purge across the fleet; returns when every edge acknowledged, or lists the stragglers."""
    if sum(x is not None and x is not False for x in (url, prefix, tag, everything or None)) != 1:
        _fail("give exactly one of URL, --prefix, --tag or --all")
    result = _call(client(control_url, token, state_dir).purge, env, url=url, prefix=prefix, tag=tag,
                   all=everything, soft=soft, service=service, wait=timeout)
    for ack in result["acked"]:
        typer.echo(f"  {ack['name']:<16} {ack['ms']:8.2f} ms  {ack['removed']} removed")
    if result["pending"]:
        names = ", ".join(p["name"] for p in result["pending"])
        _fail(f"purge {result['id']}: no acknowledgement within {timeout:g}s from: {names}")
    typer.echo(f"purge {result['id']}: acknowledged by {len(result['acked'])} edge(s)")


token_app = typer.Typer(help="API tokens.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="What the token is for."),
    scope: list[str] = typer.Option(..., "--scope", help="admin, deploy, purge, read or node (repeatable)."),
    control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Create a token; its text is printed once."""
    made = _call(client(control_url, token, state_dir).create_token, name, scope)
    typer.echo(made["token"])


service_app = typer.Typer(help="Services of an environment.", no_args_is_help=True)


@service_app.command("add")
def service_add(
    origin: str = typer.Argument(..., help="The origin URL, e.g. https://origin.example.com"),
    name: str = typer.Option(None, help="Service name (default: from the origin's host)."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
) -> None:
    """Put a site behind the CDN by its origin URL alone; prints the hostname to CNAME to."""
    made = _call(client(control_url, token, state_dir).create_service, env, origin, name)
    typer.echo(f"{env}: service {made['service']['name']} in v{made['version']}; "
               f"point a CNAME at {made['cname']}")


@service_app.command("list")
def service_list(env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt,
                 state_dir: Path = StateOpt) -> None:
    """The services of the latest version of ENV."""
    for svc in _call(client(control_url, token, state_dir).services, env)["services"]:
        typer.echo(f"{svc['name']:<20} {', '.join(svc['hostnames'])}  <- {', '.join(map(str, svc['origins']))}")


def register(app: typer.Typer) -> None:
    for fn in (control, plan, apply, rollback, versions, status, purge):
        app.command()(fn)
    app.add_typer(token_app, name="token")
    app.add_typer(service_app, name="service")
