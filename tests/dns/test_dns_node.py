"""The DNS server follows the control plane like an edge: versions become zones."""

import asyncio

import dns.message
import dns.query
import dns.rcode

from owncdn.core.config import parse_config
from owncdn.dns.cdnzone import build_zone
from owncdn.dns.node import DnsNode
from owncdn.dns.server import DnsServer
from owncdn.edge.sync import SyncAgent
from owncdn.testing.fleet import Fleet

SOURCE = """
version: 1
dns: {{zone: cdn.test, nameservers: [ns1.cdn.test]{records}}}
locations:
  - {{name: fra, lat: 50.11, lon: 8.68, addresses: [192.0.2.1]}}
services:
{services}
"""
SERVICE = """  - name: {name}
    hostnames: [{name}.example.com]
    origins: ["http://127.0.0.1:9"]
"""


def source(*names: str, records: str = "") -> str:
    return SOURCE.format(services="".join(SERVICE.format(name=n) for n in names), records=records)


async def answer(port: int, name: str):
    query = dns.message.make_query(name, "A")
    return await asyncio.to_thread(dns.query.udp, query, "127.0.0.1", port=port, timeout=5)


async def test_a_dns_node_applies_versions_and_rejects_one_that_makes_no_zone(tmp_path):
    async with Fleet(tmp_path, edges=1) as fleet:
        empty = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
        server = await DnsServer.start(build_zone(empty), "127.0.0.1", 0)
        agent = SyncAgent(DnsNode(server), fleet.url, fleet.bootstrap_token, tmp_path / "dns",
                          name="dns-1", location="fra", env=fleet.env, address=f"127.0.0.1:{server.port}", kind="dns")
        agent.start()
        try:
            v1 = await fleet.apply(source("blog"))
            await fleet.wait_applied(v1)
            while v1 not in agent.reported_at:
                await asyncio.sleep(0.01)
            first = await answer(server.port, "blog.cdn.test")
            v2 = await fleet.apply(source("blog", "shop"))
            while v2 not in agent.reported_at:
                await asyncio.sleep(0.01)
            second = await answer(server.port, "shop.cdn.test")
            bad = ', records: [{name: "@", type: A, value: "not-an-address"}]'
            v3 = await fleet.apply(source("blog", "shop", "more", records=bad))
            while v3 not in agent.reported_at:
                await asyncio.sleep(0.01)
            third = await answer(server.port, "more.cdn.test")
            nodes = {n["name"]: n for n in (await fleet.status())["nodes"]}
        finally:
            await agent.stop()
            await server.close()
    assert [rr.to_text() for rrset in first.answer for rr in rrset] == ["192.0.2.1"]
    assert [rr.to_text() for rrset in second.answer for rr in rrset] == ["192.0.2.1"]
    assert third.rcode() == dns.rcode.NXDOMAIN  # v3 rejected: still serving v2's zone
    assert (nodes["dns-1"]["kind"], nodes["dns-1"]["status"], nodes["dns-1"]["running_version"]) == ("dns", "rejected", v2)
    assert "not-an-address" in nodes["dns-1"]["reason"]
    assert nodes["edge-0"]["running_version"] == v3
