"""The edge health monitor: the store's rows, the checks against a real edge, the API
and the `health` channel. No sleeping: rounds are run one at a time on a fake clock."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest

from owncdn.control.api import ApiServer, create_app
from owncdn.control.health import HealthChannel, HealthMonitor, HealthSettings, check_url
from owncdn.control.store import CheckResult, Store, sqlite_url
from owncdn.core.config import parse_config
from owncdn.edge.server import EdgeServer
from owncdn.testing.clock import FakeClock

SITE = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: ["http://127.0.0.1:9"]
"""


def states(store, env=None) -> dict[str, tuple]:
    return {e.name: (e.healthy, e.successes, e.failures, e.error) for e in store.edge_health(env)}


# -- the store (SQLite and PostgreSQL) -----------------------------------------------------

def test_checks_go_through_hysteresis_in_the_store(store, clock):
    a = store.register_node("edge-a", "edge", "fra", "prod", "192.0.2.1:80")
    b = store.register_node("edge-b", "edge", "iad", "prod", "192.0.2.2:80")
    store.register_node("dns-1", "dns", "fra", "prod", "127.0.0.1:53")
    store.register_node("edge-c", "edge", "fra", "staging", "192.0.2.3:80")
    assert states(store, "prod") == {"edge-a": (True, 0, 0, ""), "edge-b": (True, 0, 0, "")}  # never checked
    assert store.edge_health("prod")[0].checked_at is None
    flips = []
    for ok in (False, False, False):
        clock.advance(2)
        flips.append(store.record_checks([CheckResult(a.id, ok, "connection refused"), CheckResult(b.id, True)],
                                         fall=3, rise=2))
    assert [[e.name for e in f] for f in flips] == [[], [], ["edge-a"]]
    assert states(store, "prod") == {"edge-a": (False, 0, 3, "connection refused"), "edge-b": (True, 3, 0, "")}
    down = store.edge_health("prod")[0]
    assert (down.checked_at, down.changed_at) == (clock.now, clock.now)
    clock.advance(2)
    assert store.record_checks([CheckResult(a.id, True)], fall=3, rise=2) == []
    clock.advance(2)
    (up,) = store.record_checks([CheckResult(a.id, True)], fall=3, rise=2)
    assert (up.name, up.healthy, up.successes, up.error) == ("edge-a", True, 2, "")


def test_a_result_inside_the_gap_is_dropped_and_rows_go_with_their_node(store, clock):
    a = store.register_node("edge-a", "edge", "fra", "prod", "192.0.2.1:80")
    store.record_checks([CheckResult(a.id, False, "x")], fall=3, rise=2, min_gap=1.0)
    clock.advance(0.5)  # another replica's result for the same round
    store.record_checks([CheckResult(a.id, False, "x")], fall=3, rise=2, min_gap=1.0)
    assert states(store)["edge-a"][2] == 1
    clock.advance(0.6)
    store.record_checks([CheckResult(a.id, False, "x")], fall=3, rise=2, min_gap=1.0)
    assert states(store)["edge-a"][2] == 2
    store.delete_node(a.id)
    assert store.edge_health() == []
    assert store.record_checks([CheckResult(a.id, False, "x")], fall=3, rise=2) == []  # deleted meanwhile


# -- the monitor against a real edge --------------------------------------------------------

@pytest.mark.parametrize(("address", "url"), [
    ("127.0.1.5:8080", "http://127.0.1.5:8080/.well-known/owncdn/health"),
    ("0.0.0.0:80", "http://127.0.0.1:80/.well-known/owncdn/health"),
    ("[::]:80", "http://[::1]:80/.well-known/owncdn/health"),
    ("[2001:db8::1]:443", "http://[2001:db8::1]:443/.well-known/owncdn/health"),
    ("edge.example.net:80", "http://edge.example.net:80/.well-known/owncdn/health"),
])
def test_check_url(address, url):
    assert check_url(address) == url


async def test_the_monitor_checks_edges_through_their_request_path(tmp_path):
    clock = FakeClock()
    store = Store(sqlite_url(tmp_path), clock=clock.time)
    store.migrate()
    edge = await EdgeServer.start(parse_config(SITE, "cdn.yaml", lambda kind, name: None), access_log="off")
    empty = await EdgeServer.start(parse_config("version: 1\n", "cdn.yaml", lambda kind, name: None), access_log="off")
    store.register_node("edge-a", "edge", "fra", "prod", f"127.0.0.1:{edge.port}")
    store.register_node("edge-empty", "edge", "fra", "prod", f"127.0.0.1:{empty.port}")
    changes = []
    monitor = HealthMonitor(store, HealthSettings(interval=1.0, timeout=2.0), on_change=lambda: changes.append(1))
    results = []
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            async def round_():
                clock.advance(1.0)
                await monitor.round(http)
                results.append(states(store))

            await round_()
            edge.edge.draining = True  # shutting down: the edge says 503 while it still serves
            for _ in range(3):
                await round_()
            edge.edge.draining = False
            await edge.close()  # gone: nothing listens any more
            await round_()
    finally:
        await empty.close()
        store.close()
    assert results[0]["edge-a"] == (True, 1, 0, "")
    assert results[0]["edge-empty"][1:] == (0, 1, "HTTP 503: no services: no config version applied yet")
    assert results[1]["edge-a"] == (True, 0, 1, "HTTP 503: draining")
    assert results[3]["edge-a"] == (False, 0, 3, "HTTP 503: draining")
    assert results[4]["edge-a"][:3] == (False, 0, 4) and "connection refused" in results[4]["edge-a"][3]
    assert changes == [1, 1]  # edge-empty went down in round 3, edge-a in round 4, each woke the streams once


async def test_the_health_path_answers_for_any_host_and_is_not_cached():
    edge = await EdgeServer.start(parse_config(SITE, "cdn.yaml", lambda kind, name: None), access_log="off")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge.port}") as http:
            ok = await http.get("/.well-known/owncdn/health", headers={"Host": "anything.example"})
            other = await http.get("/.well-known/owncdn/healthz", headers={"Host": "anything.example"})
    finally:
        await edge.close()
    assert ok.status_code == 200 and "healthy: 1 service(s)" in ok.text
    assert ok.headers["cache-control"] == "no-store" and "x-served-by" in ok.headers
    assert other.status_code == 421  # only the exact path; everything else is routed as usual


# -- the API and the channel ----------------------------------------------------------------

def test_api_lists_edges_with_their_health_for_a_read_token(tmp_path):
    clock = FakeClock()
    store = Store(sqlite_url(tmp_path), clock=clock.time)
    store.migrate()
    a = store.register_node("edge-a", "edge", "fra", "prod", "192.0.2.1:80")
    store.register_node("edge-b", "edge", "iad", "prod", "192.0.2.2:80")
    store.register_node("dns-1", "dns", "fra", "prod", "127.0.0.1:53")
    for _ in range(3):
        store.record_checks([CheckResult(a.id, False, "timeout after 1s")], fall=3, rise=2)
    _, read = store.create_token("r", {"read"})
    _, deploy = store.create_token("d", {"deploy"})
    try:
        with ApiServer(create_app(store)) as server, httpx.Client(base_url=server.url) as http:
            listed = http.get("/v1/health/edges", params={"env": "prod"}, headers={"Authorization": f"Bearer {read}"})
            anonymous = http.get("/v1/health/edges")
            wrong = http.get("/v1/health/edges", headers={"Authorization": f"Bearer {deploy}"})
    finally:
        store.close()
    assert listed.status_code == 200, listed.text
    rows = {e["name"]: e for e in listed.json()}
    assert set(rows) == {"edge-a", "edge-b"}
    assert (rows["edge-a"]["healthy"], rows["edge-a"]["failures"], rows["edge-a"]["last_error"]) == (
        False, 3, "timeout after 1s")
    assert rows["edge-a"]["location"] == "fra" and rows["edge-a"]["last_check"] is not None
    assert (rows["edge-b"]["healthy"], rows["edge-b"]["last_check"]) == (True, None)
    assert (anonymous.status_code, wrong.status_code) == (401, 403)


def test_the_health_channel_goes_to_dns_nodes_and_changes_only_with_health(tmp_path):
    store = Store(sqlite_url(tmp_path), clock=FakeClock().time)
    store.migrate()
    a = store.register_node("edge-a", "edge", "fra", "prod", "192.0.2.1:80")
    dns = store.register_node("dns-1", "dns", "fra", "prod", "127.0.0.1:53")
    ctx = SimpleNamespace(store=store)
    channel = HealthChannel()
    try:
        assert channel.read(ctx, a) == {}
        first = channel.read(ctx, dns)["edges"]
        store.record_checks([CheckResult(a.id, False, "x")], fall=3, rise=2)
        second = channel.read(ctx, dns)["edges"]
        for _ in range(2):
            store.record_checks([CheckResult(a.id, False, "x")], fall=3, rise=2)
        third = channel.read(ctx, dns)["edges"]
    finally:
        store.close()
    assert first[1] == {"edges": [{"name": "edge-a", "location": "fra", "address": "192.0.2.1:80", "healthy": True}]}
    assert second[0] == first[0]  # one failure changes counts, not what DNS nodes need: nothing is sent
    assert third[0] != first[0] and third[1]["edges"][0]["healthy"] is False


async def test_draining_says_503_while_visitors_are_still_served_until_interrupted():
    import asyncio

    from owncdn.edge.health import drain

    edge = await EdgeServer.start(parse_config(SITE, "cdn.yaml", lambda kind, name: None), access_log="off")
    interrupt = asyncio.Event()
    try:
        task = asyncio.create_task(drain(edge.edge, 600, interrupt))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge.port}") as http:
            while not edge.edge.draining:
                await asyncio.sleep(0.01)
            health = await http.get("/.well-known/owncdn/health")
            visitor = await http.get("/", headers={"Host": "blog.example.com"})
        interrupt.set()  # a second signal: stop draining now
        await asyncio.wait_for(task, 10)
    finally:
        await edge.close()
    assert health.status_code == 503 and "draining" in health.text
    assert visitor.status_code == 502 and "blog" not in visitor.text.splitlines()[0]  # served (origin is down)


async def test_a_failing_edge_is_rechecked_fast_until_it_flips_and_back(tmp_path):
    """Rule 9: between rounds only the edge whose check disagreed with its health is
    checked again, every fast_interval, until the hysteresis flips it."""
    clock = FakeClock()
    store = Store(sqlite_url(tmp_path), clock=clock.time)
    store.migrate()
    edge = await EdgeServer.start(parse_config(SITE, "cdn.yaml", lambda kind, name: None), access_log="off")
    other = await EdgeServer.start(parse_config(SITE, "cdn.yaml", lambda kind, name: None), access_log="off")
    a = store.register_node("edge-a", "edge", "fra", "prod", f"127.0.0.1:{edge.port}")
    store.register_node("edge-b", "edge", "fra", "prod", f"127.0.0.1:{other.port}")
    monitor = HealthMonitor(store, HealthSettings(interval=10.0, fast_interval=0.5, timeout=2.0, origins=False))
    seen = []
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            await monitor.round(http)
            assert monitor.unsettled == set()  # both answered, as their health says
            edge.edge.draining = True
            clock.advance(10.0)
            await monitor.round(http)
            assert monitor.unsettled == {a.id}
            while monitor.unsettled:
                clock.advance(0.5)
                await monitor.round(http, only=monitor.unsettled)
                seen.append(states(store))
            edge.edge.draining = False
            clock.advance(0.5)
            await monitor.round(http, only={a.id})
            assert monitor.unsettled == {a.id}  # a down edge answering: coming back
            clock.advance(0.5)
            await monitor.round(http, only=monitor.unsettled)
    finally:
        await edge.close()
        await other.close()
    assert [s["edge-a"][:3] for s in seen] == [(True, 0, 2), (False, 0, 3)]
    assert all(s["edge-b"] == (True, 2, 0, "") for s in seen)  # two rounds; not checked in between
    assert states(store)["edge-a"][:3] == (True, 2, 0) and monitor.unsettled == set()
    assert (monitor.rounds, monitor.rechecks) == (2, 4)


async def test_an_edge_whose_event_stream_ends_is_checked_at_once(tmp_path):
    """Rule 9 and api/events.py Rule 4: with rounds an hour apart, a stopped edge still
    leaves the answers: its closed stream starts the re-checks."""
    from owncdn.testing.fleet import Fleet

    fleet = Fleet(tmp_path, edges=2, health=HealthSettings(interval=3600, fast_interval=0.05, timeout=1.0,
                                                           origins=False))
    async with fleet:
        api = fleet.api
        await fleet.wait_applied(await fleet.apply(SITE))
        await fleet.stop_edge(0)
        for _ in range(300):
            health = {e["name"]: e["healthy"] for e in await asyncio.to_thread(api.edge_health)}
            if health.get("edge-0") is False:
                break
            await asyncio.sleep(0.05)
    assert health == {"edge-0": False, "edge-1": True}
