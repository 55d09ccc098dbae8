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


async def serve(store: Store, host: str, port: int, zone: str, started: asyncio.Event | None = None) -> None:
    """Serve the API until cancelled; then end the event streams and close the socket."""
    import socket

    import uvicorn

    from owncdn.control.api import create_app
    from owncdn.control.hub import Hub

    hub = Hub()
    app = create_app(store, zone=zone, hub=hub)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # the caller owns signals
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # raises why it could not start
        if started is not None:
            started.set()
        await asyncio.shield(task)
    finally:
        hub.close()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            task.cancel()
        sock.close()
