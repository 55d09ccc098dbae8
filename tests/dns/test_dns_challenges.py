"""ACME DNS-01 records served by owncdn's DNS, over whatever zone it serves (dns/challenges.py)."""

from __future__ import annotations

import asyncio

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from owncdn.core.config import parse_config
from owncdn.dns.cdnzone import build_zone
from owncdn.dns.server import DnsServer

CONFIG = """
version: 1
dns: {zone: cdn.test, nameservers: [ns1.cdn.test]}
locations: [{name: fra, lat: 50.1, lon: 8.7, addresses: [192.0.2.10]}]
services: [{name: blog, hostnames: [blog.example.com], origins: [http://o.test]}]
"""


async def ask(port: int, name: str, rdtype: str = "TXT") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return await asyncio.to_thread(dns.query.udp, query, "127.0.0.1", port=port, timeout=2)


def txt(response) -> set[str]:
    return {b"".join(r.strings).decode() for rrset in response.answer for r in rrset if rrset.rdtype == dns.rdatatype.TXT}


async def test_challenge_records_inside_and_outside_the_zone_survive_new_zones():
    config = parse_config(CONFIG, "cdn.yaml", lambda kind, name: None)
    server = await DnsServer.start(build_zone(config), "127.0.0.1", 0)
    try:
        outside = "_acme-challenge.blog.example.com"
        assert (await ask(server.port, outside)).rcode() == dns.rcode.REFUSED
        server.challenges.set(outside, ["token-a", "token-b"])  # a wildcard and its base name: two values
        server.challenges.set("_acme-challenge.blog.cdn.test", ["token-c"])
        answer = await ask(server.port, outside)
        assert answer.rcode() == dns.rcode.NOERROR and txt(answer) == {"token-a", "token-b"}
        assert answer.flags & dns.flags.AA
        assert txt(await ask(server.port, "_acme-challenge.blog.cdn.test")) == {"token-c"}
        assert (await ask(server.port, "www.example.com")).rcode() == dns.rcode.REFUSED  # not ours
        routed = await ask(server.port, "blog.cdn.test", "A")
        assert [r.address for rrset in routed.answer for r in rrset] == ["192.0.2.10"]

        server.set_zone(build_zone(config, serial=2))  # a new version: the records stay
        assert txt(await ask(server.port, outside)) == {"token-a", "token-b"}

        server.challenges.remove(outside)
        server.challenges.remove("_acme-challenge.blog.cdn.test")
        assert (await ask(server.port, outside)).rcode() == dns.rcode.REFUSED
        assert txt(await ask(server.port, "_acme-challenge.blog.cdn.test")) == set()
    finally:
        await server.close()
