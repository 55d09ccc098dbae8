"""`owncdn explain` and `owncdn probe` against an in-process fleet (control plane + 2 edges
with admin listeners), and the control plane's and edges' metrics."""

from __future__ import annotations

import asyncio

import httpx
from typer.testing import CliRunner

from owncdn.cli.main import app
from owncdn.control.health import HealthSettings
from owncdn.testing.fleet import Fleet
from owncdn.testing.origin import FakeOrigin

SITE = """\
version: 1
dns: {{zone: cdn.test}}
locations:
  - {{name: loc0, lat: 50.1, lon: 8.7, addresses: [192.0.2.10]}}
  - {{name: loc1, lat: 40.7, lon: -74.0, addresses: [192.0.2.20]}}
services:
  - name: site
    hostnames: [www.example.com]
    origins: ["{origin}"]
"""


async def until(predicate, timeout: float = 15.0):
    """Until `predicate` (sync, run in a thread: it may call the API) returns something true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await asyncio.to_thread(predicate)
        if found:
            return found
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


async def test_explain_probe_and_metrics_across_a_fleet(tmp_path):
    origin = FakeOrigin()
    origin.route("/page", body=b"hello", headers={"Cache-Control": "max-age=300", "Cache-Tag": "pages, home"})
    await origin.start()
    origin_url = origin.url
    fleet = Fleet(tmp_path, edges=2, health=HealthSettings(interval=0.05, timeout=2.0))
    fleet.admin = True
    try:
        async with fleet:
            await fleet.wait_applied(await fleet.apply(SITE.format(origin=origin.url)))
            api = fleet.api
            r = await fleet.get(0, "/page", host="www.example.com")
            assert r.headers["x-cache"] == "MISS"
            await until(lambda: all(e["admin"] for e in api.edge_health()))
            await until(lambda: all(getattr(e.edge, "admin_token", None) for e in fleet.edges))  # `admin` channel
            states = await asyncio.to_thread(api.cache_state, "production", "http://www.example.com/page")
            probes = await asyncio.to_thread(api.probe, "production", f"{origin.url}/page", 5.0)
            edge0 = f"http://{fleet.address(0)}:{fleet.edges[0].port}/page"
            via_edge = await asyncio.to_thread(api.probe, "production", edge0, 5.0, "www.example.com")
            runner = CliRunner()
            common = ["--control", fleet.url, "--token", fleet.admin_token]
            explained = await asyncio.to_thread(
                runner.invoke, app, ["explain", "http://www.example.com/page", "--client", "192.0.2.99", *common])
            probed = await asyncio.to_thread(runner.invoke, app, ["probe", f"{origin.url}/page", *common])
            async with httpx.AsyncClient() as http:
                control = await http.get(f"{fleet.url}/metrics",
                                          headers={"Authorization": f"Bearer {fleet.admin_token}"})
                anonymous = await http.get(f"{fleet.url}/metrics")
                edge_admin = (await asyncio.to_thread(api.edge_health))[0]["admin"]
                edge = await http.get(f"http://{edge_admin}/metrics")
                refused = await http.post(f"http://{edge_admin}/probe", json={"url": origin.url})
    finally:
        await origin.close()
    by_edge = {s["edge"]: s for s in states}
    (variant,) = by_edge["edge-0"]["variants"]
    assert (variant["tier"], variant["status"], variant["stale"], variant["tags"]) == ("memory", 200, False, ["pages", "home"])
    assert 0 < variant["ttl_left"] <= 300 and by_edge["edge-0"]["service"] == "site"
    assert by_edge["edge-1"]["variants"] == [] and by_edge["edge-1"]["service"] == "site"
    assert sorted(p["edge"] for p in probes) == ["edge-0", "edge-1"]
    for p in probes:
        assert (p["status"], p["bytes"], p["error"]) == (200, 5, "") and p["ttfb_ms"] <= p["total_ms"]
    assert {p["x_cache"] for p in via_edge} == {"HIT"} and {p["served_by"] for p in via_edge} == {"edge-0 (loc0)"}
    assert explained.exit_code == 0, explained.output
    out = explained.output
    assert "service site (mode pull)" in out and f"origin 1: {origin_url}" in out
    assert "name site.cdn.test" in out and "answer A:" in out
    assert "edge-0" in out and "memory  HTTP 200" in out and "tags pages, home" in out
    assert "edge-1" in out and "not stored" in out
    assert probed.exit_code == 0, probed.output
    assert "edge-0" in probed.output and "edge-1" in probed.output and "200" in probed.output
    assert control.status_code == 200 and anonymous.status_code == 401
    text = control.text
    assert 'owncdn_control_http_requests_total{method="GET",route="/v1/health/edges",status="200"}' in text
    assert 'owncdn_control_nodes{env="production",kind="edge",status="applied"} 2.0' in text
    assert 'owncdn_control_edge_healthy{edge="edge-0",env="production",location="loc0"} 1.0' in text
    assert "owncdn_control_event_streams_open 2.0" in text
    assert 'owncdn_control_origin_healthy{env="production",origin="' in text
    assert "owncdn_edge_loop_lag_seconds" in edge.text and "owncdn_edge_cpu_steal_ratio" in edge.text
    assert refused.status_code == 403  # a probe needs the control plane's token
