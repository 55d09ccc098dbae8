"""DNS routes a push service only to locations whose edges serve its current release
(the control plane's `release_ready` channel), a real DNS node following a real control plane."""

import asyncio
import hashlib

import dns.message
import dns.query

from owncdn.client import Client
from owncdn.control.health import HealthSettings
from owncdn.testing.dnsnode import DnsNodeUnderTest
from owncdn.testing.fleet import Fleet

SOURCE = """
version: 1
dns: {zone: cdn.test, nameservers: [ns1.cdn.test]}
locations:
  - {name: nyc, lat: 40.7, lon: -74.0, addresses: [192.0.2.10]}
  - {name: fra, lat: 50.1, lon: 8.7, addresses: [192.0.2.20]}
services:
  - name: blog
    hostnames: [blog.example.com]
    mode: push
  - name: shop
    hostnames: [shop.example.com]
    origins: ["http://127.0.0.1:9"]
"""


async def a_records(port: int, name: str) -> list[str]:
    query = dns.message.make_query(name, "A")
    reply = await asyncio.to_thread(dns.query.udp, query, "127.0.0.1", port=port, timeout=5)
    return sorted(r.address for rrset in reply.answer for r in rrset)


async def until(port: int, name: str, expected: list[str]) -> None:
    for _ in range(500):
        if await a_records(port, name) == expected:
            return
        await asyncio.sleep(0.01)
    assert await a_records(port, name) == expected


def release(api: Client, body: bytes) -> int:
    sha = hashlib.sha256(body).hexdigest()
    api.put_blob(sha, body)
    return api.create_release("production", "blog", {"files": {"index.html": {"sha256": sha, "size": len(body)}}})["number"]


async def test_a_push_service_is_routed_only_where_its_release_is_served(tmp_path):
    async with Fleet(tmp_path, edges=0, health=HealthSettings(enabled=False)) as fleet, DnsNodeUnderTest(fleet, tmp_path / "dns") as node:
        api = fleet.api
        boot = Client(fleet.url, fleet.bootstrap_token)
        edges = {}
        for location in ("nyc", "fra"):  # stand-ins for edges: they only report
            address = {"nyc": "192.0.2.10:80", "fra": "192.0.2.20:80"}[location]  # as configured: no new addresses
            made = await asyncio.to_thread(boot.register_node, f"edge-{location}", "edge", location, "production", address)
            edges[location] = (made["node_id"], Client(fleet.url, made["token"]))
        await fleet.apply(SOURCE)
        await until(node.port, "shop.cdn.test", ["192.0.2.10"])  # no client position: the first location

        one = await asyncio.to_thread(release, api, b"one")
        await until(node.port, "blog.cdn.test", ["192.0.2.10"])  # nobody serves it yet: as any service
        node_id, as_fra = edges["fra"]
        await asyncio.to_thread(as_fra.report_release, node_id, "blog", one, "serving")
        await until(node.port, "blog.cdn.test", ["192.0.2.20"])  # only fra serves release 1
        assert await a_records(node.port, "shop.cdn.test") == ["192.0.2.10"]  # a pull service: unchanged

        node_id, as_nyc = edges["nyc"]
        await asyncio.to_thread(as_nyc.report_release, node_id, "blog", one, "serving")
        await until(node.port, "blog.cdn.test", ["192.0.2.10"])  # both: the first location again

        two = await asyncio.to_thread(release, api, b"two")
        await asyncio.to_thread(as_nyc.report_release, edges["nyc"][0], "blog", two, "serving")
        await until(node.port, "blog.cdn.test", ["192.0.2.10"])
        await asyncio.to_thread(api.activate_release, "production", "blog", one)  # rollback
        await until(node.port, "blog.cdn.test", ["192.0.2.20"])  # nyc moved on to 2; only fra serves 1
