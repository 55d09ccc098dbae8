"""Access logs shipped from edges to the control plane's analytics: a request becomes
queryable; a control plane away for a while gets the backlog, once, when it returns;
an edge process killed with SIGKILL with a full spool loses nothing already spooled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from owncdn.testing.client import HttpClient
from owncdn.testing.fleet import Fleet, free_port
from owncdn.testing.origin import FakeOrigin

SITE = """
version: 1
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
"""


@pytest.fixture
async def origin():
    o = FakeOrigin()
    o.route("/", body=b"home" * 100, headers={"Cache-Control": "max-age=600"})
    o.route("/page", body=b"page", headers={"Cache-Control": "max-age=600"})
    await o.start()
    yield o
    await o.close()


VISITORS = "host <> 'owncdn-health'"  # the health monitor's checks are logged too


def rows(fleet: Fleet, sql: str) -> list:
    return fleet.analytics.query(sql)["rows"]


async def wait_rows(fleet: Fleet, sql: str, expected, timeout: float = 30.0) -> list:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (got := await asyncio.to_thread(rows, fleet, sql)) != expected:
        if loop.time() > deadline:
            extra = await asyncio.to_thread(rows, fleet, "SELECT host, path, status, cache, edge FROM logs ORDER BY time")
            raise TimeoutError(f"{sql}: {got} != {expected} {extra}")
        await asyncio.sleep(0.1)
    return got


async def test_a_request_on_an_edge_is_queryable_in_the_control_planes_analytics(tmp_path, origin):
    async with Fleet(tmp_path, edges=2) as fleet:
        v = await fleet.apply(SITE.format(origin=origin.url))
        await fleet.wait_applied(v)
        miss = await fleet.get(0, "/", headers={"Referer": "https://ref.test/"})
        hit = await fleet.get(0, "/")
        await fleet.get(1, "/page")
        await wait_rows(fleet, f"SELECT count(*) FROM logs WHERE {VISITORS}", [[3]])
        got = await asyncio.to_thread(
            rows, fleet, "SELECT request_id, service, edge, location, status, cache, bytes, origin_bytes, referrer,"
            f" ttfb_ms IS NOT NULL, schema_version FROM logs WHERE edge = 'edge-0' AND {VISITORS} ORDER BY cache DESC")
        stats = await asyncio.to_thread(fleet.api.stats, service="site", since="1h", bucket="1h")
    assert got == [
        [miss.headers["x-request-id"], "site", "edge-0", "loc0", 200, "MISS", 400, 400, "https://ref.test/", True, 1],
        [hit.headers["x-request-id"], "site", "edge-0", "loc0", 200, "HIT", 400, 0, None, True, 1],
    ]
    assert stats["total"]["requests"] == 3 and stats["total"]["bytes"] == 804
    assert stats["total"]["origin_bytes"] == 404 and stats["total"]["hit_ratio"] == pytest.approx(1 / 3, abs=1e-4)


async def test_a_control_plane_away_gets_the_backlog_once_when_it_returns(tmp_path, origin):
    async with Fleet(tmp_path, edges=2) as fleet:
        v = await fleet.apply(SITE.format(origin=origin.url))
        await fleet.wait_applied(v)
        await fleet.get(0, "/")
        await wait_rows(fleet, f"SELECT count(*) FROM logs WHERE {VISITORS}", [[1]])
        await fleet.stop_control()
        ids = []
        for i in range(40):
            r = await fleet.get(i % 2, "/page")
            ids.append(r.headers["x-request-id"])
        shippers = [e.edge.log_shippers[0] for e in fleet.edges]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        # the lines wait in the spools on disk, and the shippers have tried and failed
        while sum(s.spool.lines for s in shippers) < 40 or not all(s.failures for s in shippers):
            assert loop.time() < deadline, shippers
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(rows, fleet, f"SELECT count(*) FROM logs WHERE {VISITORS}") == [[1]]
        await fleet.start_control()
        await wait_rows(fleet, f"SELECT count(*), count(DISTINCT request_id) FROM logs WHERE {VISITORS}", [[41, 41]])
        got = await asyncio.to_thread(rows, fleet, "SELECT request_id FROM logs WHERE path = '/page' ORDER BY request_id")
        deadline = loop.time() + 20
        while any(s.spool.lines for s in shippers):  # acknowledged segments leave the spools
            assert loop.time() < deadline, shippers
            await asyncio.sleep(0.05)
    assert sorted(r[0] for r in got) == sorted(ids)


async def test_an_edge_killed_with_a_full_spool_loses_nothing(tmp_path, origin):
    fleet = Fleet(tmp_path / "fleet", edges=0)
    await fleet.__aenter__()
    state = tmp_path / "edge-process"
    port = free_port()
    procs = []

    def spawn() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "owncdn.cli", "edge", "--control", fleet.url, "--token", fleet.bootstrap_token,
             "--state-dir", str(state), "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{free_port()}",
             "--access-log", "off", "--id", "edge-proc", "--location", "proc"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(proc)
        return proc

    async def get(path: str):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            try:
                async with HttpClient("127.0.0.1", port, default_host="example.test") as client:
                    r = await client.get(path)
                if r.status == 200:
                    return r
            except OSError:
                pass
            assert loop.time() < deadline, "the edge process never answered"
            await asyncio.sleep(0.05)

    def spooled() -> int:
        spool = state / "logs" / "control"
        return sum(p.read_bytes().count(b"\n") for p in spool.glob("*.jsonl")) if spool.exists() else 0

    try:
        v = await fleet.apply(SITE.format(origin=origin.url))
        spawn()
        await get("/")  # the edge runs the version (earlier tries were answered 421, and logged)
        await wait_rows(fleet, f"SELECT count(*) FROM logs WHERE status = 200 AND {VISITORS}", [[1]])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while spooled():  # everything so far was acknowledged
            assert loop.time() < deadline, f"{spooled()} lines still spooled"
            await asyncio.sleep(0.05)
        [[before]] = await asyncio.to_thread(rows, fleet, f"SELECT count(*) FROM logs WHERE {VISITORS}")
        await fleet.stop_control()  # nothing acknowledges from now on: the spool fills
        ids = [(await get("/page")).headers["x-request-id"] for _ in range(30)]
        deadline = loop.time() + 20
        while spooled() < 30:
            assert loop.time() < deadline, f"only {spooled()} lines spooled"
            await asyncio.sleep(0.05)
        os.killpg(procs[0].pid, signal.SIGKILL)
        await asyncio.to_thread(procs[0].wait)
        await fleet.start_control()
        spawn()  # restarts from its spool and ships the backlog
        await wait_rows(fleet, f"SELECT count(*), count(DISTINCT request_id) FROM logs WHERE {VISITORS}", [[before + 30] * 2])
        got = await asyncio.to_thread(rows, fleet, "SELECT request_id FROM logs WHERE path = '/page'")
        assert sorted(r[0] for r in got) == sorted(ids)
        assert v
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        await fleet.__aexit__(None, None, None)
