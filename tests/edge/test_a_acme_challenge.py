"""a: ACME HTTP-01 answered by the edge for any Host (edge/challenges.py)."""

from __future__ import annotations

from owncdn.core.config import parse_config
from owncdn.edge.challenges import acme_http_handler
from owncdn.edge.server import EdgeServer
from owncdn.testing.client import HttpClient

CONFIG = """
version: 1
services: [{name: blog, hostnames: [blog.example.com], origins: ["http://127.0.0.1:9"]}]
"""


class Agent:
    def __init__(self, edge) -> None:
        self.edge = edge


async def test_known_tokens_are_answered_for_any_host_and_unknown_ones_fall_through():
    config = parse_config(CONFIG, "cdn.yaml", lambda kind, name: None)
    server = await EdgeServer.start(config, access_log="off")
    try:
        agent = Agent(server.edge)
        await acme_http_handler(agent, None, {"key": "tok123", "key_authorization": "tok123.thumbprint"})
        async with HttpClient("127.0.0.1", server.port, default_host="new.example.org") as client:
            r = await client.get("/.well-known/acme-challenge/tok123")
            assert r.status == 200 and r.body == b"tok123.thumbprint"
            assert r.headers["content-type"] == "text/plain" and r.headers["cache-control"] == "no-store"
            r = await client.get("/.well-known/acme-challenge/unknown")
            assert r.status == 421  # not ours: the normal flow (no service for this host)
        await acme_http_handler(agent, None, {"key": "tok123", "deleted": True})
        async with HttpClient("127.0.0.1", server.port, default_host="new.example.org") as client:
            assert (await client.get("/.well-known/acme-challenge/tok123")).status == 421
    finally:
        await server.close()
