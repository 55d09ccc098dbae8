"""The DNS server's metrics: queries by type, rcode and fast path; answers by location;
served on the --metrics listener."""

import asyncio
import socket

import dns.message
import httpx
from prometheus_client.parser import text_string_to_metric_families

from owncdn.core.config import parse_config
from owncdn.dns.cdnzone import build_zone
from owncdn.dns.geo import GeoDatabase
from owncdn.dns.metrics import DnsMetrics, location_addresses, serve_metrics
from owncdn.dns.server import DnsServer
from owncdn.testing.geodb import write_test_db

CONFIG = """
version: 1
dns: {zone: cdn.test, nameservers: [ns1.cdn.test], ttl: 20s,
      records: [{name: "@", type: CAA, value: '0 issue "letsencrypt.org"'}]}
locations:
  - {name: fra, lat: 50.11, lon: 8.68, addresses: [192.0.2.1, "2001:db8::1"]}
  - {name: iad, lat: 38.95, lon: -77.45, addresses: [198.51.100.1]}
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: ["https://origin.example.com"]
"""
NETWORKS = {"10.1.0.0/16": (48.85, 2.35), "10.2.0.0/16": (40.71, -74.0)}  # Paris, New York


async def ask(port: int, name: str, rdtype: str = "A", subnet: str | None = None) -> dns.message.Message:
    import dns.edns

    options = [dns.edns.ECSOption(subnet.split("/")[0], int(subnet.split("/")[1]))] if subnet else []
    query = dns.message.make_query(name, rdtype, use_edns=0, options=options)
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, query.to_wire())
        return dns.message.from_wire(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5))


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_queries_and_answers_are_counted_and_served(tmp_path):
    path = tmp_path / "geo.mmdb"
    write_test_db(path, NETWORKS)
    geo = GeoDatabase(str(path))
    config = parse_config(CONFIG, "cdn.yaml", lambda kind, name: None)
    server = await DnsServer.start(build_zone(config, geo), "127.0.0.1", 0)
    metrics = DnsMetrics(server, lambda: location_addresses(config)).attach()
    listener = await serve_metrics("127.0.0.1", 0, metrics.exposition)
    port = listener.sockets[0].getsockname()[1]
    try:
        for subnet in ("10.1.2.0/24", "10.1.2.0/24", "10.2.2.0/24"):
            await ask(server.port, "blog.cdn.test", subnet=subnet)  # Paris twice (once fast), New York
        await ask(server.port, "blog.cdn.test", "AAAA", subnet="10.1.2.0/24")
        await ask(server.port, "nothing.cdn.test")
        await ask(server.port, "cdn.test", "CAA")
        async with httpx.AsyncClient() as http:
            scraped = await http.get(f"http://127.0.0.1:{port}/metrics")
            missing = await http.get(f"http://127.0.0.1:{port}/other")
    finally:
        listener.close()
        await server.close()
        geo.close()
    assert scraped.status_code == 200 and missing.status_code == 404
    got = samples(scraped.text)
    q = "owncdn_dns_queries_total"
    assert got[(q, (("fast_path", "false"), ("rcode", "NOERROR"), ("type", "A")))] == 2
    assert got[(q, (("fast_path", "true"), ("rcode", "NOERROR"), ("type", "A")))] == 1
    assert got[(q, (("fast_path", "false"), ("rcode", "NOERROR"), ("type", "AAAA")))] == 1
    assert got[(q, (("fast_path", "false"), ("rcode", "NXDOMAIN"), ("type", "A")))] == 1
    assert got[(q, (("fast_path", "false"), ("rcode", "NOERROR"), ("type", "CAA")))] == 1
    a = "owncdn_dns_answers_total"
    assert got[(a, (("location", "fra"),))] == 3  # two A answers and one AAAA for Paris
    assert got[(a, (("location", "iad"),))] == 1
    assert got[("owncdn_dns_zone_serial", ())] == 1


async def test_answers_replayed_to_a_repeating_client_are_counted(tmp_path):
    """A resolver asking the same question from one address gets remembered answers
    (dns/udpbatch.py Rule 5); each of them is counted, on the fast path."""
    import socket

    import dns.message

    config = parse_config(CONFIG, "cdn.yaml", lambda kind, name: None)
    server = await DnsServer.start(build_zone(config, None), "127.0.0.1", 0)
    metrics = DnsMetrics(server, lambda: location_addresses(config)).attach()
    loop = asyncio.get_running_loop()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", server.port))
            for qid in range(1, 6):
                query = dns.message.make_query("blog.cdn.test", "A")
                query.id = qid
                await loop.sock_sendall(sock, query.to_wire())
                reply = dns.message.from_wire(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5))
                assert reply.id == qid and reply.answer
        queries, answers = metrics.totals()
    finally:
        await server.close()
    assert queries == {(1, 0, False): 1, (1, 0, True): 4}
    assert sum(answers.values()) == 5


async def test_metrics_attached_after_answers_were_remembered_still_count_cleanly():
    import socket

    import dns.message

    config = parse_config(CONFIG, "cdn.yaml", lambda kind, name: None)
    server = await DnsServer.start(build_zone(config, None), "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", server.port))

            async def ask_once(qid):
                query = dns.message.make_query("blog.cdn.test", "A")
                query.id = qid
                await loop.sock_sendall(sock, query.to_wire())
                return dns.message.from_wire(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5))

            await ask_once(1)
            await ask_once(2)  # remembered, before any metrics
            metrics = DnsMetrics(server, lambda: location_addresses(config)).attach()
            for qid in (3, 4):
                assert (await ask_once(qid)).id == qid
        queries, _ = metrics.totals()
        assert sum(queries.values()) == 2 and metrics.exposition()
    finally:
        await server.close()
