"""Basic edge behaviour: routing by Host, miss then hit, debug headers, HEAD, pipelining."""

import asyncio

from owncdn.testing.client import HttpClient, raw_exchange
from owncdn.testing.cluster import ONE_SERVICE, EdgeUnderTest
from owncdn.testing.origin import FakeOrigin

CACHEABLE = {"Cache-Control": "max-age=60", "Content-Type": "text/plain", "ETag": '"v1"'}


async def test_miss_then_hit_with_debug_headers():
    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers=CACHEABLE)
    async with EdgeUnderTest(origin) as t:
        first = await t.get("/a")
        second = await t.get("/a")
    assert (first.status, first.cache, first.body) == (200, "MISS", b"hello")
    assert (second.status, second.cache, second.body) == (200, "HIT", b"hello")
    assert origin.hits("/a") == 1
    for r in (first, second):
        assert r.headers["x-served-by"] == "edge-t (test)"
        assert r.headers["via"].endswith("edge-t (owncdn)")
        assert "age" in r.headers and "date" in r.headers
        assert r.headers["server-timing"].startswith(f"cdn-cache;desc={r.cache}")
        assert r.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_unknown_host_gets_421_naming_the_host():
    origin = FakeOrigin()
    async with EdgeUnderTest(origin) as t:
        async with HttpClient("127.0.0.1", t.port, default_host="nope.invalid") as c:
            r = await c.get("/")
    assert r.status == 421
    assert b"nope.invalid" in r.body and b"edge-t" in r.body
    assert origin.requests == []


async def test_wildcard_hostname_and_port_in_host():
    origin = FakeOrigin()
    origin.route("/", body=b"x", headers=CACHEABLE)
    async with EdgeUnderTest(origin) as t:
        async with HttpClient("127.0.0.1", t.port, default_host=f"img.example.test:{t.port}") as c:
            r = await c.get("/")
    assert r.status == 200


async def test_age_grows_with_the_clock_and_expiry_refetches():
    origin = FakeOrigin()
    origin.route("/a", body=b"x", headers={"Cache-Control": "max-age=60"}, conditional=False)
    async with EdgeUnderTest(origin) as t:
        await t.get("/a")
        t.clock.advance(30)
        r = await t.get("/a")
        assert (r.cache, r.headers["age"]) == ("HIT", "30")
        t.clock.advance(31)
        r = await t.get("/a")
        assert r.cache == "MISS"
    assert origin.hits("/a") == 2


async def test_head_on_miss_and_hit_has_no_body():
    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers=CACHEABLE)
    async with EdgeUnderTest(origin) as t:
        c = t.client()
        r1 = await c.head("/a")
        r2 = await c.head("/a")
        r3 = await c.get("/a")
    assert (r1.status, r1.cache, r1.body, r1.headers["content-length"]) == (200, "MISS", b"", "5")
    assert (r2.cache, r2.body) == ("HIT", b"")
    assert (r3.cache, r3.body) == ("HIT", b"hello")
    assert [r.method for r in origin.requests] == ["GET"]


async def test_keep_alive_and_pipelined_requests_answer_in_order():
    origin = FakeOrigin()
    for i in range(5):
        origin.route(f"/{i}", body=f"body{i}".encode(), headers=CACHEABLE, delay=0.01 * (5 - i))
    async with EdgeUnderTest(origin) as t:
        c = t.client()
        first = await c.pipeline([("GET", f"/{i}", None, None) for i in range(5)])
        again = await c.pipeline([("GET", f"/{i}", None, None) for i in range(5)])
    assert [r.body for r in first] == [f"body{i}".encode() for i in range(5)]
    assert [r.cache for r in again] == ["HIT"] * 5
    assert [r.body for r in again] == [r.body for r in first]


async def test_http10_client_gets_connection_close():
    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers=CACHEABLE)
    async with EdgeUnderTest(origin) as t:
        await t.get("/a")
        raw = await raw_exchange("127.0.0.1", t.port, b"GET /a HTTP/1.0\r\nHost: example.test\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head and body == b"hello"


async def test_concurrent_misses_make_one_origin_request():
    origin = FakeOrigin()
    gate = asyncio.Event()
    origin.route("/slow", body=b"shared", headers=CACHEABLE, hold=gate)
    async with EdgeUnderTest(origin) as t:
        tasks = [asyncio.create_task(t.get("/slow")) for _ in range(20)]
        for _ in range(200):  # every client connected (a loaded machine is slow to), then read
            if len(t.edge.connections) == 20 and origin.hits("/slow"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        gate.set()
        results = await asyncio.gather(*tasks)
    assert origin.hits("/slow") == 1, [(r.headers, [x.cache for x in results]) for r in origin.requests]
    assert all(r.status == 200 and r.body == b"shared" for r in results)
    assert sorted(r.cache for r in results) == ["MISS"] * 20


async def test_a_miss_joins_its_fill_when_looked_up_even_if_it_runs_after_the_fill_ended():
    """The connection runs a miss as a task, a turn of the loop (or, on a busy machine,
    much more) after the lookup; a fill that ends in between must not be fetched again."""
    origin = FakeOrigin()
    gate = asyncio.Event()
    origin.route("/slow", body=b"shared", headers=CACHEABLE, hold=gate)
    async with EdgeUnderTest(origin) as t:
        handle = t.edge.handle
        looked_up, fill_over = asyncio.Event(), asyncio.Event()

        def handle_late(req):  # the second request's task starts only after the fill is over
            result = handle(req)
            if origin.hits("/slow") and asyncio.iscoroutine(result):
                looked_up.set()

                async def after_the_fill(coro=result):
                    await fill_over.wait()
                    await coro
                return after_the_fill()
            return result

        t.edge.handle = handle_late
        first = asyncio.create_task(t.get("/slow"))
        while not origin.hits("/slow"):
            await asyncio.sleep(0.01)
        second = asyncio.create_task(t.get("/slow"))
        await looked_up.wait()  # the second request missed while the fill ran
        gate.set()
        r1 = await first
        assert not t.edge.fills  # the fill is over and its object stored
        fill_over.set()
        r2 = await second
    assert origin.hits("/slow") == 1
    assert (r1.cache, r1.body, r2.cache, r2.body) == ("MISS", b"shared", "MISS", b"shared")


async def test_uncacheable_response_releases_waiting_clients_to_the_origin():
    origin = FakeOrigin()
    gate = asyncio.Event()
    origin.route("/private", body=b"mine", headers={"Cache-Control": "private"}, hold=gate)
    async with EdgeUnderTest(origin) as t:
        tasks = [asyncio.create_task(t.get("/private")) for _ in range(3)]
        await asyncio.sleep(0.1)
        gate.set()
        results = await asyncio.gather(*tasks)
        again = await t.get("/private")
    assert all(r.body == b"mine" for r in results)
    assert origin.hits("/private") == 4
    assert again.cache == "PASS"


async def test_large_chunked_response_streams_and_is_stored():
    origin = FakeOrigin()
    chunks = [bytes([i]) * 65536 for i in range(64)]  # 4 MiB, chunked, no Content-Length
    origin.route("/big", headers={"Cache-Control": "max-age=60"}, chunks=chunks)
    async with EdgeUnderTest(origin) as t:
        r1 = await t.get("/big")
        r2 = await t.get("/big")
    assert r1.body == b"".join(chunks) and r1.cache == "MISS"
    assert r2.cache == "HIT" and r2.headers["content-length"] == str(4 << 20)
    assert r2.body == r1.body


async def test_access_log_has_one_json_line_per_request(tmp_path):
    import json

    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers=CACHEABLE)
    log = tmp_path / "access.log"
    async with EdgeUnderTest(origin, access_log=str(log)) as t:
        r1 = await t.get("/a", headers={"User-Agent": "ua/1", "Referer": "http://r/"})
        r2 = await t.get("/a", headers={"Range": "bytes=0-1"})
        t.edge.log.flush()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["cache"] for line in lines] == ["MISS", "HIT"]
    first, second = lines
    assert first["request_id"] == r1.headers["x-request-id"]
    assert second["request_id"] == r2.headers["x-request-id"]
    assert (first["status"], first["bytes"], first["method"], first["path"]) == (200, 5, "GET", "/a")
    assert (first["user_agent"], first["referrer"], first["service"]) == ("ua/1", "http://r/", "site")
    assert (second["status"], second["bytes"], second["range"]) == (206, 2, "bytes=0-1")
    assert first["origin_ms"] is not None and second["origin_ms"] is None
    for key in ("time", "client", "host", "ttfb_ms", "edge", "location"):
        assert key in first


async def test_repeated_identical_heads_are_answered_identically():
    # The connection replays byte-identical request heads without parsing them again
    # (protocol.py Rule 6): the answers must not change, on one connection or several.
    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers=CACHEABLE)
    head = b"GET /a HTTP/1.1\r\nHost: example.test\r\nX-Same: 1\r\n\r\n"
    bad = b"GET /a HTTP/1.1\r\nHost: example.test\r\nHost: other.test\r\n\r\n"
    async with EdgeUnderTest(origin) as t:
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        answers = []
        for _ in range(3):
            writer.write(head)
            answers.append(await reader.readuntil(b"hello"))
        writer.close()
        again = await raw_exchange("127.0.0.1", t.port, head[:-2] + b"Connection: close\r\n\r\n")
        rejected = [await raw_exchange("127.0.0.1", t.port, bad) for _ in range(2)]
    assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 3
    assert [b"X-Cache: MISS" in answers[0], b"X-Cache: HIT" in answers[2]] == [True, True]
    assert again.startswith(b"HTTP/1.1 200") and b"Connection: close" in again
    assert all(r.startswith(b"HTTP/1.1 400") for r in rejected)


async def test_unknown_length_body_past_the_size_limit_streams_to_every_waiting_client():
    # A chunked response grows past what may be stored (half the 4 MiB budget): the
    # edge stops keeping it, streams it on to all three coalesced clients without
    # holding it whole, and sends the next request straight to the origin.
    origin = FakeOrigin()
    gate = asyncio.Event()
    chunks = [bytes([i % 251]) * 65536 for i in range(128)]  # 8 MiB
    origin.route("/huge", headers={"Cache-Control": "max-age=60"}, chunks=chunks, hold=gate)
    config = ONE_SERVICE.replace("memory_cache: 64MiB", "memory_cache: 4MiB")
    async with EdgeUnderTest(origin, config) as t:
        tasks = [asyncio.create_task(t.get("/huge")) for _ in range(3)]
        await asyncio.sleep(0.1)
        gate.set()
        results = await asyncio.gather(*tasks)
        after = await t.get("/huge")
        used = t.edge.store.used
    expected = b"".join(chunks)
    assert all(r.status == 200 and r.body == expected for r in results)
    assert origin.hits("/huge") == 2 and after.cache == "PASS"
    assert used == 0


async def test_a_closed_connection_is_freed_by_reference_counting():
    """The parser's callbacks point back at the connection; closing breaks that cycle,
    so connections do not wait for the cyclic collector (many short visits)."""
    from owncdn.testing.refs import collector_off, freed_after

    origin = FakeOrigin()
    origin.route("/a", body=b"x", headers={"Cache-Control": "max-age=60"})
    with collector_off():
        async with EdgeUnderTest(origin) as t:
            reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
            writer.write(b"GET /a HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            conns = list(t.server.edge.connections)
            assert len(conns) == 1
            assert await freed_after(conns.pop(), writer.close)
