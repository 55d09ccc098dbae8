"""The DNS server's Prometheus metrics, on ``owncdn dns --metrics HOST:PORT`` (``GET /metrics``).

Rules:
1. Every answered query adds one to a plain dict keyed by (query type, rcode,
   fast path), where the fast path is an answer replayed from the pre-encoded
   cache (``wire.Answerer``'s hits). The query type is read at the first zero byte
   after the header (the end of an uncompressed name: every name a query carries);
   nothing is parsed twice, and prometheus_client is touched only at scrape time.
2. An answer to an A or AAAA query counts for the location whose address comes
   first in it: the address is read at its fixed place after the question (the
   answer's owner name is a 2-byte pointer to the question) and kept with the
   query's key; at scrape time addresses are mapped to locations with the address
   -> location map of the zone being served (rebuilt when the zone changes). An
   address of no location counts as ``-``.
3. The listener is a minimal HTTP/1.1 responder for ``GET /metrics`` (and
   ``/healthz``); it holds no state but the counters and closes every connection
   after one answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import defaultdict
from collections.abc import Callable

import dns.rcode
import dns.rdatatype
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

PREFIX = "owncdn_dns_"
A, AAAA = b"\x00\x01", b"\x00\x1c"
FOUR, SIXTEEN = b"\x00\x04", b"\x00\x10"
__all__ = ["DnsMetrics", "location_addresses", "serve_metrics"]


def location_addresses(config, edges=()) -> dict[bytes, str]:
    """Packed address -> location name, from the config's locations and the edges' IPs."""
    out: dict[bytes, str] = {}
    for loc in getattr(config, "locations", ()) or ():
        for address in loc.addresses:
            out[ipaddress.ip_address(str(address)).packed] = loc.name
    for edge in edges:
        ip = getattr(edge, "ip", None)
        if ip:
            out.setdefault(ipaddress.ip_address(ip).packed, edge.location)
    return out


def count_key(data: bytes, response: bytes, fast: bool) -> tuple:
    """The counter a response adds to (Rules 1-2)."""
    end = data.find(0, 12)  # Rule 1
    qtype = data[end + 1:end + 3]
    address = None
    if (qtype == A or qtype == AAAA) and response[7]:  # Rule 2: an answer record
        start = end + 17  # question, then pointer, type, class, ttl, rdlength
        if response[start - 2:start] == (FOUR if qtype == A else SIXTEEN):
            address = response[start:start + (4 if qtype == A else 16)]
    return qtype, response[3] & 0x0F, fast, address


class DnsMetrics:
    """Counters around one ``DnsServer`` (Rules 1-2); ``addresses()`` gives Rule 2's map."""

    def __init__(self, server, addresses: Callable[[], dict[bytes, str]]) -> None:
        self.server = server
        self.addresses = addresses
        self.counts: defaultdict[tuple, int] = defaultdict(int)  # (qtype bytes, rcode, fast path, first address or None) -> n
        self._zone = None
        self._map: dict[bytes, str] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def __repr__(self) -> str:
        return f"<DnsMetrics queries={sum(self.counts.values())}>"

    def attach(self) -> "DnsMetrics":
        """Wrap the server's answerer (its protocols call ``answerer.answer``); a
        batch UDP reader (``udpbatch`` Rule 5) counts the answers it replays itself."""
        answerer = self.server.answerer
        inner = answerer.answer
        counts = self.counts

        def answer(data: bytes, client: str, udp: bool = True):
            hits = answerer.hits
            response = inner(data, client, udp)
            if response is None:
                return None
            counts[count_key(data, response, answerer.hits != hits)] += 1
            return response

        answerer.answer = answer
        udp = getattr(self.server, "_udp", None)
        if udp is not None and hasattr(udp, "counts"):
            udp.counts = counts
            udp.known.clear()  # answers remembered before carry no counter key
        return self

    def totals(self) -> tuple[dict[tuple[int, int, bool], int], dict[str, int]]:
        """(queries by (type, rcode, fast path), answers by location), at scrape time:
        addresses are mapped to locations with the map of the zone served now."""
        zone = self.server.zone
        if zone is not self._zone:
            self._zone, self._map = zone, self.addresses()
        queries: dict[tuple[int, int, bool], int] = {}
        answers: dict[str, int] = {}
        for (qtype, rcode, fast, address), n in list(self.counts.items()):
            key = (int.from_bytes(qtype, "big"), rcode, fast)
            queries[key] = queries.get(key, 0) + n
            if address is not None:
                where = self._map.get(address, "-")
                answers[where] = answers.get(where, 0) + n
        return queries, answers

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Collector(Collector):
    def __init__(self, metrics: DnsMetrics) -> None:
        self.metrics = metrics

    def collect(self):
        m = self.metrics
        counted, answered = m.totals()
        queries = CounterMetricFamily(PREFIX + "queries", "Queries answered, by type, rcode and whether the "
                                      "pre-encoded fast path answered.", labels=["type", "rcode", "fast_path"])
        for (qtype, rcode, fast), n in sorted(counted.items()):
            queries.add_metric([dns.rdatatype.to_text(qtype), dns.rcode.to_text(rcode), "true" if fast else "false"], n)
        yield queries
        answers = CounterMetricFamily(PREFIX + "answers", "A/AAAA answers by the location they send visitors to.",
                                      labels=["location"])
        for location, n in sorted(answered.items()):
            answers.add_metric([location], n)
        yield answers
        yield GaugeMetricFamily(PREFIX + "tcp_connections", "Open TCP connections.",
                                value=len(getattr(m.server, "_conns", ())))
        yield GaugeMetricFamily(PREFIX + "zone_serial", "Serial of the zone being served.",
                                value=m.server.zone.soa.serial)


async def serve_metrics(host: str, port: int, render: Callable[[], bytes]) -> asyncio.AbstractServer:
    """Rule 3."""

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            path = target.split(b"?")[0]
            if path == b"/metrics":
                status, ctype, body = b"200 OK", CONTENT_TYPE_PLAIN_0_0_4.encode(), render()
            elif path == b"/healthz":
                status, ctype, body = b"200 OK", b"text/plain", b"ok\n"
            else:
                status, ctype, body = b"404 Not Found", b"text/plain", b"not found: try /metrics\n"
            writer.write(b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (status, ctype, len(body), body))
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(one, host, port)
