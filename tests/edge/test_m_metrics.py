"""Prometheus metrics on the admin listener: a known set of requests, then exact numbers.

Each scenario makes requests whose outcome is known (misses, hits, a pass, an origin
404, a stale copy, an origin timeout and an unreachable origin), scrapes
`GET /metrics` over HTTP and reads it back with prometheus_client's own parser.
"""

import asyncio
import socket

from prometheus_client.parser import text_string_to_metric_families

from owncdn.core.config import parse_config
from owncdn.edge.purge import run_purge
from owncdn.edge.server import EdgeServer
from owncdn.testing.client import HttpClient
from owncdn.testing.cluster import EdgeUnderTest
from owncdn.testing.origin import FakeOrigin, Reply

CACHEABLE = {"Cache-Control": "max-age=60", "Content-Type": "text/plain"}
SWR = {"Cache-Control": "max-age=10, stale-while-revalidate=60"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TWO_SERVICES = """
version: 1
edge: {{{{id: edge-{name}, location: test, memory_cache: 64MiB}}}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{{origin}}"]
    timeouts: {{{{connect: 1s, first_byte: 0.3s, idle: 0.3s}}}}
    retries: 0
  - name: down
    hostnames: [down.test]
    origins: ["http://127.0.0.1:{port}"]
    retries: 0
"""


def two_services(name: str = "m") -> str:
    return TWO_SERVICES.format(name=name, port=closed_port())


class EdgeWithAdmin(EdgeUnderTest):
    """EdgeUnderTest with the admin listener on a free port, and a scraper for it."""

    async def __aenter__(self) -> "EdgeWithAdmin":
        if self.origin.server is None:
            await self.origin.start()
        config = parse_config(self.text.format(origin=self.origin.url), "scenario.yaml", lambda kind, name: None)
        self.server = await EdgeServer.start(config, clock=self.clock, access_log="off", admin="127.0.0.1:0")
        return self

    async def scrape_raw(self):
        async with HttpClient("127.0.0.1", self.server.admin_port) as c:
            return await c.get("/metrics")

    async def scrape(self) -> dict:
        """{(sample name, sorted labels): value} of one scrape."""
        r = await self.scrape_raw()
        assert r.status == 200
        return samples(r.body.decode())

    async def settle(self) -> None:
        """Wait until background fills are done."""
        for _ in range(100):
            if not self.edge.fills:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"fills still running: {self.edge.fills}")


def samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def value(got: dict, name: str, **labels) -> float:
    return got.get((name, tuple(sorted(labels.items()))), 0.0)


def total(got: dict, name: str, **labels) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in got.items() if n == name and want <= set(ls))


async def known_requests(t: EdgeWithAdmin) -> int:
    """3 misses, 3 hits (one HEAD), a pass, an origin 404, a stale copy, a timeout,
    an unreachable origin and an unknown host; returns the size of the made-up 504."""
    o = t.origin
    o.route("/a", body=b"hello", headers=CACHEABLE)                   # 5 bytes
    o.route("/big", body=b"x" * 1000, headers=CACHEABLE)               # 1000 bytes
    o.route("/form", body=b"ok", headers={"Cache-Control": "no-store"})  # 2 bytes
    o.route("/s", responses=[Reply(200, b"old", SWR, conditional=False),
                             Reply(200, b"new", SWR, conditional=False)])
    o.route("/slow", body=b"late", delay=1.0)
    # the origin's default answer elsewhere: 404 "not found\n" (10 bytes)
    c = t.client()
    assert (await c.get("/a")).cache == "MISS"
    assert (await c.get("/a")).cache == "HIT"
    assert (await c.head("/a")).cache == "HIT"
    assert (await c.get("/big")).cache == "MISS"
    assert (await c.get("/big")).cache == "HIT"
    r = await c.request("POST", "/form", body=b"q=1")
    assert (r.status, r.cache) == (200, "PASS")
    r = await c.get("/missing")
    assert (r.status, r.cache) == (404, "MISS")
    assert (await c.get("/s")).cache == "MISS"
    t.clock.advance(20)
    r = await c.get("/s")  # stale-while-revalidate: refreshed in the background
    assert (r.cache, r.body) == ("STALE", b"old")
    await t.settle()
    timeout = await c.get("/slow")
    assert (timeout.status, timeout.cache) == (504, "MISS")
    async with HttpClient("127.0.0.1", t.port, default_host="down.test") as d:
        assert (await d.get("/x")).status == 502
    async with HttpClient("127.0.0.1", t.port, default_host="nope.invalid") as u:
        assert (await u.get("/")).status == 421
    return len(timeout.body)


async def test_requests_bytes_and_origin_counts_are_exact():
    async with EdgeWithAdmin(FakeOrigin(), two_services()) as t:
        made_up = await known_requests(t)
        got = await t.scrape()
    req = "owncdn_edge_requests_total"
    assert value(got, req, service="site", status="200", cache="MISS") == 3   # /a, /big, /s
    assert value(got, req, service="site", status="200", cache="HIT") == 3
    assert value(got, req, service="site", status="200", cache="PASS") == 1
    assert value(got, req, service="site", status="404", cache="MISS") == 1
    assert value(got, req, service="site", status="200", cache="STALE") == 1
    assert value(got, req, service="site", status="504", cache="MISS") == 1
    assert value(got, req, service="down", status="502", cache="MISS") == 1
    assert value(got, req, service="-", status="421", cache="PASS") == 1
    assert total(got, req) == 12

    sent = "owncdn_edge_response_bytes_total"
    assert value(got, sent, service="site", cache="HIT") == 5 + 0 + 1000   # the HEAD hit sends no body
    assert value(got, sent, service="site", cache="MISS") == 5 + 1000 + 10 + 3 + made_up
    assert value(got, sent, service="site", cache="PASS") == 2
    assert value(got, sent, service="site", cache="STALE") == 3

    # origin bodies: /a, /big, /form, /missing, /s and its background refresh
    assert value(got, "owncdn_edge_origin_bytes_total", service="site") == 5 + 1000 + 2 + 10 + 3 + 3
    ok = value(got, "owncdn_edge_origin_requests_total", service="site", outcome="ok")
    assert ok == 6
    assert value(got, "owncdn_edge_origin_requests_total", service="site", outcome="timeout") == 1
    assert value(got, "owncdn_edge_origin_requests_total", service="down", outcome="error") == 1
    assert value(got, "owncdn_edge_origin_requests_total", service="down", outcome="ok") == 0

    hist = "owncdn_edge_origin_latency_seconds"
    assert value(got, hist + "_count", service="site") == ok
    assert value(got, hist + "_bucket", service="site", le="+Inf") == ok
    assert 0 < value(got, hist + "_sum", service="site") < 1.0
    buckets = [v for (n, ls), v in got.items() if n == hist + "_bucket"]
    assert buckets == sorted(buckets)  # cumulative
    assert (hist + "_count", (("service", "down"),)) not in got  # failures have no latency


async def test_origin_offload_follows_from_served_and_origin_bytes():
    origin = FakeOrigin()
    origin.route("/big", body=b"x" * 1000, headers=CACHEABLE)
    async with EdgeWithAdmin(origin, two_services()) as t:
        c = t.client()
        for _ in range(4):
            await c.get("/big")
        got = await t.scrape()
    served = total(got, "owncdn_edge_response_bytes_total", service="site")
    fetched = value(got, "owncdn_edge_origin_bytes_total", service="site")
    assert (served, fetched) == (4000, 1000)
    assert 1 - fetched / served == 0.75


async def test_a_revalidated_copy_is_served_without_origin_body_bytes():
    origin = FakeOrigin()
    origin.route("/e", body=b"etagged", headers={"Cache-Control": "max-age=10", "ETag": '"v1"'})
    async with EdgeWithAdmin(origin, two_services()) as t:
        assert (await t.get("/e")).cache == "MISS"
        t.clock.advance(20)
        assert (await t.get("/e")).cache == "REVALIDATED"  # the origin answers 304
        got = await t.scrape()
    assert value(got, "owncdn_edge_requests_total", service="site", status="200", cache="REVALIDATED") == 1
    assert value(got, "owncdn_edge_response_bytes_total", service="site", cache="REVALIDATED") == 7
    assert value(got, "owncdn_edge_origin_bytes_total", service="site") == 7
    assert value(got, "owncdn_edge_origin_requests_total", service="site", outcome="ok") == 2


async def test_store_gauges_evictions_and_connections():
    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers=CACHEABLE)
    origin.route("/b", body=b"world!", headers=CACHEABLE)
    async with EdgeWithAdmin(origin, two_services()) as t:
        c = t.client()
        await c.get("/a")
        await c.get("/b")
        got = await t.scrape()
        store = t.edge.store
        assert value(got, "owncdn_edge_store_keys", tier="memory") == 2
        assert value(got, "owncdn_edge_store_bytes", tier="memory") == store.used > 11
        assert value(got, "owncdn_edge_store_budget_bytes", tier="memory") == 64 * 1024 * 1024
        assert value(got, "owncdn_edge_store_evictions_total", tier="memory") == 0
        assert value(got, "owncdn_edge_connections") == 1  # `c` is still open
        assert value(got, "owncdn_edge_fills_in_flight") == 0
        assert value(got, "owncdn_edge_info", edge="edge-m", location="test") == 1

        store.budget = store.used - 1  # the least recently used key (/a) has to go
        store.shrink()
        got = await t.scrape()
    assert value(got, "owncdn_edge_store_evictions_total", tier="memory") == 1
    assert value(got, "owncdn_edge_store_keys", tier="memory") == 1


async def test_fills_in_flight_while_the_origin_is_slow():
    origin = FakeOrigin()
    hold = asyncio.Event()
    origin.route("/slow", body=b"x", headers=CACHEABLE, hold=hold)
    async with EdgeWithAdmin(origin, two_services()) as t:
        pending = asyncio.ensure_future(t.client().get("/slow"))
        for _ in range(100):
            if t.edge.fills:
                break
            await asyncio.sleep(0.01)
        got = await t.scrape()
        hold.set()
        assert (await pending).cache == "MISS"
    assert value(got, "owncdn_edge_fills_in_flight") == 1


async def test_purges_are_counted_by_kind_with_the_objects_they_touched():
    origin = FakeOrigin()
    for path in ("/a", "/b", "/c"):
        origin.route(path, body=b"x", headers={**CACHEABLE, "Cache-Tag": "all-of-them"})
    async with EdgeWithAdmin(origin, two_services()) as t:
        c = t.client()
        for path in ("/a", "/b", "/c"):
            await c.get(path)
        assert run_purge(t.edge, {"url": "http://example.test/a"}) == 1
        assert run_purge(t.edge, {"tag": "all-of-them", "soft": True}) == 2
        assert run_purge(t.edge, {"url": "http://example.test/nothing"}) == 0
        assert run_purge(t.edge, {"all": True}) == 2
        got = await t.scrape()
    purges, objects = "owncdn_edge_purges_total", "owncdn_edge_purged_objects_total"
    assert value(got, purges, kind="url", soft="false") == 2
    assert value(got, objects, kind="url", soft="false") == 1
    assert value(got, purges, kind="tag", soft="true") == 1
    assert value(got, objects, kind="tag", soft="true") == 2
    assert value(got, purges, kind="all", soft="false") == 1
    assert value(got, objects, kind="all", soft="false") == 2
    assert total(got, purges) == 4


async def test_metrics_output_is_valid_exposition_text():
    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers=CACHEABLE)
    async with EdgeWithAdmin(origin, two_services()) as t:
        await t.get("/a")
        r = await t.scrape_raw()
        async with HttpClient("127.0.0.1", t.server.admin_port) as c:
            q = await c.get("/metrics?name[]=owncdn_edge_requests_total")
    assert r.status == 200 and q.status == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = r.body.decode()
    assert text.endswith("\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {f.type for f in families.values()} == {"counter", "gauge", "histogram"}
    for name in ("requests", "response_bytes", "origin_requests", "origin_bytes", "store_evictions",
                 "purges", "purged_objects"):
        assert families[f"owncdn_edge_{name}"].type == "counter"
    for name in ("store_keys", "store_bytes", "store_budget_bytes", "connections", "fills_in_flight", "info"):
        assert families[f"owncdn_edge_{name}"].type == "gauge"
    assert families["owncdn_edge_origin_latency_seconds"].type == "histogram"
    for f in families.values():
        assert f.name.startswith("owncdn_edge_") and f.documentation
    assert "# TYPE owncdn_edge_requests_total counter\n" in text
    assert 'owncdn_edge_requests_total{cache="MISS",service="site",status="200"} 1.0\n' in text


async def test_two_edges_in_one_process_keep_separate_numbers():
    one, two = FakeOrigin(), FakeOrigin()
    for origin in (one, two):
        origin.route("/a", body=b"hello", headers=CACHEABLE)
    async with EdgeWithAdmin(one, two_services("one")) as a, EdgeWithAdmin(two, two_services("two")) as b:
        for _ in range(3):
            await a.get("/a")
        await b.get("/a")
        got_a, got_b = await a.scrape(), await b.scrape()
    req = "owncdn_edge_requests_total"
    assert value(got_a, req, service="site", status="200", cache="HIT") == 2
    assert value(got_b, req, service="site", status="200", cache="HIT") == 0
    assert (total(got_a, req), total(got_b, req)) == (3, 1)
    assert value(got_a, "owncdn_edge_info", edge="edge-one", location="test") == 1
    assert value(got_b, "owncdn_edge_info", edge="edge-two", location="test") == 1
    assert a.edge.metrics.registry is not b.edge.metrics.registry


async def test_stats_responses_agree_with_the_metrics():
    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers=CACHEABLE)
    async with EdgeWithAdmin(origin, two_services()) as t:
        for _ in range(3):
            await t.get("/a")
        async with HttpClient("127.0.0.1", t.server.admin_port) as c:
            stats = await c.get("/stats")
    assert b'"HIT": 2' in stats.body and b'"MISS": 1' in stats.body
    assert t.edge.counts == {"HIT": 2, "MISS": 1, "STALE": 0, "REVALIDATED": 0, "PASS": 0}
