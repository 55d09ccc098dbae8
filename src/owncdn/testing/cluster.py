"""An edge in front of a scripted origin, in this process, for scenario tests.

    async with EdgeUnderTest(origin, SERVICE_YAML, clock=FakeClock()) as edge:
        r = await edge.client().get("/a")

The config is YAML with `{origin}` standing for the origin's URL; cache time moves
with the fake clock, so expiry needs no sleeping.
"""

from __future__ import annotations

from owncdn.core.config import parse_config
from owncdn.edge.server import EdgeServer
from owncdn.testing.client import HttpClient
from owncdn.testing.clock import FakeClock
from owncdn.testing.origin import FakeOrigin

ONE_SERVICE = """
version: 1
edge: {{id: edge-t, location: test, memory_cache: 64MiB, header_timeout: 1s}}
services:
  - name: site
    hostnames: [example.test, "*.example.test"]
    origins: ["{origin}"]
"""


class EdgeUnderTest:
    def __init__(self, origin: FakeOrigin, config: str = ONE_SERVICE, *, clock: FakeClock | None = None,
                 access_log: str = "off", env: dict[str, str] | None = None,
                 server_options: dict | None = None) -> None:
        self.origin = origin
        self.server_options = server_options or {}  # more EdgeServer.start arguments (tls_listen, ...)
        self.text = config
        self.clock = clock or FakeClock()
        self.access_log = access_log
        self.env = env or {}
        self.server: EdgeServer | None = None
        self.clients: list[HttpClient] = []

    async def __aenter__(self) -> "EdgeUnderTest":
        if self.origin.server is None:
            await self.origin.start()
        text = self.text.format(origin=self.origin.url)
        config = parse_config(text, "scenario.yaml", lambda kind, name: self.env.get(name) if kind == "env" else None)
        self.server = await EdgeServer.start(config, clock=self.clock, access_log=self.access_log,
                                             **self.server_options)
        return self

    async def __aexit__(self, *exc) -> None:
        for client in self.clients:
            await client.close()
        await self.server.close()
        await self.origin.close()

    @property
    def edge(self):
        return self.server.edge

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, host: str = "example.test") -> HttpClient:
        client = HttpClient("127.0.0.1", self.port, default_host=host)
        self.clients.append(client)
        return client

    async def get(self, path: str = "/", headers: dict[str, str] | None = None, method: str = "GET", **kw):
        """One request on a fresh connection."""
        async with HttpClient("127.0.0.1", self.port) as client:
            return await client.request(method, path, headers=headers, **kw)
