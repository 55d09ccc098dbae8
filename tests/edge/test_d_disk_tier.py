"""The disk tier in a running edge: restarts, crashes, ranges, variants, purges."""

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys

from owncdn.core.config import parse_config
from owncdn.edge.purge import run_purge
from owncdn.edge.server import EdgeServer
from owncdn.testing.client import HttpClient
from owncdn.testing.clock import FakeClock
from owncdn.testing.origin import FakeOrigin, Reply

CONFIG = """
version: 1
edge: {{id: edge-d, location: test, memory_cache: {memory}, access_log: "off",
        disk_cache: {{path: "{disk}", size: 512MiB, fsync: {fsync}}}}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
"""


def body_for(path: str, size: int = 3000) -> bytes:
    seed = hashlib.sha256(path.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def config(origin, tmp_path, memory="64MiB", fsync="batch"):
    text = CONFIG.format(origin=origin.url, disk=tmp_path / "disk", memory=memory, fsync=fsync)
    return parse_config(text, "disk.yaml", lambda kind, name: None), text


def make_origin(paths: dict[str, int]) -> FakeOrigin:
    origin = FakeOrigin()
    for path, size in paths.items():
        origin.route(path, body=body_for(path, size),
                     headers={"Cache-Control": "max-age=3600", "ETag": f'"{path}"', "Cache-Tag": "t" + path[-1]})
    return origin


async def get(server: EdgeServer, path: str, **headers):
    async with HttpClient("127.0.0.1", server.port) as c:
        return await c.get(path, headers=headers or None)


PATHS = {"/a": 3000, "/b": 200_000, "/c": 5 << 20}


async def test_objects_survive_a_restart_and_come_back_from_disk(tmp_path):
    origin = await make_origin(PATHS).start()
    cfg, _ = config(origin, tmp_path)
    clock = FakeClock()
    first = await EdgeServer.start(cfg, clock=clock)
    for path in PATHS:
        assert (await get(first, path)).cache == "MISS"
    await first.close()
    second = await EdgeServer.start(cfg, clock=clock)
    replies = {path: await get(second, path) for path in PATHS}
    ranged = await get(second, "/c", Range="bytes=1000-1999")
    head_only = None
    async with HttpClient("127.0.0.1", second.port) as c:
        head_only = await c.head("/b")
    await second.close()
    await origin.close()
    for path, size in PATHS.items():
        r = replies[path]
        assert (r.status, r.cache) == (200, "HIT"), path
        assert r.body == body_for(path, size)
        assert r.headers["etag"] == f'"{path}"'
    assert ranged.status == 206 and ranged.body == body_for("/c", PATHS["/c"])[1000:2000]
    assert head_only.cache == "HIT" and head_only.body == b"" and head_only.headers["content-length"] == "200000"
    assert origin.hits("/a") == origin.hits("/b") == origin.hits("/c") == 1


async def test_objects_evicted_from_memory_are_served_from_disk(tmp_path):
    # below sendfile_min_size (64 KiB), so held in memory: 480 kB through a 256 KiB memory tier
    paths = {f"/o{i}": 40_000 for i in range(12)}
    origin = await make_origin(paths).start()
    cfg, _ = config(origin, tmp_path, memory="256KiB")
    server = await EdgeServer.start(cfg)
    for path in paths:
        await get(server, path)
    evicted = server.edge.store.evictions
    again = {path: await get(server, path) for path in paths}
    await server.close()
    await origin.close()
    assert evicted > 0
    assert all(r.cache == "HIT" and r.body == body_for(p, 40_000) for p, r in again.items())
    assert all(origin.hits(p) == 1 for p in paths)


async def test_vary_variants_come_back_after_a_restart(tmp_path):
    origin = FakeOrigin()
    origin.route("/v", handler=lambda req: Reply(
        200, (req.headers.get("accept-language") or "none").encode(),
        {"Cache-Control": "max-age=3600", "Vary": "Accept-Language"}))
    await origin.start()
    cfg, _ = config(origin, tmp_path)
    first = await EdgeServer.start(cfg)
    for lang in ("en", "fr"):
        await get(first, "/v", **{"Accept-Language": lang})
    await first.close()
    second = await EdgeServer.start(cfg)
    en, fr, de = [await get(second, "/v", **{"Accept-Language": lang}) for lang in ("en", "fr", "de")]
    await second.close()
    await origin.close()
    assert (en.cache, en.body, fr.cache, fr.body) == ("HIT", b"en", "HIT", b"fr")
    assert (de.cache, de.body) == ("MISS", b"de")


async def test_a_purge_reaches_the_disk_tier(tmp_path):
    origin = await make_origin(PATHS).start()
    cfg, _ = config(origin, tmp_path)
    first = await EdgeServer.start(cfg)
    for path in PATHS:
        await get(first, path)
    assert run_purge(first.edge, {"url": "http://example.test/b"}) == 1
    assert run_purge(first.edge, {"tag": "tc"}) == 1
    await first.close()
    second = await EdgeServer.start(cfg)
    after = {path: (await get(second, path)).cache for path in PATHS}
    await second.close()
    await origin.close()
    assert after == {"/a": "HIT", "/b": "MISS", "/c": "MISS"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigkill_while_storing_never_serves_a_corrupt_object(tmp_path):
    # An edge process stores many objects; it is killed in the middle. A new edge on the
    # same disk serves every object either as a HIT with exactly the right bytes, or
    # fetches it again: never a torn or corrupt body.
    paths = {f"/k{i}": (i % 7 + 1) * 90_000 for i in range(80)}
    origin = await make_origin(paths).start()
    cfg, text = config(origin, tmp_path, fsync="never")
    (tmp_path / "cdn.yaml").write_text(text)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "owncdn.cli", "edge", "--config", str(tmp_path / "cdn.yaml"),
                             "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{free_port()}"])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)

        async def fetch(path):
            try:
                async with HttpClient("127.0.0.1", port) as c:
                    await c.get(path, timeout=5)
            except (ConnectionError, OSError, asyncio.TimeoutError):
                pass

        tasks = [asyncio.create_task(fetch(p)) for p in paths]
        await asyncio.sleep(0.15)
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.gather(*tasks)
    finally:
        proc.kill()
        proc.wait()
    survivor = await EdgeServer.start(cfg)
    replies = {path: await get(survivor, path) for path in paths}
    await survivor.close()
    await origin.close()
    hits = [p for p, r in replies.items() if r.cache == "HIT"]
    assert all(r.status == 200 and r.body == body_for(p, paths[p]) for p, r in replies.items())
    assert hits, "nothing had been stored before the kill: the test proved nothing"


async def test_a_body_too_large_for_memory_streams_to_disk_and_is_served_from_there(tmp_path):
    big = body_for("/big", 24 << 20)  # 24 MiB through an 8 MiB memory tier
    chunks = [big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20)]
    origin = FakeOrigin()
    origin.route("/big", body=big, headers={"Cache-Control": "max-age=3600"})
    origin.route("/chunked", headers={"Cache-Control": "max-age=3600"}, chunks=chunks)
    origin.route("/cut", responses=[Reply(200, big, {"Cache-Control": "max-age=3600"}, abort_after=5 << 20),
                                    Reply(200, b"small", {"Cache-Control": "max-age=3600"})])
    await origin.start()
    cfg, _ = config(origin, tmp_path, memory="8MiB")
    server = await EdgeServer.start(cfg)
    first = await get(server, "/big")
    second = await get(server, "/big")
    ranged = await get(server, "/big", Range="bytes=20000000-20000099")
    chunked = [await get(server, "/chunked") for _ in range(2)]
    try:
        await get(server, "/cut")
    except ConnectionError:
        pass
    after_cut = await get(server, "/cut")
    disk_keys = sorted(server.edge.disk.entries)
    memory_used = server.edge.store.used
    await server.close()
    await origin.close()
    assert (first.cache, second.cache) == ("MISS", "HIT")
    assert first.body == big and second.body == big
    assert ranged.status == 206 and ranged.body == big[20000000:20000100]
    assert [r.cache for r in chunked] == ["MISS", "HIT"] and all(r.body == big for r in chunked)
    assert (after_cut.cache, after_cut.body) == ("MISS", b"small")
    assert origin.hits("/big") == 1 and origin.hits("/chunked") == 1
    assert any(k.endswith("/big") for k in disk_keys) and any(k.endswith("/chunked") for k in disk_keys)
    assert memory_used < 8 << 20


async def test_soft_purge_of_an_object_only_on_disk_revalidates_it(tmp_path):
    paths = {f"/s{i}": 40_000 for i in range(8)}  # 320 kB through a 128 KiB memory tier
    origin = await make_origin(paths).start()
    cfg, _ = config(origin, tmp_path, memory="128KiB")
    server = await EdgeServer.start(cfg)
    for path in paths:
        await get(server, path)
    on_disk_only = [p for p in paths if f"site http://example.test{p}" not in server.edge.store.entries]
    assert len(on_disk_only) >= 2
    target = on_disk_only[0]
    assert run_purge(server.edge, {"url": f"http://example.test{target}", "soft": True}) == 1
    revalidated = await get(server, target)
    untouched = await get(server, on_disk_only[1])
    await server.close()
    await origin.close()
    assert (revalidated.cache, revalidated.body) == ("REVALIDATED", body_for(target, 40_000))
    assert untouched.cache == "HIT"
    conditional = [r for r in origin.requests if r.path == target and "if-none-match" in r.headers]
    assert len(conditional) == 1


async def test_a_soft_purge_holds_after_a_restart(tmp_path):
    origin = await make_origin(PATHS).start()
    cfg, _ = config(origin, tmp_path)
    first = await EdgeServer.start(cfg)
    for path in PATHS:
        await get(first, path)
    assert run_purge(first.edge, {"url": "http://example.test/b", "soft": True}) == 1
    await first.close()
    second = await EdgeServer.start(cfg)
    after = {path: (await get(second, path)).cache for path in PATHS}
    again = (await get(second, "/b")).cache
    await second.close()
    third = await EdgeServer.start(cfg)  # the origin confirmed it: the mark is gone
    last = (await get(third, "/b")).cache
    await third.close()
    await origin.close()
    assert after == {"/a": "HIT", "/b": "REVALIDATED", "/c": "HIT"}
    assert again == "HIT"
    assert last == "HIT"


SIZES = {"/small": 3000, "/mid": 100_000, "/large": 3 << 20}


def held(server: EdgeServer, path: str):
    """The body the memory tier holds for `path` (bytes, BodyFile or DiskBody)."""
    return server.edge.store.entries[f"site http://example.test{path}"][0].body


async def test_bodies_from_sendfile_min_size_up_are_served_from_their_disk_file(tmp_path):
    big = body_for("/chunked", 300_000)
    origin = make_origin(SIZES)
    origin.route("/chunked", headers={"Cache-Control": "max-age=3600"},
                 chunks=[big[i:i + 50_000] for i in range(0, len(big), 50_000)])  # no Content-Length
    await origin.start()
    cfg, _ = config(origin, tmp_path)  # sendfile_min_size: its default, 64 KiB
    server = await EdgeServer.start(cfg)
    first = {p: await get(server, p) for p in [*SIZES, "/chunked"]}
    second = {p: await get(server, p) for p in [*SIZES, "/chunked"]}
    ranged = await get(server, "/mid", Range="bytes=99000-99999")
    kinds = {p: (type(held(server, p)).__name__, getattr(held(server, p), "on_disk", False)) for p in first}
    memory_used, file_bodies = server.edge.store.used, list(server.edge.metrics.file_bodies)
    await server.close()
    await origin.close()
    sizes = {**SIZES, "/chunked": 300_000}
    assert all(first[p].cache == "MISS" and second[p].cache == "HIT" for p in sizes)
    assert all(second[p].body == first[p].body == body_for(p, n) for p, n in sizes.items())
    assert ranged.status == 206 and ranged.body == body_for("/mid", 100_000)[99000:]
    assert kinds == {"/small": ("bytes", False), "/mid": ("DiskBody", True), "/large": ("DiskBody", True),
                     "/chunked": ("DiskBody", True)}
    assert memory_used < 3 * 80_000  # the memory tier holds the files, not their bytes
    assert file_bodies[0] == 0 and file_bodies[1] >= 4  # the hits and the range went out from disk
    assert all(origin.hits(p) == 1 for p in sizes)


async def test_sendfile_min_size_is_configurable_and_holds_after_a_restart(tmp_path):
    origin = await make_origin(SIZES).start()
    cfg, text = config(origin, tmp_path)
    cfg = parse_config(text.replace("fsync: batch", "fsync: batch, sendfile_min_size: 1MiB"), "disk.yaml",
                       lambda kind, name: None)
    first = await EdgeServer.start(cfg)
    for path in SIZES:
        await get(first, path)
    kinds_first = {p: getattr(held(first, p), "on_disk", False) for p in SIZES}
    await first.close()
    second = await EdgeServer.start(cfg)
    replies = {p: await get(second, p) for p in SIZES}
    kinds_second = {p: getattr(held(second, p), "on_disk", False) for p in SIZES}
    second.edge.apply_config(parse_config(text, "disk.yaml", lambda kind, name: None))  # back to 64 KiB
    threshold = second.edge.disk.sendfile_min
    await second.close()
    await origin.close()
    assert kinds_first == kinds_second == {"/small": False, "/mid": False, "/large": True}
    assert all(r.cache == "HIT" and r.body == body_for(p, n) for (p, n), r in zip(SIZES.items(), replies.values()))
    assert threshold == 64 * 1024


def _responses(data: bytes) -> list[tuple[bytes, bytes]]:
    """(head, body) pairs of complete responses with Content-Length."""
    out = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        if len(rest) < length:
            break
        out.append((head, rest[:length]))
        data = rest[length:]
    return out


async def _slow_pipelined_gets(port: int, path: str, n: int) -> list:
    """`n` pipelined GETs of `path` on a small receive buffer, read slowly in small pieces."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode() * n)
    data = b""
    while len(_responses(data)) < n:
        data += await asyncio.wait_for(reader.read(16384), 10)
        await asyncio.sleep(0.001)
    writer.close()
    return _responses(data)


async def test_large_disk_bodies_to_a_slow_pipelining_client_arrive_whole_and_in_order(tmp_path):
    origin = await make_origin(SIZES).start()
    cfg, _ = config(origin, tmp_path)
    server = await EdgeServer.start(cfg)
    await get(server, "/large")
    await get(server, "/mid")
    slow = asyncio.create_task(_slow_pipelined_gets(server.port, "/large", 3))
    await asyncio.sleep(0.05)
    meanwhile = await get(server, "/mid")  # the slow client holds nobody else up
    slow_done_first = slow.done()
    replies = await slow
    await server.close()
    await origin.close()
    assert meanwhile.cache == "HIT" and meanwhile.body == body_for("/mid", 100_000)
    assert not slow_done_first
    assert len(replies) == 3
    assert all(b" 200 " in head and b"X-Cache: HIT" in head for head, _ in replies)
    assert all(body == body_for("/large", SIZES["/large"]) for _, body in replies)
    ids = [next(line for line in head.split(b"\r\n") if line.startswith(b"X-Request-Id")) for head, _ in replies]
    assert len(set(ids)) == 3


async def test_a_client_leaving_in_the_middle_of_a_disk_body_harms_nobody(tmp_path):
    origin = await make_origin(SIZES).start()
    cfg, _ = config(origin, tmp_path)
    server = await EdgeServer.start(cfg)
    await get(server, "/large")
    for _ in range(3):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /large HTTP/1.1\r\nHost: example.test\r\n\r\n" * 2)
        await reader.readexactly(100_000)
        writer.transport.abort()  # gone mid-body, a second request queued behind it
    await asyncio.sleep(0.1)
    after = await get(server, "/large")
    open_connections = len(server.edge.connections)
    await server.close()
    await origin.close()
    assert after.cache == "HIT" and after.body == body_for("/large", SIZES["/large"])
    assert open_connections <= 1  # the aborted ones are gone (the last client's may linger)


class _FullDisk:
    """A disk-tier writer on a disk that fills up after `room` bytes."""

    def __init__(self, real, room: int) -> None:
        self.real, self.room = real, room

    def write(self, chunk) -> None:
        self.room -= len(chunk)
        if self.room < 0:
            raise OSError(28, "No space left on device")
        self.real.write(chunk)

    def commit(self):
        return self.real.commit()

    def abort(self) -> None:
        self.real.abort()


async def test_a_disk_that_cannot_take_a_body_never_fails_the_response(tmp_path):
    big = body_for("/chunked", 300_000)
    origin = make_origin(SIZES)
    origin.route("/chunked", headers={"Cache-Control": "max-age=3600"},
                 chunks=[big[i:i + 50_000] for i in range(0, len(big), 50_000)])
    await origin.start()
    cfg, _ = config(origin, tmp_path)
    server = await EdgeServer.start(cfg)
    disk = server.edge.disk
    real_spool = disk.spool
    disk.spool = lambda *a, **kw: _FullDisk(real_spool(*a, **kw), 120_000)
    replies = {p: [await get(server, p) for _ in range(2)] for p in ("/mid", "/chunked", "/large")}
    errors = disk.errors

    def refuse(*a, **kw):
        raise OSError(5, "Input/output error")

    disk.spool = refuse
    origin.route("/mid2", body=body_for("/mid2", 100_000), headers={"Cache-Control": "max-age=3600"})
    fresh = [await get(server, "/mid2") for _ in range(2)]
    kept = held(server, "/mid2")
    await server.close()
    await origin.close()
    sizes = {"/mid": 100_000, "/chunked": 300_000, "/large": SIZES["/large"]}
    assert all(r.status == 200 and r.body == body_for(p, sizes[p]) for p, rs in replies.items() for r in rs)
    assert [r.cache for r in replies["/mid"]] == ["MISS", "HIT"]  # fitted the disk's room: stored there
    assert errors == 2  # /chunked and /large did not fit: passed on whole all the same
    assert [r.cache for r in fresh] == ["MISS", "HIT"] and all(r.body == body_for("/mid2", 100_000) for r in fresh)
    assert not kept.on_disk  # the disk refused it: kept in memory instead


def test_a_file_that_ends_before_its_body_fails_the_send_instead_of_spinning(tmp_path):
    from owncdn.edge.protocol import _sendfile

    path = tmp_path / "short"
    path.write_bytes(b"x" * 10)
    a, b = socket.socketpair()
    fd = os.open(path, os.O_RDONLY)
    try:
        a.setblocking(False)
        assert _sendfile(a.fileno(), fd, 0, 100) == 10  # what the file has
        try:
            _sendfile(a.fileno(), fd, 10, 90)  # the index promised 90 more
        except ConnectionError as exc:
            assert "ended" in str(exc)
        else:
            raise AssertionError("a short file must fail the body")
        assert b.recv(100) == b"x" * 10
    finally:
        os.close(fd)
        a.close()
        b.close()


async def test_a_connection_that_sent_a_disk_body_keeps_little_unsent_in_the_kernel(tmp_path):
    from owncdn.edge.protocol import _TCP_NOTSENT_LOWAT, NOTSENT_LOWAT

    origin = make_origin({"/big": 1 << 20})
    await origin.start()
    cfg, _ = config(origin, tmp_path)
    server = await EdgeServer.start(cfg)
    try:
        async with HttpClient("127.0.0.1", server.port) as c:
            first = await c.get("/big")
            second = await c.get("/big")
            lowat = [conn._sock.getsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT)
                     for conn in server.edge.connections if conn._sock is not None]
    finally:
        await server.close()
        await origin.close()
    assert (first.cache, second.cache) == ("MISS", "HIT")
    assert second.body == body_for("/big", 1 << 20)
    assert lowat == [NOTSENT_LOWAT]  # protocol.py rule 8
