"""``ApiServer``: the API under uvicorn in a background thread.

For ``owncdn up``, tests and scripts that need a real HTTP endpoint in the same
process: ``with ApiServer(app) as server: Client(server.url)``. Binds before
starting, so port 0 picks a free port and ``url`` is known at once.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from .sendfile import with_transport

__all__ = ["ApiServer"]


class ApiServer:
    """Serve ``app`` on ``host:port`` (port 0: a free one) in a daemon thread."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, self._sock.getsockname()[1]
        config = uvicorn.Config(with_transport(app), log_level="warning", lifespan="off",  # sendfile for blobs
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True, name=f"api:{self.port}")

    def __repr__(self) -> str:
        state = "running" if self._thread.is_alive() else "stopped"
        return f"<ApiServer {self.url} {state}>"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving: event streams end first (``Hub.close``), then uvicorn."""
        ctx = getattr(getattr(self.app, "state", None), "owncdn", None)
        if ctx is not None:
            ctx.hub.close()
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
