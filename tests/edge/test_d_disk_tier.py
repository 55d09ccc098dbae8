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
    paths = {f"/o{i}": 400_000 for i in range(12)}  # 4.8 MB through a 2 MiB memory tier
    origin = await make_origin(paths).start()
    cfg, _ = config(origin, tmp_path, memory="2MiB")
    server = await EdgeServer.start(cfg)
    for path in paths:
        await get(server, path)
    again = {path: await get(server, path) for path in paths}
    await server.close()
    await origin.close()
    assert all(r.cache == "HIT" and r.body == body_for(p, 400_000) for p, r in again.items())
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
    paths = {f"/s{i}": 400_000 for i in range(8)}  # 3.2 MB through a 1 MiB memory tier
    origin = await make_origin(paths).start()
    cfg, _ = config(origin, tmp_path, memory="1MiB")
    server = await EdgeServer.start(cfg)
    for path in paths:
        await get(server, path)
    on_disk_only = [p for p in paths if server.edge.store.get(f"site example.test{p}", None) is None]
    target = on_disk_only[0]
    assert run_purge(server.edge, {"url": f"http://example.test{target}", "soft": True}) == 1
    revalidated = await get(server, target)
    untouched = await get(server, on_disk_only[1])
    await server.close()
    await origin.close()
    assert (revalidated.cache, revalidated.body) == ("REVALIDATED", body_for(target, 400_000))
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
