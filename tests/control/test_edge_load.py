"""Edges report their load in the health answer; the monitor keeps it with the admin address."""

from __future__ import annotations

import httpx

from owncdn.control.health import HealthMonitor, HealthSettings
from owncdn.control.store import Store, sqlite_url
from owncdn.core.config import parse_config
from owncdn.core.routing.health import Starvation
from owncdn.edge.server import EdgeServer
from owncdn.testing.clock import FakeClock

SITE = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: ["http://127.0.0.1:9"]
    health_check: {enabled: false}
"""


async def test_the_health_answer_carries_load_counters_and_admin_address(tmp_path):
    edge = await EdgeServer.start(parse_config(SITE, "cdn.yaml", lambda kind, name: None), access_log="off",
                                  admin="127.0.0.1:0")
    store = Store(sqlite_url(tmp_path), clock=FakeClock().time)
    store.migrate()
    node = store.register_node("edge-a", "edge", "fra", "prod", f"127.0.0.1:{edge.port}")
    monitor = HealthMonitor(store, HealthSettings(interval=1.0, timeout=2.0))
    admin = f"127.0.0.1:{edge.admin_port}"
    try:
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{edge.port}/.well-known/owncdn/health")
            await http.get(f"http://127.0.0.1:{edge.port}/x", headers={"Host": "blog.example.com"})  # 502: origin away
            await monitor.round(http)
            head = await http.head(f"http://127.0.0.1:{edge.port}/.well-known/owncdn/health")
    finally:
        await edge.close()
        store.close()
    body = answer.json()
    assert answer.headers["content-type"] == "application/json" and answer.headers["cache-control"] == "no-store"
    assert (body["status"], body["edge"], body["admin"]) == ("ok", edge.edge.edge_id, admin)
    assert set(body["load"]) == {"loop_lag_seconds", "cpu_steal_ratio", "load1", "load5", "load15"}
    assert body["responses"] == {"total": 0, "errors": 0}  # its own answers are not counted
    info = monitor.edges[node.id]
    assert info.admin == admin
    assert (info.responses, info.errors) == (1, 1)  # the 502 for the visitor
    assert head.status_code == 200 and head.content == b""


async def health_and_metrics(state) -> tuple[dict, str]:
    """An edge with ``state`` as its state directory: its health answer and its metrics."""
    edge = await EdgeServer.start(parse_config(SITE, "cdn.yaml", lambda kind, name: None), access_log="off",
                                  state_dir=state)
    try:
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"http://127.0.0.1:{edge.port}/.well-known/owncdn/health")).json()
        return body, edge.edge.metrics.exposition().decode()
    finally:
        await edge.close()


async def test_the_health_answer_and_metrics_carry_the_state_directory_s_disk(tmp_path):
    """edge/diskspace.py: what the control plane warns about before pushes stop fitting."""
    import os

    state = tmp_path / "edge-state"
    body, exposition = await health_and_metrics(state)
    st = os.statvfs(state)
    disk = body["disk"]
    assert disk["path"] == str(state) and disk["total"] == st.f_blocks * st.f_frsize
    assert 0 < disk["free"] <= disk["total"]
    values = dict(line.split(" ") for line in exposition.splitlines() if line.startswith("owncdn_edge_disk_"))
    assert float(values["owncdn_edge_disk_size_bytes"]) == disk["total"]
    assert 0 < float(values["owncdn_edge_disk_free_bytes"]) <= disk["total"]


async def test_an_edge_without_a_state_directory_reports_no_disk():
    body, exposition = await health_and_metrics(None)
    assert body["disk"] is None and "owncdn_edge_disk_free_bytes" not in exposition


async def test_a_starved_monitor_widens_its_timeout_and_does_not_count_its_timeouts(tmp_path):
    store = Store(sqlite_url(tmp_path), clock=FakeClock().time)
    store.migrate()
    node = store.register_node("edge-a", "edge", "fra", "prod", "127.0.0.1:9")
    monitor = HealthMonitor(store, HealthSettings(interval=1.0, timeout=0.5))
    monitor.starvation = lambda: Starvation(loop_lag=0.5, steal=0.0)

    async def timed_out(http, edge, timeout=None):
        from owncdn.control.health import EdgeCheck
        from owncdn.control.store import CheckResult

        assert timeout == 1.5  # 0.5 s + twice the lag
        return EdgeCheck(CheckResult(edge.node_id, False, f"timeout after {timeout:g}s"), timed_out=True)

    monitor.check = timed_out
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(5):
                assert await monitor.round(http) == []
        (record,) = store.edge_health()
    finally:
        store.close()
    assert (record.node_id, record.healthy, record.failures, monitor.uncounted) == (node.id, True, 0, 5)
