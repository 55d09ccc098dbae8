"""Pushed releases across a fleet: a control plane and edges in this process (and one
edge as a real process), the release channel, blob fetches, switching, rollback, and
a sync interrupted midway (the edge stopped, or killed with SIGKILL) that finishes
after a restart while the old release keeps serving."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path


from owncdn.client.push import push_site
from owncdn.core.config import parse_config
from owncdn.edge.server import EdgeServer
from owncdn.edge.static import ANY_CODING
from owncdn.testing.client import HttpClient
from owncdn.testing.fleet import Fleet, free_port
from owncdn.testing.gate import Gate

SOURCE = """
version: 1
services:
  - name: blog
    hostnames: [blog.test]
    mode: push
"""
BIG = 8 << 20  # a blob large enough to be caught mid-fetch by the gate
GATE_LIMIT = 1 << 20


def write_site(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


async def push(fleet: Fleet, root: Path) -> int:
    result = await asyncio.to_thread(push_site, fleet.api, root, service="blog", env=fleet.env)
    return result.release["number"]


def serving(server: EdgeServer) -> int | None:
    live = server.edge.releases.live.get("blog")
    return live.target.number if live is not None else None


async def wait_serving(servers: list[EdgeServer], number: int, timeout: float = 20.0) -> None:
    """Until every edge switched to release `number` and acknowledged it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(serving(s) == number and s.push.acked.get("blog") == (number, "serving") for s in servers):
        if loop.time() > deadline:
            raise TimeoutError(f"not every edge serves release {number}: {[s.push for s in servers]}")
        await asyncio.sleep(0.01)


async def get(server: EdgeServer, path: str = "/", host: str = "blog.test", **kw):
    sock = server.servers[0].sockets[0].getsockname()
    async with HttpClient(sock[0], sock[1], default_host=host) as client:
        return await client.get(path, **kw)


async def start_fleet(tmp_path: Path, edges: int) -> Fleet:
    fleet = Fleet(tmp_path, edges=edges)
    await fleet.__aenter__()
    version = await fleet.apply(SOURCE)
    await fleet.wait_applied(version)
    return fleet


async def test_push_serves_everywhere_moves_only_changed_blobs_and_rolls_back(tmp_path):
    site = write_site(tmp_path / "public", {
        "index.html": b"<h1>v1</h1>", "about.html": b"about", "assets/app.js": os.urandom(200_000),
        "assets/app.js.gz": os.urandom(50_000), "404.html": b"gone"})
    fleet = await start_fleet(tmp_path / "fleet", edges=3)
    try:
        one = await push(fleet, site)
        await wait_serving(fleet.edges, one)
        for edge in fleet.edges:   # warmed after the switch (releasesync rule 4), before any request
            await wait_for(lambda e=edge: ("/about", ANY_CODING) in e.edge.releases.live["blog"].memo,
                           "the release warmed")
        for edge in fleet.edges:
            home, about, missing = await get(edge, "/"), await get(edge, "/about"), await get(edge, "/x")
            assert (home.status, home.body, home.cache) == (200, b"<h1>v1</h1>", "PUSH")
            assert (about.body, missing.status, missing.body) == (b"about", 404, b"gone")
        before = [(e.push.fetched_blobs, e.push.fetched_bytes) for e in fleet.edges]

        (site / "index.html").write_bytes(b"<h1>version two</h1>")
        two = await push(fleet, site)
        await wait_serving(fleet.edges, two)
        for edge, (blobs, size) in zip(fleet.edges, before):
            # only the changed file's blob moved to each edge
            assert (edge.push.fetched_blobs - blobs, edge.push.fetched_bytes - size) == (1, 20)
            assert (await get(edge, "/")).body == b"<h1>version two</h1>"

        releases = await asyncio.to_thread(fleet.api.releases, fleet.env, "blog")
        assert [(r["number"], r["current"], len(r["nodes"])) for r in releases] == [(two, True, 3), (one, False, 0)]

        await asyncio.to_thread(fleet.api.activate_release, fleet.env, "blog", one)
        await wait_serving(fleet.edges, one)
        for edge, (blobs, size) in zip(fleet.edges, before):
            assert edge.push.fetched_blobs - blobs == 1  # rolling back fetched nothing
            assert (await get(edge, "/")).body == b"<h1>v1</h1>"
    finally:
        await fleet.__aexit__(None, None, None)


async def start_gated_edge(fleet: Fleet, control: str, state: Path, port: int = 0) -> EdgeServer:
    config = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
    return await EdgeServer.start(config, listen=f"127.0.0.1:{port}", access_log="off", control=control,
                                  token=fleet.bootstrap_token, state_dir=state, env=fleet.env,
                                  edge_id="edge-gated", location="gated")


async def wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


def part_size(state: Path) -> int:
    """The size of the resumable partial file (``<sha>.part``; a bundled blob's writer
    file ``<sha>.<thread>.part`` may be there for a moment too)."""
    parts = [p for p in (state / "push" / "partial").glob("*.part") if p.name.count(".") == 1]
    return parts[0].stat().st_size if parts else 0


async def test_an_edge_stopped_midway_resumes_and_serves_the_old_release_meanwhile(tmp_path):
    site = write_site(tmp_path / "public", {"index.html": b"old"})
    fleet = await start_fleet(tmp_path / "fleet", edges=1)
    state = tmp_path / "gated"
    try:
        async with Gate("127.0.0.1", fleet.port, limit=GATE_LIMIT) as gate:
            edge = await start_gated_edge(fleet, gate.url, state)
            one = await push(fleet, site)
            await wait_serving([edge], one)

            write_site(site, {"index.html": b"new", "big.bin": os.urandom(BIG)})
            two = await push(fleet, site)
            await wait_for(lambda: part_size(state) > GATE_LIMIT // 2, "the big blob's fetch did not start")
            assert serving(edge) == one and (await get(edge, "/")).body == b"old"
            pending = state / "push" / "releases" / "blog.pending.json"
            assert pending.exists()
            port = edge.port
            await edge.close()                      # stopped midway: the partial file stays
            held = part_size(state)
            assert 0 < held < BIG

            sent_before = gate.sent
            edge = await start_gated_edge(fleet, gate.url, state, port)
            # at once, from disk, while the resumed fetch is held again
            assert serving(edge) == one and (await get(edge, "/")).body == b"old"
            await wait_for(lambda: edge.push.fetched_bytes > 0, "the fetch did not resume")
            assert (await get(edge, "/")).body == b"old" and serving(edge) == one
            gate.open()
            await wait_serving([edge], two)
            # Range: only the rest of the big blob moved (and perhaps the 3-byte index.html)
            assert BIG - held <= edge.push.fetched_bytes <= BIG - held + 3
            assert gate.sent - sent_before < BIG
            assert (await get(edge, "/")).body == b"new"
            assert (await get(edge, "/big.bin")).body == (site / "big.bin").read_bytes()
            assert not pending.exists() and part_size(state) == 0
            await edge.close()
    finally:
        await fleet.__aexit__(None, None, None)


async def test_an_edge_process_killed_with_sigkill_finishes_the_sync_on_restart(tmp_path):
    site = write_site(tmp_path / "public", {"index.html": b"old"})
    fleet = await start_fleet(tmp_path / "fleet", edges=0)
    state = tmp_path / "edge-process"
    port = free_port()
    procs = []

    def spawn(control: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "owncdn.cli", "edge", "--control", control, "--token", fleet.bootstrap_token,
             "--state-dir", str(state), "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{free_port()}",
             "--access-log", "off", "--id", "edge-proc", "--location", "proc"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(proc)
        return proc

    async def body(path: str = "/") -> bytes | None:
        try:
            async with HttpClient("127.0.0.1", port, default_host="blog.test") as client:
                r = await client.get(path)
                return r.body if r.status == 200 else None
        except OSError:
            return None

    async def wait_body(expected: bytes, path: str = "/") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while await body(path) != expected:
            if loop.time() > deadline:
                raise TimeoutError(f"the edge process never served {expected[:20]!r} at {path}")
            await asyncio.sleep(0.05)

    try:
        async with Gate("127.0.0.1", fleet.port, limit=GATE_LIMIT) as gate:
            proc = spawn(gate.url)
            one = await push(fleet, site)
            await wait_body(b"old")
            write_site(site, {"index.html": b"new", "big.bin": os.urandom(BIG)})
            await push(fleet, site)
            await wait_for(lambda: part_size(state) > GATE_LIMIT // 2, "the big blob's fetch did not start")
            assert await body() == b"old"
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            held = part_size(state)
            assert 0 < held < BIG

            sent_before = gate.sent
            spawn(gate.url)
            await wait_body(b"old")              # the restarted edge serves the old release ...
            await wait_for(lambda: part_size(state) > held, "the fetch did not resume")
            assert await body() == b"old"        # ... while the resumed fetch is held
            gate.open()
            await wait_body(b"new")
            assert await body("/big.bin") == (site / "big.bin").read_bytes()
            assert gate.sent - sent_before < BIG  # resumed with Range, not fetched again
            assert part_size(state) == 0
            releases = await asyncio.to_thread(fleet.api.releases, fleet.env, "blog")
            assert releases[0]["current"] and [n["name"] for n in releases[0]["nodes"]] == ["edge-proc"]
            assert releases[1]["number"] == one
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        await fleet.__aexit__(None, None, None)
