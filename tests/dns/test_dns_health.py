"""Edge health end to end: the control plane's monitor takes a location's stopped edges
out of the DNS answers, and puts them back when they return.

A fleet of three edges (two in fra, one in iad) follows the control plane; a real
DNS server follows it too, with a small GeoIP database placing 10.1.0.0/16 in Paris
and 10.2.0.0/16 in New York. Everything is waited for by polling; nothing asserts
on times.
"""

from __future__ import annotations

import asyncio

import dns.edns
import dns.message
import dns.query

from owncdn.cli.route_cmd import explain_lines
from owncdn.control.health import HealthSettings
from owncdn.core.config import parse_config
from owncdn.core.routing import EdgeHealth
from owncdn.dns.cdnzone import build_zone
from owncdn.dns.geo import GeoDatabase
from owncdn.dns.health import follow_health
from owncdn.dns.node import DnsNode
from owncdn.dns.server import DnsServer
from owncdn.edge.sync import SyncAgent
from owncdn.testing.fleet import Fleet
from owncdn.testing.geodb import write_test_db

SOURCE = """
version: 1
dns: {zone: cdn.test, nameservers: [ns1.cdn.test], ttl: 20s}
locations:
  - {name: fra, lat: 50.11, lon: 8.68}
  - {name: iad, lat: 38.95, lon: -77.45}
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: ["http://127.0.0.1:9"]
"""
NETWORKS = {"10.1.0.0/16": (48.85, 2.35), "10.2.0.0/16": (40.71, -74.0)}  # Paris, New York
FRA, IAD = ["127.0.1.1", "127.0.1.2"], ["127.0.1.3"]
FAST = HealthSettings(interval=0.05, timeout=1.0, fall=3, rise=2)


async def answer(port: int, subnet: str) -> list[str]:
    address, prefix = subnet.split("/")
    query = dns.message.make_query("blog.cdn.test", "A", use_edns=0,
                                   options=[dns.edns.ECSOption(address, int(prefix))])
    reply = await asyncio.to_thread(dns.query.udp, query, "127.0.0.1", port=port, timeout=5)
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


async def until_answer(port: int, subnet: str, expected: list[str], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (got := await answer(port, subnet)) != expected:
        if loop.time() > deadline:
            raise TimeoutError(f"{subnet}: still {got}, waiting for {expected}")
        await asyncio.sleep(0.02)


async def test_a_location_whose_edges_stop_leaves_the_answers_and_comes_back(tmp_path):
    write_test_db(tmp_path / "geo.mmdb", NETWORKS)
    geo = GeoDatabase(str(tmp_path / "geo.mmdb"))
    async with Fleet(tmp_path, edges=3, health=FAST, locations=["fra", "fra", "iad"]) as fleet:
        empty = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
        server = await DnsServer.start(build_zone(empty, geo), "127.0.0.1", 0)
        agent = SyncAgent(DnsNode(server, geo, config=empty), fleet.url, fleet.bootstrap_token, tmp_path / "dns",
                          name="dns-1", location="fra", env=fleet.env, address=f"127.0.0.1:{server.port}",
                          kind="dns")
        follow_health(agent)
        agent.start()
        try:
            await fleet.wait_applied(await fleet.apply(SOURCE))
            # every edge up: Paris gets both fra edges, New York the iad one
            await until_answer(server.port, "10.1.2.0/24", FRA)
            await until_answer(server.port, "10.2.2.0/24", IAD)

            await fleet.stop_edge(0)
            await fleet.stop_edge(1)
            # after three failed checks each, fra is down: Paris falls back to iad
            await until_answer(server.port, "10.1.2.0/24", IAD)
            health = {e["name"]: e for e in await asyncio.to_thread(fleet.api.edge_health, fleet.env)}
            edges = [EdgeHealth.from_dict(e) for e in health.values()]
            explained = explain_lines(agent.edge.config, geo, "192.0.2.53", "blog.cdn.test", "10.1.2.0/24",
                                      edges=edges)

            await fleet.restart_edge(0)
            await fleet.restart_edge(1)
            # two good checks each and fra is back, with both edges
            await until_answer(server.port, "10.1.2.0/24", FRA)
            back = {e["name"]: e for e in await asyncio.to_thread(fleet.api.edge_health, fleet.env)}
        finally:
            await agent.stop()
            await server.close()
            geo.close()
    assert [health[f"edge-{i}"]["healthy"] for i in range(3)] == [False, False, True]
    assert health["edge-0"]["failures"] >= 3 and "connection refused" in health["edge-0"]["last_error"]
    order = [line.split()[:2] + line.split()[4:5] for line in explained if line.startswith("  ") and "km" in line]
    assert order == [["1.", "iad", "healthy"], ["2.", "fra", "DOWN"]]
    assert any(line.split()[:2] == ["edge", "edge-0"] and line.endswith("DOWN") for line in explained)
    assert "fallback chain: iad -> fra (DOWN)" in explained
    assert "answer A: 127.0.1.3 from iad (ttl 20)" in explained
    assert all(back[f"edge-{i}"]["healthy"] for i in range(3))


async def test_new_health_swaps_the_zone_and_no_pre_encoded_answer_survives(tmp_path):
    write_test_db(tmp_path / "geo.mmdb", NETWORKS)
    geo = GeoDatabase(str(tmp_path / "geo.mmdb"))
    config = parse_config(SOURCE, "cdn.yaml", lambda kind, name: None)
    server = await DnsServer.start(build_zone(config, geo), "127.0.0.1", 0)
    node = DnsNode(server, geo, config=config)
    up = [EdgeHealth("e1", "fra", "127.0.1.1:80"), EdgeHealth("e3", "iad", "127.0.1.3:80")]
    query = dns.message.make_query("blog.cdn.test", "A", use_edns=0,
                                   options=[dns.edns.ECSOption("10.1.2.0", 24)]).to_wire()

    async def ask() -> list[str]:  # the very same bytes each time: the exact-answer cache's best case
        reply = await asyncio.to_thread(dns.query.udp, dns.message.from_wire(query), "127.0.0.1",
                                        port=server.port, timeout=5)
        return [rr.to_text() for rrset in reply.answer for rr in rrset]

    try:
        node.set_edges(up)
        first, again = await ask(), await ask()
        # answered again from pre-encoded bytes: the answerer's, or the UDP reader's (udpbatch Rule 5)
        replayed = server.answerer.hits + len(getattr(server._udp, "known", ()))
        zone = server.zone
        node.set_edges([EdgeHealth("e1", "fra", "127.0.1.1:80", healthy=False), up[1]])
        moved = await ask()
        node.set_edges([EdgeHealth("e1", "fra", "127.0.1.1:80", healthy=False),
                        EdgeHealth("e3", "iad", "127.0.1.3:80", healthy=False)])
        everything = await ask()
    finally:
        await server.close()
        geo.close()
    assert first == again == ["127.0.1.1"] and replayed >= 1
    assert server.zone is not zone and server.zone.soa.serial > zone.soa.serial
    assert moved == ["127.0.1.3"]
    assert everything == ["127.0.1.1", "127.0.1.3"]  # every location down: all of them, nearest first
