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
from owncdn.core.logs.pace import YIELD_FOR

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
    health_interval: float = typer.Option(2.0, min=0.05, help="Seconds between edge health checks."),
    health_fast_interval: float = typer.Option(0.5, min=0.01, help="Seconds between re-checks of an edge whose last "
                                               "check disagreed with its health (HAProxy's fastinter)."),
    health_timeout: float = typer.Option(1.0, min=0.01, help="Seconds an edge health check may take."),
    health_fall: int = typer.Option(3, min=1, help="Failed checks in a row that take an edge out of DNS."),
    health_rise: int = typer.Option(2, min=1, help="Good checks in a row that bring it back."),
    health: bool = typer.Option(True, help="Run the edge health monitor here (--no-health: none on this replica; health "
                                "stays as last stored, and edges never checked count as up)."),
    blob_store: str = typer.Option(None, "--blob-store", envvar="OWNCDN_BLOB_STORE",
                                   help="Where pushed files live: a directory (default: <state-dir>/blobs) or "
                                        "s3://bucket/prefix (endpoint and keys from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)."),
    max_blob_size: str = typer.Option("5GiB", "--max-blob-size", metavar="SIZE",
                                      help="Refuse pushed files larger than this (e.g. 8GiB for DVD images); "
                                           "`owncdn push --max-file-size` is the client's own limit."),
    keep_releases: int = typer.Option(10, "--keep-releases", min=1, help="Releases per service and environment whose "
                                      "blobs and manifests blob GC keeps (besides the current one and those edges "
                                      "serve); older ones stay listed but can no longer be rolled back to."),
    blob_grace: float = typer.Option(3600.0, "--blob-grace", min=300.0, help="Seconds a blob no retained release "
                                     "names is kept after its upload (or a push asking for it): pushes in flight."),
    blob_gc_interval: float = typer.Option(21600.0, "--blob-gc-interval", min=0.0, help="Seconds between blob GC "
                                           "passes (0: only `owncdn blobs gc`)."),
    acme: bool = typer.Option(True, help="Run the certificate manager here (ACME orders and renewals; replicas "
                              "coordinate through the store, so every replica may run it)."),
    webhook: list[str] = typer.Option([], "--webhook", envvar="OWNCDN_WEBHOOKS",
                                      help="URL told about issued, renewed, failed and expiring certificates "
                                           "(repeatable; `slack:URL` for a Slack-style {\"text\"} payload)."),
    acme_ca_bundle: str = typer.Option(None, "--acme-ca-bundle", help="CA file to trust for the ACME server "
                                       "(a test CA such as Pebble); default: the system's."),
    alert_webhook: list[str] = typer.Option([], "--alert-webhook", envvar="OWNCDN_ALERT_WEBHOOKS",
                                            help="URL told when an edge or origin goes down or comes back, the error "
                                                 "rate is high, or a certificate is in trouble (repeatable; "
                                                 "`slack:URL` for a Slack-style {\"text\"} payload)."),
    alert_error_rate: float = typer.Option(0.05, min=0.001, max=1.0, help="Share of 5xx responses over the last "
                                           "minute that raises an error-rate alert."),
    tls_cert: Path = typer.Option(None, "--tls-cert", envvar="OWNCDN_TLS_CERT",
                                  help="PEM certificate chain (leaf first): the API speaks HTTPS only, for edges and "
                                       "commands on other machines (`--control https://...`); reloaded when it changes."),
    tls_key: Path = typer.Option(None, "--tls-key", envvar="OWNCDN_TLS_KEY",
                                 help="The certificate's private key (PEM, unencrypted; keep it readable by this user only)."),
    ingest_yield: float = typer.Option(YIELD_FOR, "--ingest-yield", min=0.0, envvar="OWNCDN_INGEST_YIELD",
                                       help="Seconds in a row the access-log ingest keeps to a tenth of a core while "
                                            "the machine's CPUs are busy (edges on the same machine serve first; "
                                            "the lines wait in their spools); 0: never (docs/logs.md)."),
) -> None:
    """Run the control plane: desired state, versions, nodes, purges, the REST API, edge health, certificates."""
    from owncdn.control.blobgc import GcSettings
    from owncdn.control.health import HealthSettings
    from owncdn.control.server import first_start_tokens, open_store, serve
    from owncdn.core.content.retention import Retention
    from owncdn.edge.server import _split

    host, port = _split(listen)
    tls = _server_tls(tls_cert, tls_key)
    settings = HealthSettings(interval=health_interval, fast_interval=health_fast_interval,
                              timeout=health_timeout, fall=health_fall,
                              rise=health_rise, enabled=health, alert_webhooks=_alert_hooks(alert_webhook),
                              alert_error_rate=alert_error_rate)
    state_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(state_dir, database)
    blobs = _blob_store(blob_store or state_dir / "blobs", state_dir / "partials", _byte_size(max_blob_size))
    analytics = _open_analytics(state_dir, ingest_yield)  # shipped access logs (owncdn.control.analytics)
    gc_settings = GcSettings(Retention(keep=keep_releases, grace=blob_grace), interval=blob_gc_interval)
    acme_settings = _acme_settings(acme, webhook, acme_ca_bundle, state_dir, database)
    for name, path in first_start_tokens(store, state_dir).items():
        typer.echo(f"created the {name} token: {path}")
    typer.echo(f"owncdn control plane on {'https' if tls else 'http'}://{_url_host(host)}:{port} (state: {state_dir})")

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(
            serve(store, host, port, zone, health=settings, blobs=blobs, acme=acme_settings, analytics=analytics,
                  blob_gc=gc_settings, own_process=True, tls=tls))
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await asyncio.wait([task, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        try:
            await task  # its shutdown: event streams ended, requests answered (else cancelled mid-way)
        except asyncio.CancelledError:
            pass

    try:
        _run(main())
    finally:
        store.close()
        analytics.close()


def _server_tls(cert: Path | None, key: Path | None):
    """``--tls-cert`` and ``--tls-key``, both or neither, checked before anything starts
    (``owncdn.control.tlslisten`` Rule 1)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        _fail(f"--tls-cert and --tls-key go together: only {'--tls-cert' if key is None else '--tls-key'} was given")
    from owncdn.control.tlslisten import ServerTls, TlsFilesError

    try:
        return ServerTls.load(cert, key)
    except TlsFilesError as exc:
        _fail(str(exc))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _open_analytics(state_dir: Path, ingest_yield: float):
    """<state>/analytics.duckdb, with the GeoIP database the DNS uses (if installed) for countries;
    `ingest_yield`: owncdn.control.analytics Rule 7."""
    from owncdn.control.analytics import open_analytics

    try:
        return open_analytics(state_dir, yield_for=ingest_yield)
    except Exception as exc:  # noqa: BLE001 - duckdb raises its own kinds (a locked file, say)
        _fail(f"cannot open the analytics store {state_dir / 'analytics.duckdb'}: {exc}")


def _alert_hooks(texts: list[str]) -> tuple:
    """``--alert-webhook`` values (``owncdn.control.alerts``); a bad one is a readable error."""
    from owncdn.control.acme.notify import Webhook

    try:
        return tuple(Webhook.parse(t) for text in texts for t in text.split(",") if t.strip())
    except ValueError as exc:
        _fail(f"--alert-webhook: {exc}")


def _acme_settings(enabled: bool, webhooks: list[str], ca_bundle: str | None, state_dir: Path, database):
    """The certificate manager's settings (owncdn.control.acme); keys at rest stay owner-only."""
    from owncdn.control.acme import Webhook
    from owncdn.control.acme.manager import ManagerSettings
    from owncdn.control.acme.sealing import protect_database
    from owncdn.control.server import database_url

    protect_database(database_url(state_dir, database))
    try:
        hooks = tuple(Webhook.parse(w) for text in webhooks for w in text.split())
    except ValueError as exc:
        _fail(str(exc))
    return ManagerSettings(enabled=enabled, webhooks=hooks, ca_bundle=ca_bundle)


def _blob_store(spec, partials_dir: Path, max_bytes: int):
    """The blob store; an S3 one keeps the partial uploads of this control plane in
    ``partials_dir`` (``s3blobs`` Rule 2; a directory store keeps them in itself)."""
    from owncdn.control.blobs import open_blob_store

    try:
        return open_blob_store(spec, partials_dir=partials_dir, max_bytes=max_bytes)
    except (ValueError, OSError) as exc:
        _fail(f"blob store {spec}: {exc}")


def _byte_size(text: str) -> int:
    """--max-blob-size: a size such as 5GiB or 500MB."""
    from owncdn.core.config.units import parse_byte_size

    try:
        size = parse_byte_size(text)
    except ValueError as exc:
        _fail(f"--max-blob-size {text!r}: {exc}")
    if size < 1:
        _fail(f"--max-blob-size {text!r}: must be at least 1 byte")
    return size


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
    to: int = typer.Option(None, "--to", help="The earlier config version to go back to."),
    env: str = EnvOpt, control_url: str = ControlOpt, token: str = TokenOpt, state_dir: Path = StateOpt,
    service: str = typer.Option(None, "--service", help="With --release: a push service to switch back."),
    release: int = typer.Option(None, "--release", min=1, help="With --service: the release to serve again."),
    wait: float = typer.Option(0.0, "--wait", min=0, max=300,
                               help="With --release: then wait up to this many seconds until every edge in contact "
                                    "serves it; exit 1 naming those that failed or do not yet."),
) -> None:
    """Make an earlier config version or push release current again.

    --to N: config version N, stored as a new version. --service S --release N: release
    N of push service S, at once."""
    if service is not None or release is not None:
        if service is None or release is None or to is not None:
            _fail("give --service and --release together (a push release), or --to alone (a config version)")
        from owncdn.cli.push_cmds import activate

        activate(service, release, env, control_url, token, state_dir, wait)
        return
    if to is None:
        _fail("give --to N (a config version), or --service S --release N (a push release)")
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
    from owncdn.cli import tables

    api = client(control_url, token, state_dir)
    st = _call(api.status, env)
    health = {h["id"]: h for h in _call(api.edge_health, env)}
    table = tables.new(f"{env}: latest v{st.get('latest_version') or '-'}")
    for col in ("node", "kind", "location", "address", "running", "status", "drift", "last contact", "disk free",
                "health"):
        table.add_column(col)
    for n in st["nodes"]:
        ago = n.get("seconds_since_contact")
        table.add_row(n["name"], n["kind"], n["location"], n["address"], str(n.get("running_version") or "-"),
                      n["status"] + (f": {n['reason']}" if n.get("reason") else ""),
                      "yes" if n["drift"] else "no", "-" if ago is None else f"{ago:.1f}s ago",
                      disk_cell(health.get(n["id"])), _health_cell(health.get(n["id"])))
    tables.show(table)
    from owncdn.cli.watch_cmds import print_origins

    print_origins(api, env)  # origin health from the monitor (cli/watch_cmds.py)


def disk_cell(h: dict | None) -> str:
    """An edge's free disk for the status table, as its health answer said
    (``edge/diskspace.py``); "-" before it said, and for DNS nodes. Below 5% free
    (the monitor's alert) it says LOW."""
    from owncdn.cli.push_run import human
    from owncdn.core.alerts import LOW_DISK_SHARE

    disk = (h or {}).get("disk")
    if not disk or not disk.get("total"):
        return "-"
    share = disk["free"] / disk["total"]
    return f"{human(disk['free'])} ({share:.0%})" + (" LOW" if share < LOW_DISK_SHARE else "")


def _health_cell(h: dict | None) -> str:
    """An edge's health for the status table ("-" for DNS nodes)."""
    if h is None:
        return "-"
    if h.get("last_check") is None:
        return "up (not checked yet)"
    if h["healthy"]:
        return "up" + (f" ({h['failures']} failed: {h['last_error']})" if h["failures"] else "")
    return f"DOWN: {h['last_error'] or 'recovering'}" + (f" ({h['successes']} ok)" if h["successes"] else "")


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
