"""The edge in front of a real nginx: keep-alive, chunked bodies, big objects, ranges,
404s and revalidation, against a server we did not write."""

import asyncio
import gzip
import hashlib
import os
import tracemalloc

import httptools
import pytest

from owncdn.core.config import parse_config
from owncdn.edge.server import EdgeServer
from owncdn.testing.client import HttpClient
from owncdn.testing.clock import FakeClock
from owncdn.testing.nginx import NginxOrigin


MiB = 1 << 20
BIG = 64 * MiB
EDGE = """
version: 1
edge: {{id: edge-n, location: test, memory_cache: {cache}}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
"""


class EdgeInFront:
    """An edge whose one service's origin is `url`, on a fake clock."""

    def __init__(self, url: str, cache: str = "64MiB") -> None:
        self.config = parse_config(EDGE.format(origin=url, cache=cache), "nginx.yaml", lambda kind, name: None)
        self.clock = FakeClock()
        self.server: EdgeServer | None = None

    async def __aenter__(self) -> "EdgeInFront":
        self.server = await EdgeServer.start(self.config, clock=self.clock, access_log="off")
        return self

    async def __aexit__(self, *exc) -> None:
        await self.server.close()

    @property
    def edge(self):
        return self.server.edge

    @property
    def pool(self):
        return self.edge.services["site"].pools[0]

    def client(self) -> HttpClient:
        return HttpClient("127.0.0.1", self.server.port)

    async def fills_done(self) -> None:
        """Wait until background fills have stored what they fetched."""
        for _ in range(500):
            if not self.edge.fills:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"fills still running: {self.edge.fills}")

    async def get(self, path: str, headers: dict[str, str] | None = None):
        async with self.client() as c:
            return await c.get(path, headers=headers)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    for i in range(50):
        (root / f"f{i:02d}.txt").write_bytes(b"file %d\n" % i * (i + 1))
    (root / "text.txt").write_bytes(b"".join(b"line %06d of a compressible text\n" % i for i in range(20000)))
    (root / "data.bin").write_bytes(os.urandom(MiB))
    with open(root / "big.bin", "wb") as f:
        block = os.urandom(MiB)
        for i in range(BIG // MiB):
            f.write(block[i:] + block[:i])  # 64 distinct MiB, quickly
    return root


@pytest.fixture
async def nginx(site):
    async with NginxOrigin(site) as origin:
        yield origin


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


class _Digest:
    """Parses one response, hashing the body as it streams instead of keeping it."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[str, str] = {}
        self.hash = hashlib.sha256()
        self.size = 0
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.hash.update(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        self.done = True


async def streamed_get(port: int, path: str) -> _Digest:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode())
        d = _Digest()
        while not d.done:
            data = await asyncio.wait_for(reader.read(1 << 18), 10)
            assert data, "connection closed before the response ended"
            d.parser.feed_data(data)
        d.status = d.parser.get_status_code()
        return d
    finally:
        writer.close()


async def test_keep_alive_reuses_origin_connections(nginx, site):
    async with EdgeInFront(nginx.url) as t:
        async with t.client() as c:
            for i in range(50):
                r = await c.get(f"/f{i:02d}.txt")
                assert (r.status, r.cache, r.body) == (200, "MISS", (site / f"f{i:02d}.txt").read_bytes())

        async def ten(start: int) -> None:
            async with t.client() as c:
                for i in range(start, start + 10):
                    r = await c.get(f"/f{i:02d}.txt?again")
                    assert r.status == 200
        await asyncio.gather(*(ten(s) for s in range(0, 50, 10)))
        opened = t.pool.opened
    logged = nginx.requests()
    assert len(logged) == 100
    assert opened <= 6, f"100 requests took {opened} origin connections"
    assert len({r.connection for r in logged}) == opened
    assert max(r.connection_requests for r in logged) >= 50


async def test_chunked_origin_response_passes_intact_then_hits_with_length(nginx, site):
    gz = {"Accept-Encoding": "gzip"}
    async with HttpClient("127.0.0.1", nginx.port) as direct:
        plain = await direct.get("/gz/text.txt", headers={**gz, "Via": "1.1 test"})
    assert dict((k.lower(), v) for k, v in plain.raw_headers)["transfer-encoding"] == "chunked"
    assert "content-length" not in plain.headers
    async with EdgeInFront(nginx.url) as t:
        first = await t.get("/gz/text.txt", headers=gz)
        second = await t.get("/gz/text.txt", headers=gz)
        identity = await t.get("/gz/text.txt")
    text = (site / "text.txt").read_bytes()
    assert (first.status, first.cache, first.headers["content-encoding"]) == (200, "MISS", "gzip")
    assert first.body == plain.body and gzip.decompress(first.body) == text
    assert (second.cache, second.body) == ("HIT", first.body)
    assert second.headers["content-length"] == str(len(first.body))
    assert "transfer-encoding" not in second.headers
    assert identity.body == text and "content-encoding" not in identity.headers  # Vary: Accept-Encoding
    # the direct request, then one fill per variant
    assert [r.path for r in nginx.requests()] == ["/gz/text.txt"] * 3


async def test_large_object_streams_but_is_not_stored_in_a_small_cache(nginx, site):
    want = sha256_of(site / "big.bin")
    async with EdgeInFront(nginx.url, cache="16MiB") as t:
        tracemalloc.start()
        try:
            first = await streamed_get(t.server.port, "/big.bin")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        second = await streamed_get(t.server.port, "/big.bin")
        used = t.edge.store.used
    assert (first.status, first.size, first.hash.hexdigest()) == (200, BIG, want)
    assert first.headers["x-cache"] == "MISS" and first.headers["content-length"] == str(BIG)
    assert peak < 16 * MiB, f"the edge held {peak / MiB:.1f} MiB while streaming 64 MiB"
    assert used < 16 * MiB
    assert second.hash.hexdigest() == want and second.headers["x-cache"] != "HIT"
    assert len(nginx.requests()) == 2


async def test_large_object_is_stored_when_the_cache_is_big_enough(nginx, site):
    want = sha256_of(site / "big.bin")
    async with EdgeInFront(nginx.url, cache="256MiB") as t:
        first = await streamed_get(t.server.port, "/big.bin")
        second = await streamed_get(t.server.port, "/big.bin")
        used = t.edge.store.used
    assert (first.headers["x-cache"], first.hash.hexdigest()) == ("MISS", want)
    assert (second.headers["x-cache"], second.size, second.hash.hexdigest()) == ("HIT", BIG, want)
    assert second.headers["content-length"] == str(BIG)
    assert used >= BIG
    assert len(nginx.requests()) == 1


async def test_range_requests_slice_the_nginx_file(nginx, site):
    data = (site / "data.bin").read_bytes()
    async with EdgeInFront(nginx.url) as t:
        miss = await t.get("/data.bin", headers={"Range": "bytes=1000-1999"})
        await t.fills_done()  # the fill reads the whole file on after the slice was sent
        hit = await t.get("/data.bin", headers={"Range": "bytes=5000-5099"})
        suffix = await t.get("/data.bin", headers={"Range": "bytes=-100"})
        whole = await t.get("/data.bin")
    assert (miss.status, miss.body, miss.headers["content-range"]) == (206, data[1000:2000], f"bytes 1000-1999/{MiB}")
    assert (hit.status, hit.cache, hit.body) == (206, "HIT", data[5000:5100])
    assert hit.headers["content-range"] == f"bytes 5000-5099/{MiB}" and hit.headers["content-length"] == "100"
    assert (suffix.status, suffix.body) == (206, data[-100:])
    assert (whole.status, whole.cache, whole.body) == (200, "HIT", data)
    assert [(r.path, r.status) for r in nginx.requests()] == [("/data.bin", 200)]  # the edge fetched it whole


async def test_missing_file_is_nginx_404(nginx):
    async with EdgeInFront(nginx.url) as t:
        first = await t.get("/missing.txt")
        second = await t.get("/missing.txt")
    for r in (first, second):
        assert r.status == 404 and b"404 Not Found" in r.body and b"nginx" in r.body
        assert r.headers["content-type"] == "text/html"
    assert first.cache in ("MISS", "PASS") and second.cache in ("HIT", "MISS", "PASS")
    assert {r.status for r in nginx.requests()} == {404}


async def test_expired_object_is_revalidated_with_a_304_from_nginx(nginx, site):
    async with EdgeInFront(nginx.url) as t:
        first = await t.get("/short/f07.txt")
        fresh = await t.get("/short/f07.txt")
        t.clock.advance(2)
        again = await t.get("/short/f07.txt")
        after = await t.get("/short/f07.txt")
    body = (site / "f07.txt").read_bytes()
    assert [r.cache for r in (first, fresh, again, after)] == ["MISS", "HIT", "REVALIDATED", "HIT"]
    assert all(r.status == 200 and r.body == body for r in (first, fresh, again, after))
    for _ in range(100):  # nginx logs a request after sending its response: a moment later
        logged = nginx.requests()
        if len(logged) >= 2:
            break
        await asyncio.sleep(0.01)
    assert [(r.status, r.if_none_match) for r in logged] == [(200, ""), (304, first.headers["etag"])]
