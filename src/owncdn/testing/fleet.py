"""A control plane and N edges following it, in this process, on loopback.

    async with Fleet(tmp_path, edges=5) as fleet:
        v = await fleet.apply(SOURCE)            # the control plane stores a version
        await fleet.wait_applied(v)              # every edge reported it
        r = await fleet.get(0, "/")              # a request to edge 0

Each edge has its own state directory (node identity, last-known-good snapshot) and
its own loopback address (127.0.1.N) when `spread` is true. The control plane can be
stopped and started again on the same port to test what edges do meanwhile.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from owncdn.core.config import parse_config
from owncdn.edge.server import EdgeServer
from owncdn.testing.client import HttpClient

EMPTY = "version: 1\n"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Fleet:
    def __init__(self, state: Path, edges: int = 3, env: str = "production", spread: bool = True,
                 health=None, locations: list[str] | None = None, control_tls=None) -> None:
        self.state = Path(state)
        self.count = edges
        self.env = env
        self.spread = spread
        self.port = free_port()
        self.control_tls = control_tls  # a ServerTls (owncdn.control.tlslisten): the API speaks HTTPS only
        self.url = f"{'https' if control_tls else 'http'}://127.0.0.1:{self.port}"
        self.store = None
        self.control_task: asyncio.Task | None = None
        self.edges: list[EdgeServer] = []
        self.admin_token = ""
        self.bootstrap_token = ""
        self.health = health  # HealthSettings of the control plane's edge monitor (None: defaults)
        self.blobs = None  # the control plane's blob store of pushed releases (<state>/control/blobs)
        self.locations = locations or [f"loc{i}" for i in range(edges)]  # edge i's location
        self.stopped_ports: dict[int, int] = {}  # edge i -> the port it listened on
        self.acme = None  # ManagerSettings of the certificate manager (owncdn.control.acme); None: defaults
        self.tls = False  # edges also listen for HTTPS (EdgeServer.tls_port)
        self.admin = False  # edges also open an admin listener (/metrics, /cache, /probe) on their address
        self.blob_gc = None  # GcSettings of blob GC (owncdn.control.blobgc); None: defaults
        self.analytics = None  # shipped access logs (owncdn.control.analytics), <state>/control/analytics.duckdb

    def __repr__(self) -> str:
        return f"<Fleet {self.url} edges={len(self.edges)}>"

    @property
    def api(self):
        from owncdn.client import Client

        return Client(self.url, self.admin_token)

    async def __aenter__(self) -> "Fleet":
        from owncdn.control.server import first_start_tokens, open_store

        self.store = open_store(self.state / "control", None)
        first_start_tokens(self.store, self.state / "control")
        from owncdn.control.dirblobs import DirBlobStore

        self.blobs = DirBlobStore(self.state / "control" / "blobs")
        from owncdn.control.analytics import Analytics

        self.analytics = Analytics(self.state / "control" / "analytics.duckdb")
        self.admin_token = (self.state / "control" / "admin.token").read_text().strip()
        self.bootstrap_token = (self.state / "control" / "bootstrap.token").read_text().strip()
        await self.start_control()
        for i in range(self.count):
            await self.start_edge(i)
        return self

    async def __aexit__(self, *exc) -> None:
        for edge in self.edges:
            if edge is not None:
                await edge.close()
        await self.stop_control()
        self.store.close()
        self.analytics.close()

    # -- the control plane -------------------------------------------------------------
    async def start_control(self) -> None:
        from owncdn.control.server import serve

        started = asyncio.Event()
        self.control_task = asyncio.get_running_loop().create_task(
            serve(self.store, "127.0.0.1", self.port, "cdn.test", started, health=self.health,
                  blobs=self.blobs, acme=self.acme, analytics=self.analytics, blob_gc=self.blob_gc,
                  tls=self.control_tls))
        await asyncio.wait_for(started.wait(), 10)

    async def stop_control(self) -> None:
        if self.control_task is not None:
            self.control_task.cancel()
            try:
                await self.control_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping, whatever it was doing
                pass
            self.control_task = None

    # -- edges ---------------------------------------------------------------------------
    def address(self, i: int) -> str:
        return f"127.0.1.{i + 1}" if self.spread else "127.0.0.1"

    async def start_edge(self, i: int, port: int = 0) -> EdgeServer:
        """Start edge `i` (again), on `port` (0: a free one)."""
        config = parse_config(EMPTY, "(empty)", lambda kind, name: None)
        edge = await EdgeServer.start(
            config, listen=f"{self.address(i)}:{port}", access_log="off", control=self.url,
            token=self.bootstrap_token, state_dir=self.state / f"edge-{i}", env=self.env,
            edge_id=f"edge-{i}", location=self.locations[i],
            tls_listen=f"{self.address(i)}:0" if self.tls else None,
            admin=f"{self.address(i)}:0" if self.admin else None)
        if i < len(self.edges):
            self.edges[i] = edge
        else:
            self.edges.append(edge)
        return edge

    async def stop_edge(self, i: int) -> None:
        self.stopped_ports[i] = self.edges[i].port
        await self.edges[i].close()

    async def restart_edge(self, i: int) -> EdgeServer:
        """Start a stopped edge again on its old address and port, as a real edge would."""
        return await self.start_edge(i, self.stopped_ports.pop(i))

    # -- doing things ----------------------------------------------------------------------
    async def apply(self, source: str, comment: str = "") -> int:
        version = await asyncio.to_thread(self.api.add_version, self.env, source, comment)
        return version["number"]

    async def status(self) -> dict:
        return await asyncio.to_thread(self.api.status, self.env)

    async def wait_applied(self, version: int, timeout: float = 10.0, edges: list[int] | None = None) -> None:
        """Until the edges (all by default) run `version` and the control plane has
        accepted their reports."""
        wanted = [self.edges[i] for i in (range(len(self.edges)) if edges is None else edges)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(e.agent.version != version or version not in e.agent.reported_at for e in wanted):
            if loop.time() > deadline:
                raise TimeoutError(f"not every edge runs v{version}: {[e.agent for e in wanted]}")
            await asyncio.sleep(0.005)

    async def get(self, i: int, path: str = "/", host: str = "example.test", **kw):
        async with HttpClient(self.address(i), self.edges[i].port, default_host=host) as client:
            return await client.get(path, **kw)
