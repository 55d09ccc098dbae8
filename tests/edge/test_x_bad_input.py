"""Bad input: the right 4xx, a closed connection, never a crash, nothing forwarded.

Each row is raw request bytes and the status the edge must answer. For every row the
edge's made-up body names the edge and a request id, the connection is closed after
it, and the origin receives nothing (RFC 9112 §11.2: a request the edge cannot frame
unambiguously must not reach the origin).
"""

import asyncio
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from owncdn.testing.client import raw_exchange
from owncdn.testing.cluster import EdgeUnderTest
from owncdn.testing.origin import FakeOrigin

H = b"Host: example.test\r\n"
LIMITS = """
version: 1
edge: {{id: edge-t, location: test, memory_cache: 64MiB, header_timeout: 1s,
        max_request_line: 1024, max_header_bytes: 4096}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
"""

ROWS = [
    # RFC 9112 §6.1 / §6.3(3): Transfer-Encoding and Content-Length together.
    ("te-and-cl", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("cl-and-te", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    # §6.3(5) and §8.6 (RFC 9110): several Content-Length values are invalid framing.
    ("cl-duplicate", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("cl-conflicting", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("cl-list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    ("cl-negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-plus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
    ("cl-non-numeric", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x3\r\n\r\nabc", 400),
    # §6.3(4): a request whose final transfer coding is not chunked cannot be framed.
    ("te-gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc", 400),
    ("te-chunked-gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te-xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    # §6.1: chunked must not be applied more than once.
    ("te-chunked-twice", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-two-fields", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # §6.1: Transfer-Encoding in an HTTP/1.0 message is a framing fault.
    ("te-http10", b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # §5.2: obsolete line folding is rejected by a server.
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    ("obs-fold-tab", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n\tb\r\n\r\n", 400),
    # §2.2: a bare CR is invalid anywhere; bare LF line endings are not accepted here.
    ("bare-cr-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("bare-cr-line", b"GET / HTTP/1.1\r" + H + b"\r\n", 400),
    ("bare-lf", b"GET / HTTP/1.1\nHost: example.test\n\n", 400),
    ("bare-lf-header", b"GET / HTTP/1.1\r\nHost: example.test\nX-A: b\r\n\r\n", 400),
    # RFC 9110 §5.5: NUL is never allowed in a field value or in the target.
    ("nul-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("nul-url", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400),
    # §5.1: no whitespace between field name and colon; names are tokens.
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : example.test\r\n\r\n", 400),
    ("bad-name-char", b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n", 400),
    ("bad-name-space", b"GET / HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n", 400),
    ("empty-name", b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n", 400),
    # §3.2: HTTP/1.1 needs exactly one Host.
    ("no-host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\n" + H + b"Host: other.test\r\n\r\n", 400),
    ("two-same-hosts", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400),
    # §7.1: a chunk size is hex digits; extensions are `;name[=value]`.
    ("chunk-size-bad", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-size-negative", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-size-overflow", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-ext-bare-cr", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3;a\rb\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-ext-bad", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3;\"\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-data-too-long", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", 400),
    # §2.3: only HTTP/1.x on this port.
    ("http2-on-h1", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http12", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 400),
    ("version-garbage", b"GET / HTTX/1.1\r\n" + H + b"\r\n", 400),
    ("http09", b"GET /\r\n" + H + b"\r\n", 505),  # an HTTP/0.9 request line
    # §3: a method is a token. (Several SP between the parts is accepted: §3 allows
    # parsing on whitespace boundaries.)
    ("request-line-bad-method", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("request-target-relative", b"GET a HTTP/1.1\r\n" + H + b"\r\n", 400),
    # §3 and RFC 9110 §15.5.15 / RFC 6585 §5: limits.
    ("request-line-too-long", b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("header-block-too-large", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(50)) + b"\r\n", 431),
    ("one-huge-header", b"GET / HTTP/1.1\r\n" + H + b"X-A: " + b"v" * 5000 + b"\r\n\r\n", 431),
    # RFC 9110 §10.1.1: an expectation the edge cannot meet.
    ("expect-other", b"GET / HTTP/1.1\r\n" + H + b"Expect: something-else\r\n\r\n", 417),
]


def made_up(raw: bytes) -> tuple[bytes, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict((k.lower(), v) for k, _, v in (line.partition(": ") for line in lines[1:]))
    return lines[0].encode("latin-1"), fields, body


def assert_rejected(raw: bytes, status: int) -> None:
    status_line, fields, body = made_up(raw)
    assert status_line.startswith(b"HTTP/1.1 %d " % status), raw[:200]
    assert fields["connection"] == "close"
    assert len(body) == int(fields["content-length"]), "exactly one response, then close"
    assert b"edge: edge-t (test)" in body
    found = re.search(rb"request id: (\S+)", body)
    assert found and found.group(1).decode() == fields["x-request-id"]


def watch_crashes(t: EdgeUnderTest) -> list[BaseException]:
    """Exceptions that escaped a request task (the edge prints and closes on these)."""
    crashes: list[BaseException] = []
    t.edge.crashed = crashes.append
    return crashes


@pytest.mark.parametrize("raw,status", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
async def test_bad_request_is_rejected_and_closed(raw, status):
    origin = FakeOrigin()
    origin.route("/", body=b"ok", headers={"Cache-Control": "max-age=60"})
    async with EdgeUnderTest(origin, LIMITS) as t:
        crashes = watch_crashes(t)
        answer = await raw_exchange("127.0.0.1", t.port, raw, timeout=3)
        await asyncio.sleep(0.05)  # anything forwarded would have reached the origin by now
    assert_rejected(answer, status)
    assert crashes == []
    assert origin.requests == [] and origin.connections == 0


async def test_bad_body_framing_after_a_pause_is_not_forwarded():
    """§7.1: the head was fine and already forwarded; a bad chunk later must not end
    the origin's request as if it were complete."""
    origin = FakeOrigin()
    origin.route("/", body=b"ok")
    head = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    async with EdgeUnderTest(origin, LIMITS) as t:
        crashes = watch_crashes(t)
        answer = await raw_exchange("127.0.0.1", t.port, [head, b"zz\r\nabc\r\n0\r\n\r\n"], pause=0.2)
        await asyncio.sleep(0.05)
    assert_rejected(answer, 400)
    assert crashes == []
    assert origin.requests == []


async def test_head_trickled_past_header_timeout_gets_408():
    origin = FakeOrigin()
    request = b"GET / HTTP/1.1\r\n" + H + b"X-Slow: " + b"a" * 40 + b"\r\n\r\n"
    async with EdgeUnderTest(origin, LIMITS) as t:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        sent = 0
        try:
            while not reader.at_eof() and sent < len(request):
                writer.write(request[sent:sent + 1])
                sent += 1
                try:
                    data = await asyncio.wait_for(reader.read(65536), 0.05)
                except asyncio.TimeoutError:
                    continue
                answer = data + await asyncio.wait_for(reader.read(), 3)
                break
        finally:
            writer.close()
        took = time.monotonic() - started
    assert sent < len(request), "the head was never completed"
    assert_rejected(answer, 408)
    assert took >= 1.0  # not before the header timeout; `sent` shows it came before the head's end
    assert origin.requests == []


async def test_smuggled_second_request_is_rejected_after_the_first_is_answered():
    """§6.3: a valid request, then one with ambiguous framing on the same connection."""
    origin = FakeOrigin()
    origin.route("/a", body=b"first", headers={"Cache-Control": "max-age=60"})
    origin.route("/b", body=b"second")
    first = b"GET /a HTTP/1.1\r\n" + H + b"\r\n"
    second = (b"POST /b HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"0\r\n\r\nGET /b HTTP/1.1\r\n" + H + b"\r\n")
    async with EdgeUnderTest(origin, LIMITS) as t:
        answer = await raw_exchange("127.0.0.1", t.port, first + second)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in head
    assert rest.startswith(b"first")
    assert_rejected(rest[len(b"first"):], 400)
    assert [r.path for r in origin.requests] == ["/a"]


async def test_pipelined_request_with_bad_chunk_is_not_forwarded():
    """A good POST, then a POST whose chunked body is broken, in one packet."""
    origin = FakeOrigin()
    origin.route("/p", body=b"posted")
    good = b"POST /p HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
    bad = b"POST /p HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"
    async with EdgeUnderTest(origin, LIMITS) as t:
        answer = await raw_exchange("127.0.0.1", t.port, good + bad)
        await asyncio.sleep(0.05)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and rest.startswith(b"posted")
    assert_rejected(rest[len(b"posted"):], 400)
    assert [(r.path, r.body) for r in origin.requests] == [("/p", b"abc")]


# -- fuzz-ish: nothing crashes the edge -------------------------------------------

VALID = b"GET /a?x=1 HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n"


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 44, 58, 59, 127, 255]) | st.integers(0, 255))
        if op == "insert":
            data.insert(pos, byte)
        elif data and pos < len(data):
            if op == "delete":
                del data[pos]
            else:
                data[pos] = byte
    return bytes(data)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=300) | mutated())
def test_random_input_never_crashes_the_edge(data, fuzz_edge):
    fuzz_edge(data)


@pytest.fixture
def fuzz_edge():
    """A running edge on its own loop thread, fed one input per hypothesis example."""
    import threading

    import uvloop

    loop = uvloop.new_event_loop()
    origin = FakeOrigin()
    origin.route("/a", body=b"fine", headers={"Cache-Control": "max-age=60"})
    t = EdgeUnderTest(origin, LIMITS)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(t.__aenter__(), loop).result(5)
    crashes = watch_crashes(t)

    async def one(data: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(data)
        writer.write_eof()  # an incomplete head would otherwise wait for header_timeout
        raw = await asyncio.wait_for(reader.read(), 2)
        writer.close()
        if raw:
            assert re.match(rb"HTTP/1\.1 [1-5]\d\d ", raw), raw[:100]
        r = await t.get("/a")
        assert (r.status, r.body) == (200, b"fine")

    def run(data: bytes) -> None:
        asyncio.run_coroutine_threadsafe(one(data), loop).result(5)
        assert crashes == []

    yield run
    asyncio.run_coroutine_threadsafe(t.__aexit__(None, None, None), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
