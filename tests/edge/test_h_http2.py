"""HTTP/2 at the edge: the same cache path as HTTP/1.1, flow control both ways,
concurrent streams, RST_STREAM and GOAWAY, request limits."""

import asyncio
import json

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from h2.errors import ErrorCodes

from owncdn.edge.h2 import MAX_CONCURRENT_STREAMS, H2Connection
from owncdn.testing.https import HttpsEdge
from owncdn.testing.origin import FakeOrigin, Reply

CACHEABLE = {"Cache-Control": "max-age=60", "Content-Type": "application/octet-stream", "ETag": '"v1"'}
BIG = bytes(range(256)) * 12288  # 3 MiB: far more than a stream's initial 64 KiB window


class RawH2:
    """A bare HTTP/2 client on the h2 state machine, for frame-level checks."""

    def __init__(self, reader, writer) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.events: list = []

    @classmethod
    async def open(cls, t: HttpsEdge) -> "RawH2":
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", t.tls_port, ssl=t.client_context(["h2"]), server_hostname="example.test")
        return cls(reader, writer)

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    def get(self, path: str, method: str = "GET", end: bool = True, extra=()) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":scheme", "https"), (":path", path),
                                     (":authority", "example.test"), *extra], end_stream=end)
        self.flush()
        return sid

    async def until(self, done, timeout: float = 10.0) -> list:
        """Read events (acknowledging DATA) until done(events) is true."""
        async def loop():
            while not done(self.events):
                data = await self.reader.read(65536)
                if not data:
                    return
                for event in self.conn.receive_data(data):
                    self.events.append(event)
                    if isinstance(event, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                self.flush()
        await asyncio.wait_for(loop(), timeout)
        return self.events

    def ended(self, sid: int):
        return lambda events: any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                                  and e.stream_id == sid for e in events)

    def response(self, sid: int) -> tuple[dict, bytes]:
        headers = next(dict(e.headers) for e in self.events
                       if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid)
        body = b"".join(e.data for e in self.events if isinstance(e, h2.events.DataReceived) and e.stream_id == sid)
        return headers, body

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def test_miss_then_hit_on_one_connection_with_the_same_headers_as_http1(tmp_path):
    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers=CACHEABLE)
    log = tmp_path / "access.log"
    async with HttpsEdge(origin, access_log=str(log)) as t:
        client = t.httpx(http2=True)
        first = await t.fetch("/a", client=client)
        second = await t.fetch("/a", client=client)
        head = await t.fetch("/a", client=client, method="HEAD")
        cond = await t.fetch("/a", client=client, headers={"If-None-Match": '"v1"'})
        http1 = await t.fetch("/a")
    assert first.http_version == second.http_version == "HTTP/2"
    assert (first.status_code, first.headers["x-cache"], first.content) == (200, "MISS", b"hello")
    assert (second.status_code, second.headers["x-cache"], second.content) == (200, "HIT", b"hello")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "5")
    assert (cond.status_code, cond.content) == (304, b"")
    assert http1.headers["x-cache"] == "HIT"  # one cache for both protocols
    assert origin.hits("/a") == 1
    for name in ("x-served-by", "age", "date", "x-request-id", "server-timing"):
        assert name in second.headers
    # RFC 9110 §7.6.3: Via names the protocol each message was received with.
    assert origin.requests[0].headers["via"] == "2 edge-t (owncdn)"
    assert second.headers["via"] == "1.1 edge-t (owncdn)"
    assert "connection" not in second.headers and "keep-alive" not in second.headers
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["protocol"], e["cache"]) for e in lines][:2] == [("2", "MISS"), ("2", "HIT")]
    assert origin.requests[0].headers["x-forwarded-proto"] == "https"


@pytest.mark.parametrize("stored", [False, True], ids=["streamed-miss", "stored-hit"])
async def test_large_bodies_respect_flow_control(stored):
    origin = FakeOrigin()
    origin.route("/big", body=BIG, headers=CACHEABLE)
    async with HttpsEdge(origin) as t:
        client = t.httpx(http2=True)
        if stored:
            await t.fetch("/big", client=client)
        responses = await asyncio.gather(*(t.fetch("/big", client=client) for _ in range(3)))
    for r in responses:
        assert r.status_code == 200 and r.content == BIG
    if stored:
        assert {r.headers["x-cache"] for r in responses} == {"HIT"}


async def test_many_concurrent_streams_share_one_origin_fetch():
    origin = FakeOrigin()
    gate = asyncio.Event()
    origin.route("/slow", responses=[Reply(200, body=b"s" * 100_000, headers=CACHEABLE, hold=gate)])
    for i in range(20):
        origin.route(f"/p{i}", body=f"page {i}".encode(), headers=CACHEABLE)
    async with HttpsEdge(origin) as t:
        client = t.httpx(http2=True)
        slow = [asyncio.ensure_future(t.fetch("/slow", client=client)) for _ in range(10)]
        pages = await asyncio.gather(*(t.fetch(f"/p{i}", client=client) for i in range(20)))
        gate.set()
        slow = await asyncio.gather(*slow)
        connections = len(t.edge.connections)
    assert [r.content for r in pages] == [f"page {i}".encode() for i in range(20)]
    assert all(r.content == b"s" * 100_000 for r in slow)
    assert origin.hits("/slow") == 1
    assert connections == 1  # everything went over one HTTP/2 connection


async def test_post_bodies_reach_the_origin_with_and_without_length():
    origin = FakeOrigin()
    origin.route("/form", handler=lambda req: Reply(200, body=b"got %d" % len(req.body)))
    payload = bytes(range(256)) * 8192  # 2 MiB: more than the 1 MiB stream window
    async with HttpsEdge(origin) as t:
        client = t.httpx(http2=True)
        sized = await t.fetch("/form", client=client, method="POST", content=payload)

        async def chunks():
            for i in range(0, len(payload), 100_000):
                yield payload[i:i + 100_000]

        unsized = await t.fetch("/form", client=client, method="POST", content=chunks())
    assert (sized.status_code, sized.content) == (200, b"got %d" % len(payload))
    assert (unsized.status_code, unsized.content) == (200, b"got %d" % len(payload))
    assert sized.headers["x-cache"] == "PASS"
    assert [r.body == payload for r in origin.requests] == [True, True]
    assert origin.requests[0].headers["content-length"] == str(len(payload))
    assert origin.requests[1].headers["transfer-encoding"] == "chunked"


async def test_settings_advertise_the_stream_limit():
    async with HttpsEdge(FakeOrigin()) as t:
        raw = await RawH2.open(t)
        await raw.until(lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev))
        assert raw.conn.remote_settings.max_concurrent_streams == MAX_CONCURRENT_STREAMS
        assert raw.conn.remote_settings.enable_push == 0
        await raw.close()


async def test_rst_stream_cancels_one_stream_and_the_connection_goes_on():
    origin = FakeOrigin()
    origin.route("/big", body=BIG, headers=CACHEABLE)
    origin.route("/small", body=b"small", headers=CACHEABLE)
    async with HttpsEdge(origin) as t:
        await t.fetch("/big")  # stored: the hit is queued whole, then reset
        raw = await RawH2.open(t)
        big = raw.get("/big")
        await raw.until(lambda ev: any(isinstance(e, h2.events.DataReceived) and e.stream_id == big for e in ev))
        raw.conn.reset_stream(big, ErrorCodes.CANCEL)
        raw.flush()
        small = raw.get("/small")
        await raw.until(raw.ended(small))
        headers, body = raw.response(small)
        assert (headers[":status"], body) == ("200", b"small")
        got = sum(len(e.data) for e in raw.events if isinstance(e, h2.events.DataReceived) and e.stream_id == big)
        assert got < len(BIG)
        conn = next(c for c in t.edge.connections if isinstance(c, H2Connection))
        assert conn.streams == {} and conn.sending == {}
        await raw.close()


async def test_goaway_on_shutdown_and_after_the_clients_goaway():
    origin = FakeOrigin()
    origin.route("/a", body=b"a", headers=CACHEABLE)
    async with HttpsEdge(origin) as t:
        raw = await RawH2.open(t)
        sid = raw.get("/a")
        await raw.until(raw.ended(sid))
        raw.conn.close_connection()
        raw.flush()
        await raw.until(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
        assert raw.response(sid)[1] == b"a"
        assert await raw.reader.read() == b""  # and then the edge closes
        await raw.close()

        raw = await RawH2.open(t)
        sid = raw.get("/a")
        await raw.until(raw.ended(sid))
        closing = asyncio.ensure_future(t.server.close())
        await raw.until(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
        terminated = next(e for e in raw.events if isinstance(e, h2.events.ConnectionTerminated))
        assert (terminated.error_code, terminated.last_stream_id) == (ErrorCodes.NO_ERROR, sid)
        await closing  # (closing the edge again on the way out changes nothing)
        await raw.close()


async def test_request_limits():
    origin = FakeOrigin()
    async with HttpsEdge(origin) as t:
        raw = await RawH2.open(t)
        await raw.until(lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev))
        long_path = raw.get("/" + "a" * 9000)
        big_head = raw.get("/b", extra=[("x-big", "v" * 40000), ("x-big2", "v" * 30000)])
        await raw.until(lambda ev: raw.ended(long_path)(ev) and raw.ended(big_head)(ev))
        assert raw.response(long_path)[0][":status"] == "414"
        assert raw.response(big_head)[0][":status"] == "431"
        await raw.close()
    assert origin.requests == []


async def test_cookie_fields_are_joined_for_the_origin():
    origin = FakeOrigin()
    origin.route("/c", body=b"c", headers={"Cache-Control": "no-store"})
    async with HttpsEdge(origin) as t:
        raw = await RawH2.open(t)
        sid = raw.get("/c", extra=[("cookie", "a=1"), ("cookie", "b=2")])
        await raw.until(raw.ended(sid))
        await raw.close()
    assert origin.requests[0].headers["cookie"] == "a=1; b=2"  # RFC 9113 §8.2.3


DISK_CONFIG = """
version: 1
edge: {{id: edge-t, location: test, memory_cache: 4MiB, access_log: "off",
        disk_cache: {{path: "{disk}", size: 256MiB}}}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
"""


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "https1.1"])
async def test_disk_tier_bodies_and_ranges_over_tls(tmp_path, http2):
    huge = bytes(range(251)) * (40 << 12)  # about 10 MiB: only the disk tier keeps it
    origin = FakeOrigin()
    origin.route("/huge", body=huge, headers=CACHEABLE)
    config = DISK_CONFIG.replace("{disk}", str(tmp_path / "disk"))
    async with HttpsEdge(origin, config, names=("example.test",)) as t:
        client = t.httpx(http2=http2)
        miss = await t.fetch("/huge", client=client)
        hit = await t.fetch("/huge", client=client)
        part = await t.fetch("/huge", client=client, headers={"Range": "bytes=5000000-5000099"})
        on_disk = any(k.endswith("/huge") for k in t.edge.disk.entries)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert miss.content == huge and hit.content == huge
    assert (part.status_code, part.content) == (206, huge[5000000:5000100])
    assert on_disk and origin.hits("/huge") == 1


async def test_the_stream_limit_is_enforced():
    origin = FakeOrigin()
    gate = asyncio.Event()
    origin.route("/held", responses=[Reply(200, body=b"h", headers={"Cache-Control": "no-store"}, hold=gate)])
    async with HttpsEdge(origin) as t:
        raw = await RawH2.open(t)
        await raw.until(lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev))
        held = [raw.get("/held") for _ in range(MAX_CONCURRENT_STREAMS)]
        await asyncio.sleep(0)  # (the client itself refuses a 129th while 128 are open)
        with pytest.raises(h2.exceptions.TooManyStreamsError):
            raw.get("/held")
        gate.set()
        await raw.until(lambda ev: all(raw.ended(sid)(ev) for sid in held), timeout=30)
        assert {raw.response(sid)[0][":status"] for sid in held} == {"200"}
        await raw.close()

        # A client that ignores SETTINGS_MAX_CONCURRENT_STREAMS loses the connection
        # (core/http/h2server.py Rule 4: a connection error, GOAWAY PROTOCOL_ERROR).
        gate.clear()
        raw = await RawH2.open(t)
        for _ in range(MAX_CONCURRENT_STREAMS + 1):  # sent before the edge's SETTINGS are read
            raw.get("/held")
        await raw.until(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
        terminated = next(e for e in raw.events if isinstance(e, h2.events.ConnectionTerminated))
        assert terminated.error_code == ErrorCodes.PROTOCOL_ERROR
        gate.set()
        await raw.close()


RULES = """
version: 1
edge: {{id: edge-t, location: test, memory_cache: 64MiB}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
    headers:
      request: {{set: {{X-From-Edge: "yes"}}}}
      response: {{set: {{X-Frame-Options: DENY}}, remove: [server]}}
"""


async def test_rules_purge_and_metrics_are_the_http1_ones():
    from owncdn.edge.purge import run_purge

    origin = FakeOrigin()
    origin.route("/p", body=b"p", headers={**CACHEABLE, "Server": "origin/1.0"})
    async with HttpsEdge(origin, RULES, names=("example.test",)) as t:
        client = t.httpx(http2=True)
        first = await t.fetch("/p", client=client)
        assert run_purge(t.edge, {"url": "https://example.test/p"}) == 1
        again = await t.fetch("/p", client=client)
        hit = await t.fetch("/p", client=client)
        counts = t.edge.counts
        exposition = t.edge.metrics.exposition().decode()
    assert [r.headers["x-cache"] for r in (first, again, hit)] == ["MISS", "MISS", "HIT"]
    assert hit.headers["x-frame-options"] == "DENY" and "server" not in hit.headers
    assert origin.requests[0].headers["x-from-edge"] == "yes"
    assert counts["MISS"] == 2 and counts["HIT"] == 1
    assert 'service="site"' in exposition


async def test_a_malformed_request_is_reset_and_the_connection_goes_on():
    origin = FakeOrigin()
    origin.route("/a", body=b"a", headers=CACHEABLE)
    async with HttpsEdge(origin) as t:
        raw = await RawH2.open(t)
        raw.conn.config.validate_outbound_headers = False  # so the client sends what RFC 9113 forbids
        raw.conn.config.normalize_outbound_headers = False
        bad = raw.get("/a", extra=[("connection", "close")])  # §8.2.2: malformed
        upper = raw.get("/a", extra=[("X-Upper", "1")])       # §8.2.1: malformed
        good = raw.get("/a")
        raw.conn.ping(b"12345678")
        raw.flush()
        await raw.until(lambda ev: all(raw.ended(sid)(ev) for sid in (bad, upper, good))
                        and any(isinstance(e, h2.events.PingAckReceived) for e in ev))
        resets = {e.stream_id: e.error_code for e in raw.events if isinstance(e, h2.events.StreamReset)}
        assert resets == {bad: ErrorCodes.PROTOCOL_ERROR, upper: ErrorCodes.PROTOCOL_ERROR}
        assert raw.response(good)[1] == b"a"
        await raw.close()
    assert origin.hits("/a") == 1
