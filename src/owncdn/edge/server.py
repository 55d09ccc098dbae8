"""Running an edge: listening sockets, the admin endpoint, the sweeper, shutdown.

`EdgeServer.start()` is what both the `owncdn edge` command and the tests use: it
binds the public and admin listeners (port 0 picks a free port), and once a second
sweeps connections for header and keep-alive timeouts and flushes the access log.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson

from owncdn.edge.accesslog import AccessLog
from owncdn.edge.adminapi import admin_handler, answer_admin
from owncdn.edge.load import start_load_meter, stop_load_meter
from owncdn.edge.app import Edge
from owncdn.edge.certsync import follow_certs
from owncdn.edge.clock import SystemClock
from owncdn.edge.logship import start_shipping
from owncdn.edge.metrics import CONTENT_TYPE
from owncdn.edge.protocol import HttpConnection, Limits
from owncdn.edge.tlslistener import listen_tls, open_cert_store
from owncdn.edge.releases import open_releases
from owncdn.edge.releasesync import follow_releases
from owncdn.edge.static import warm_release
from owncdn.gctune import quiet_collector


class AdminApp:
    """GET /healthz, /stats and /metrics (Prometheus text format) on the admin listener; /cache and
    POST /probe are in edge/adminapi.py."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.connections: set = set()

    def handle(self, req) -> None:
        if req.target == "/healthz":
            self._send(req, 200, b"ok\n", b"text/plain")
        elif req.target == "/stats":
            self._send(req, 200, orjson.dumps(self.stats(), option=orjson.OPT_INDENT_2), b"application/json")
        elif req.target.partition("?")[0] == "/metrics":
            self._send(req, 200, self.edge.metrics.exposition(), CONTENT_TYPE)
        elif (handled := answer_admin(self, req)) is not None:  # /cache, /probe (edge/adminapi.py)
            return None if handled is True else handled
        else:
            self._send(req, 404, b"not found: try /healthz, /stats or /metrics\n", b"text/plain")

    def stats(self) -> dict:
        edge = self.edge
        return {
            "edge": edge.edge_id,
            "location": edge.location,
            "responses": edge.counts,
            "store": {"keys": len(edge.store.entries), "bytes": edge.store.used,
                      "budget": edge.store.budget, "evictions": edge.store.evictions},
            "connections": len(edge.connections),
            "fills_in_flight": len(edge.fills),
            "releases": edge.releases.stats() if edge.releases is not None else {},  # edge/releases.py
            "logs": {s.name: s.stats() for s in getattr(edge, "log_shippers", ())},  # edge/logship.py
        }

    def reject(self, req, status: int, reason: str) -> None:
        self._send(req, status, reason.encode() + b"\n", b"text/plain")

    def crashed(self, exc) -> None:
        self.edge.crashed(exc)

    def _send(self, req, status: int, body: bytes, ctype: bytes) -> None:
        req.conn.write(b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
            status, ctype, len(body), b"" if req.keep_alive else b"Connection: close\r\n", body))
        req.conn.finish(req)


def _snapshot_config(snapshot: dict, agent):
    """The last-known-good config, or None if it no longer parses here."""
    from owncdn.core.config import ConfigError, parse_config

    try:
        return parse_config(snapshot["source"], f"snapshot v{snapshot['number']}", agent.resolve, env=agent.env)
    except ConfigError:
        agent.version = 0
        return None


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {addr!r}")
    return host.strip("[]"), int(port)


class EdgeServer:
    def __init__(self, edge: Edge, servers: list, sweeper: asyncio.Task) -> None:
        self.edge = edge
        self.servers = servers
        self.sweeper = sweeper
        self.agent = None
        self.certs = None  # edge/tls.py CertStore; set by start()
        self.tls_server = None
        self.push = None  # follows pushed releases (edge/releasesync.py)
        self.warming: list[asyncio.Task] = []  # releases on disk of an edge on its own (edge/static.py rule 6)

    def __repr__(self) -> str:
        return f"<EdgeServer {self.edge.served_by} port={self.port} admin={self.admin_port}>"

    @property
    def port(self) -> int:
        return self.servers[0].sockets[0].getsockname()[1]

    @property
    def tls_port(self) -> int | None:
        return self.tls_server.sockets[0].getsockname()[1] if self.tls_server is not None else None

    @property
    def admin_port(self) -> int | None:
        return self.servers[1].sockets[0].getsockname()[1] if len(self.servers) > 1 else None

    @classmethod
    async def start(cls, config, *, listen: str = "127.0.0.1:0", admin: str | None = None,
                    clock=None, edge_id: str | None = None, location: str | None = None,
                    access_log: str | None = None, control: str | None = None,
                    token: str | None = None, state_dir: Path | None = None,
                    env: str = "production", reuse_port: bool = False, disk_share: int = 1,
                    geoip: str | None = None, tls_listen: str | None = None,
                    tls_files: tuple[str, str] | None = None,
                    tls_tickets: str | None = None) -> "EdgeServer":
        """Bind and serve `config`. With `control`, follow the control plane: start
        from the last-known-good snapshot in `state_dir` if there is one, register with
        `token` if this node has no identity yet, and apply every version it sends."""
        agent = None
        if control is not None:
            from owncdn.edge.sync import SyncAgent

            state_dir = Path(state_dir or ".owncdn-edge")
            name = edge_id or config.edge.id
            agent = SyncAgent(None, control, token, state_dir, name=name,
                              location=location or config.edge.location, env=env, address=listen)
            snapshot = agent.restore()
            if snapshot is not None:
                config = _snapshot_config(snapshot, agent) or config
        settings = config.edge
        edge_id = edge_id or settings.id
        location = location or settings.location
        log = AccessLog(access_log or settings.access_log, edge_id, location)
        edge = Edge(config, clock=clock or SystemClock(), edge_id=edge_id, location=location, access_log=log,
                    disk_share=disk_share, geoip=geoip)
        edge.state_dir = Path(state_dir) if state_dir is not None else None
        edge.releases = open_releases(state_dir, config, control)  # pushed releases on disk (edge/releases.py)
        if edge.releases is not None:
            edge.variants.forms = edge.releases.forms  # compressed forms kept on disk too (edge/variants.py Rule 3)
        limits = Limits(settings.max_request_line, settings.max_header_bytes,
                        settings.header_timeout, settings.keepalive_timeout)
        loop = asyncio.get_running_loop()
        host, port = _split(listen)
        servers = [await loop.create_server(lambda: HttpConnection(edge, limits, loop), host, port,
                                            reuse_address=True, reuse_port=reuse_port or None, backlog=1024)]
        # TLS and HTTP/2 (edge/tlslistener.py): certificates by SNI, kept in <state_dir>/certs
        certs = open_cert_store(state_dir, tls_files, tls_tickets)  # tls_tickets: the workers' shared key file
        tls_server = await listen_tls(edge, certs, limits, tls_listen, reuse_port=reuse_port) if tls_listen else None
        if admin:  # last: an admin port that answers means every listener is bound
            admin_app = AdminApp(edge)
            ahost, aport = _split(admin)
            servers.append(await loop.create_server(lambda: HttpConnection(admin_app, limits, loop), ahost, aport,
                                                    reuse_address=True))
            edge.admin_address = f"{ahost}:{servers[-1].sockets[0].getsockname()[1]}"  # edge/health.py Rule 4
        sweeper = loop.create_task(cls._sweep(edge, loop))
        start_load_meter(edge)  # loop lag, steal, load average (edge/load.py)
        server = cls(edge, servers, sweeper)
        server.certs, server.tls_server, edge.certs = certs, tls_server, certs
        # log shipping (edge/logship.py): spools under <state_dir>/logs, to the control plane and edge.logs.sinks
        edge.log_shippers = start_shipping(log, settings.logs, Path(state_dir or ".owncdn-edge"), agent, edge_id)
        if agent is not None:
            agent.edge = edge
            agent.address = f"{host}:{server.port}"
            server.push = follow_releases(edge, agent)
            follow_certs(agent)  # certificates and HTTP-01 tokens (edge/certsync.py)
            agent.handlers["admin"] = admin_handler  # the probe token (edge/adminapi.py)
            agent.start()
            server.agent = agent
        elif edge.releases is not None:  # on its own: its releases on disk are warmed here
            server.warming = [loop.create_task(warm_release(edge, service)) for service in list(edge.releases.live)]
        return server

    @staticmethod
    async def _sweep(edge: Edge, loop) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for conn in list(edge.connections):
                conn.check_timeouts(now)
            edge.log.flush()

    async def close(self) -> None:
        if self.agent is not None:
            await self.agent.stop()
        if self.push is not None:
            await self.push.close()
        for task in self.warming:
            task.cancel()
        await asyncio.gather(*self.warming, return_exceptions=True)
        self.sweeper.cancel()
        if self.certs is not None:
            self.certs.close()  # the ticket key timer (edge/tlslistener.py Rule 5)
        stop_load_meter(self.edge)
        servers = self.servers + ([self.tls_server] if self.tls_server is not None else [])
        for server in servers:
            server.close()
        for conn in list(self.edge.connections):
            conn.close()
        for server in servers:
            await server.wait_closed()
        self.edge.close()
        self.edge.log.close()
        for shipper in self.edge.log_shippers:  # queued lines to their spools (edge/logship.py rule 5)
            await shipper.close()


async def serve_forever(config, drain: float = 0.0, **kwargs) -> None:
    """Run until SIGINT/SIGTERM (the `owncdn edge` command); with `drain` seconds,
    first drain (`owncdn.edge.health.drain`) before closing."""
    server = await EdgeServer.start(config, **kwargs)
    from owncdn.core.content.bundle import prepare

    prepare()  # what the first bundle of a push needs (bundle.py Rule 5)
    quiet_collector()  # owncdn/gctune.py
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        if drain > 0:
            from owncdn.edge.health import drain as drain_edge

            stop.clear()
            await drain_edge(server.edge, drain, stop)
    finally:
        await server.close()
