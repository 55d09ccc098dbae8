"""Running the control plane: the state store, first-start tokens, the API on uvicorn.

On first start (a store with no tokens) two tokens are made and written, mode 0600,
into the state directory: `admin.token` (scope admin, for the CLI) and
`bootstrap.token` (scope node, for edges registering). Later starts, and other
replicas on the same PostgreSQL database, find tokens and make none.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from owncdn.control.store import Store
from owncdn.gctune import quiet_collector, steady_heap


def database_url(state_dir: Path, database: str | None) -> str:
    if database:
        return database
    state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(state_dir / 'control.db').resolve()}"


def first_start_tokens(store: Store, state_dir: Path) -> dict[str, str]:
    """Create the admin and bootstrap tokens if the store has none; returns those created."""
    if store.list_tokens():
        return {}
    made = {}
    for name, scopes in (("admin", {"admin"}), ("bootstrap", {"node"})):
        _, text = store.create_token(name, scopes)
        path = state_dir / f"{name}.token"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        made[name] = str(path)
    return made


def open_store(state_dir: Path, database: str | None) -> Store:
    store = Store(database_url(state_dir, database))
    store.migrate()
    return store


async def serve(store: Store, host: str, port: int, zone: str, started: asyncio.Event | None = None,
                health=None, blobs=None, acme=None, analytics=None, blob_gc=None,
                own_process: bool = False, tls=None) -> None:
    """Serve the API until cancelled; then end the event streams and close the socket.
    Runs the edge health monitor (`owncdn.control.health`) with `health` settings
    (a `HealthSettings`; the defaults when None), and the certificate manager
    (`owncdn.control.acme`) with `acme` settings (a `ManagerSettings`), and blob GC
    (`owncdn.control.blobgc`) with `blob_gc` settings (a `GcSettings`; the defaults
    when None). `own_process` (the `owncdn control` command): once serving, tune the
    collector (`owncdn.gctune`). `tls` (a `ServerTls`, `owncdn.control.tlslisten`): the
    API speaks HTTPS only, with that certificate, reloaded when its files change."""
    import socket

    import uvicorn

    from owncdn.control.api import create_app
    from owncdn.control.api.sendfile import with_transport
    from owncdn.control.hub import Hub

    hub = Hub()
    app = create_app(store, zone=zone, hub=hub, blobs=blobs)  # blobs: pushed releases' store
    app.state.analytics = analytics  # shipped access logs (owncdn.control.analytics; None: /v1/logs says 503)
    monitor = start_health_monitor(store, hub, health, app)  # and alerts (control/alerts.py)
    from owncdn.control.acme.manager import start_manager

    certificates = start_manager(store, hub, app, acme)
    collector = start_blob_gc(store, blobs, blob_gc, app)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(with_transport(app), log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=1)  # with_transport: blob downloads by sendfile
    watcher = None
    if tls is not None:
        from owncdn.control.httpsport import tls_port

        config.load()  # uvicorn loads a config once; its context is this one (tlslisten Rule 2: reloaded in place)
        config.http_protocol_class = tls_port(config.http_protocol_class, tls.context)  # plain HTTP answered too
        watcher = asyncio.get_running_loop().create_task(tls.watch(), name="tls-reload")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # the caller owns signals
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # raises why it could not start
        if own_process:
            from owncdn.control.api.prepare import prepare

            await asyncio.to_thread(prepare, app)  # FastAPI's first-request work, ahead (prepare.py)
            quiet_collector()  # owncdn/gctune.py
            steady_heap()
        if started is not None:
            started.set()
        await asyncio.shield(task)
    finally:
        if monitor is not None:
            monitor.cancel()
        if certificates is not None:
            certificates.cancel()
        if collector is not None:
            collector.cancel()
        if watcher is not None:
            watcher.cancel()
        hub.close()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            task.cancel()
        sock.close()
        from owncdn.control.api.events import flush_contacts

        await flush_contacts(app.state.owncdn)  # contact heard in the last 0.5 s (events.py Rule 6)


def start_health_monitor(store: Store, hub, settings=None, app=None) -> asyncio.Task | None:
    """The edge health monitor as a task of this loop (None when disabled); a flip
    wakes every event stream (`owncdn.control.health` Rule 3). With `app`, the
    monitor and the alerts (`owncdn.control.alerts`) go on `app.state` for the API."""
    from owncdn.control.alerts import Alerts
    from owncdn.control.health import HealthMonitor, HealthSettings

    settings = settings or HealthSettings()
    alerts = Alerts(settings.alert_webhooks, error_rate=settings.alert_error_rate)
    if app is not None:
        app.state.alerts = alerts
    if not settings.enabled:
        return None
    blobs = getattr(getattr(app, "state", None), "blobs", None)
    monitor = HealthMonitor(store, settings, on_change=hub.notify_all, alerts=alerts,
                            blob_root=getattr(blobs, "root", None))  # a directory store's (S3: none)
    if app is not None:
        app.state.health_monitor = app.state.owncdn.health_monitor = monitor  # API and `admin` channel
    return asyncio.get_running_loop().create_task(monitor.run(), name="edge-health")


def start_blob_gc(store: Store, blobs, settings=None, app=None) -> asyncio.Task | None:
    """Blob GC every `settings.interval` seconds as a task of this loop (None without
    a blob store or with interval 0); its retention goes on `app.state` for the API
    (`POST /v1/blobs/gc`, the releases' `retained` flag)."""
    from owncdn.control.blobgc import GcSettings, run_periodically

    settings = settings or GcSettings()
    if app is not None:
        app.state.blob_retention = settings.retention
    if blobs is None or settings.interval <= 0:
        return None
    return asyncio.get_running_loop().create_task(
        run_periodically(store, blobs, settings.retention, settings.interval), name="blob-gc")
