"""Alerts: an origin going down raises one alert and one recovery, delivered to a webhook;
the rules that decide them, as tables."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from owncdn.control.acme.notify import Webhook
from owncdn.control.alerts import Alerts, payload
from owncdn.control.health import HealthSettings
from owncdn.core.alerts import Alert, DiskWatch, ErrorRateWatch, counter_delta, health_alert, release_alert
from owncdn.testing.fleet import Fleet
from owncdn.testing.origin import FakeOrigin

SITE = """\
version: 1
services:
  - name: site
    hostnames: [www.example.com]
    origins: ["{origin}"]
    health_check: {{path: /health, method: GET}}
"""


async def wait_for(predicate, timeout: float = 15.0) -> None:
    """Until `predicate` (sync; run in a thread, since it may call the API) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


def hooks_seen(receiver: FakeOrigin) -> list[dict]:
    """The JSON alerts delivered, but for those of a disk (a machine short of space raises them anywhere)."""
    return [a for a in (json.loads(r.body) for r in receiver.requests if r.path.startswith("/hook"))
            if "_disk_" not in a["alert"]]


async def test_an_origin_going_down_raises_one_alert_and_one_recovery(tmp_path):
    receiver = FakeOrigin()
    receiver.route("/hook", body=b"ok")
    receiver.route("/slack", body=b"ok")
    await receiver.start()
    origin = FakeOrigin()
    origin.route("/health", body=b"fine")
    await origin.start()
    port = origin.port
    hooks = (Webhook(f"{receiver.url}/hook"), Webhook(f"{receiver.url}/slack", "slack"))
    fleet = Fleet(tmp_path, edges=0, health=HealthSettings(interval=0.05, timeout=0.5, fall=2, rise=2,
                                                           alert_webhooks=hooks))
    try:
        async with fleet:
            await fleet.apply(SITE.format(origin=origin.url))
            api = fleet.api
            await wait_for(lambda: any(h["healthy"] and h["last_check"] for h in api.origin_health()))
            await origin.close()  # the origin dies
            await wait_for(lambda: len(hooks_seen(receiver)) >= 1)
            monitor_rounds = lambda: api.origin_health()[0]["failures"]  # noqa: E731
            await wait_for(lambda: monitor_rounds() >= 6)  # several more failed rounds: no more alerts
            await origin.start(port)  # it comes back on the same address
            await wait_for(lambda: len(hooks_seen(receiver)) >= 2)
            await wait_for(lambda: api.origin_health()[0]["successes"] >= 6)
            health = await asyncio.to_thread(api.origin_health)
            alerts = await asyncio.to_thread(api.alerts)
    finally:
        await origin.close()
        await receiver.close()
    seen = hooks_seen(receiver)
    assert [(a["alert"], a["severity"], a["env"]) for a in seen] == [
        ("origin_down", "critical", "production"), ("origin_up", "resolved", "production")]
    assert seen[0]["subject"] == f"http://127.0.0.1:{port} of service site"
    assert "cannot connect" in seen[0]["message"] and seen[0]["source"] == "owncdn"
    slack = [json.loads(r.body) for r in receiver.requests if r.path == "/slack"]
    slack = [m for m in slack if "disk" not in m["text"]]
    assert len(slack) == 2 and set(slack[0]) == {"text"} and "DOWN" in slack[0]["text"]
    assert [a["alert"] for a in alerts if "_disk_" not in a["alert"]] == ["origin_down", "origin_up"]
    assert health[0]["healthy"] and health[0]["url"] == f"http://127.0.0.1:{port}/health"
    assert health[0]["status"] == 200 and health[0]["service"] == "site"
    assert [r.method for r in origin.requests][:1] == ["GET"]
    assert origin.requests[0].headers["host"] == "www.example.com"


# -- the rules ----------------------------------------------------------------------------

@pytest.mark.parametrize("before, after, delta", [(None, 10, 0), (10, 15, 5), (15, 15, 0), (15, 3, 3)])
def test_counter_delta(before, after, delta):
    assert counter_delta(before, after) == delta


# rounds of (responses, errors) -> alert kinds raised; threshold 10%, min 20 responses, 3 rounds window
ROWS = [
    ([(100, 0), (100, 1), (100, 2)], [None, None, None]),
    ([(100, 20), (100, 20), (100, 20)], ["error_rate_high", None, None]),   # once, not every round
    ([(100, 20), (100, 0), (100, 0), (100, 0)], ["error_rate_high", None, None, "error_rate_normal"]),
    ([(10, 10), (5, 5)], [None, None]),                                       # too few responses to tell
    ([(100, 12), (100, 8), (100, 7)], ["error_rate_high", None, None]),     # 7-9%: above half: still high
    ([(100, 12), (0, 0), (0, 0), (0, 0)], ["error_rate_high", None, None, "error_rate_normal"]),  # traffic gone
]


@pytest.mark.parametrize("rounds, kinds", ROWS)
def test_error_rate_alerts_once_per_transition(rounds, kinds):
    watch = ErrorRateWatch("prod", threshold=0.10, window=3.0, min_requests=20)
    seen = []
    for now, (responses, errors) in enumerate(rounds):
        alert = watch.observe(float(now), responses, errors)
        seen.append(alert.kind if alert else None)
    assert seen == kinds


def test_health_alerts_and_payloads():
    down = health_alert("edge", "prod", "edge-1", False, "timeout after 1s")
    up = health_alert("edge", "prod", "edge-1", True)
    assert (down.kind, down.severity, up.kind, up.severity) == ("edge_down", "critical", "edge_up", "resolved")
    assert Alert("certificate", "-", "c1", "x").severity == "warning"
    body = payload(Webhook("https://hooks.example/x"), down, 0.0)
    assert body["alert"] == "edge_down" and body["time"].startswith("1970-01-01T00:00:00")
    assert payload(Webhook("https://hooks.example/x", "slack"), up, 0.0) == {
        "text": ":large_green_circle: owncdn: edge edge-1 (prod) is back up"}


@pytest.mark.parametrize("status, reason, kind, severity, message", [
    ("failed", "blob 1f2e did not match its name after 3 fetches", "release_failed", "critical",
     "edge fra-1 (prod) could not switch to release 7 of docs: blob 1f2e did not match its name after 3 fetches; "
     "it serves the release before"),
    ("retrying", "no space left on this edge's disk (/srv/push: No space left on device); 3 blobs not fetched",
     "release_retrying", "warning",
     "edge fra-1 (prod) does not serve release 7 of docs yet: no space left on this edge's disk (/srv/push: No space "
     "left on device); 3 blobs not fetched; it keeps trying"),
    ("failed", "", "release_failed", "critical",
     "edge fra-1 (prod) could not switch to release 7 of docs: no reason given; it serves the release before"),
    ("serving", "", None, None, None),
])
def test_release_alerts(status, reason, kind, severity, message):
    alert = release_alert("prod", "docs", 7, "fra-1", status, reason)
    if kind is None:
        assert alert is None
    else:
        assert (alert.kind, alert.severity, alert.subject, alert.message) == (kind, severity, "fra-1", message)


@pytest.mark.parametrize("reports, kinds", [
    ([(500, 1000), (100, 1000)], []),                                        # plenty free
    ([(49, 1000)], ["edge_disk_low"]),                                       # below 5%
    ([(50, 1000)], []),                                                      # 5% exactly is not low
    ([(40, 1000), (30, 1000), (60, 1000), (99, 1000)], ["edge_disk_low"]),   # one alert while low
    ([(40, 1000), (100, 1000)], ["edge_disk_low", "edge_disk_normal"]),      # normal again only at 10%
    ([(40, 1000), (100, 1000), (10, 1000)], ["edge_disk_low", "edge_disk_normal", "edge_disk_low"]),
    ([(0, 0), (-1, 1000)], []),                                              # nothing to tell by
])
def test_disk_alerts_once_per_transition(reports, kinds):
    watch = DiskWatch("prod", "fra-1")
    seen = [a.kind for a in (watch.observe(free, total, "/srv/owncdn") for free, total in reports) if a is not None]
    assert seen == kinds


def test_disk_alert_messages():
    watch = DiskWatch("prod", "fra-1")
    low = watch.observe(1_200_000_000, 34_000_000_000, "/srv/owncdn")
    assert (low.severity, low.subject) == ("warning", "fra-1")
    assert low.message == ("edge fra-1 (prod): its disk at /srv/owncdn has 3.5% free (1.2 GB of 34.0 GB); "
                           "pushed releases stop fitting once it is full")
    back = watch.observe(10_000_000_000, 34_000_000_000, "/srv/owncdn")
    assert (back.severity, back.message) == ("resolved", "edge fra-1 (prod): its disk at /srv/owncdn has 29% free again")


async def test_an_edge_s_disk_running_low_raises_one_alert(tmp_path, monkeypatch):
    import os
    from types import SimpleNamespace

    from owncdn.edge import diskspace

    free = {"blocks": 900}

    def statvfs(path):   # a 4 MB disk under the edge's state directory, 4 KiB blocks
        return SimpleNamespace(f_bavail=free["blocks"], f_frsize=4096, f_blocks=1000)

    monkeypatch.setattr(diskspace.os, "statvfs", statvfs)
    fleet = Fleet(tmp_path, edges=1, health=HealthSettings(interval=0.05, timeout=2.0, origins=False))
    async with fleet:
        await fleet.wait_applied(await fleet.apply(SITE.format(origin="http://127.0.0.1:9")))
        api = fleet.api
        await wait_for(lambda: any(e["disk"] and e["disk"]["free"] == 900 * 4096 for e in api.edge_health()))
        [edge] = await asyncio.to_thread(api.edge_health)
        assert edge["disk"]["total"] == 1000 * 4096 and os.path.isabs(edge["disk"]["path"])
        free["blocks"] = 20
        await wait_for(lambda: any(a["alert"] == "edge_disk_low" for a in api.alerts()))
        for _ in range(3):
            await asyncio.sleep(0.1)
        free["blocks"] = 500
        await wait_for(lambda: any(a["alert"] == "edge_disk_normal" for a in api.alerts()))
        alerts = await asyncio.to_thread(api.alerts)
    disk = {a["alert"]: a for a in alerts if a["alert"].startswith("edge_disk")}
    assert sorted(a["alert"] for a in alerts if a["alert"].startswith("edge_disk")) == ["edge_disk_low", "edge_disk_normal"]
    assert "has 2.0% free (81.9 KB of 4.1 MB)" in disk["edge_disk_low"]["message"]
    assert disk["edge_disk_low"]["severity"] == "warning" and disk["edge_disk_normal"]["severity"] == "resolved"


async def test_certificate_trouble_is_one_alert():
    from types import SimpleNamespace

    from owncdn.control.alerts import certificate_trouble

    alerts = Alerts()
    app = SimpleNamespace(state=SimpleNamespace(alerts=alerts))
    certificate_trouble(app, "www", ["www.example.com"], "renewal failed: rate limited")
    ((_, alert),) = alerts.recent
    assert (alert.kind, alert.subject) == ("certificate", "www") and "rate limited" in alert.message


async def test_a_high_error_rate_on_the_edges_raises_one_alert(tmp_path):
    origin = FakeOrigin()
    origin.route("/ok", body=b"ok")
    origin.route("/broken", status=500, body=b"no")
    await origin.start()
    fleet = Fleet(tmp_path, edges=1, health=HealthSettings(interval=0.05, timeout=2.0, origins=False,
                                                           alert_error_rate=0.5))
    try:
        async with fleet:
            await fleet.wait_applied(await fleet.apply(SITE.format(origin=origin.url)))
            api = fleet.api
            # the monitor's first answer from the edge is the counters' baseline (growth from
            # then on counts): traffic sent before it would never count
            await wait_for(lambda: any(e["healthy"] and e["last_check"] for e in api.edge_health()))
            for path in ["/ok"] * 5 + ["/broken"] * 25:  # 25 of 30 responses are 5xx
                await fleet.get(0, path, host="www.example.com")
            await wait_for(lambda: any(a["alert"] == "error_rate_high" for a in api.alerts()))
            for _ in range(3):  # more rounds, no more traffic: still one alert
                await asyncio.sleep(0.1)
            alerts = await asyncio.to_thread(api.alerts)
    finally:
        await origin.close()
    high = [a for a in alerts if a["alert"] == "error_rate_high"]
    assert len(high) == 1 and high[0]["env"] == "production" and "error rate in production" in high[0]["message"]


async def test_the_control_plane_s_own_blob_disk_running_low_raises_one_alert(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from owncdn.control import health as health_module
    from owncdn.control.health import HealthMonitor
    from owncdn.control.store import Store, sqlite_url

    free = {"blocks": 30}
    monkeypatch.setattr(health_module.os, "statvfs",
                        lambda path: SimpleNamespace(f_bavail=free["blocks"], f_frsize=4096, f_blocks=1000))
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    alerts = Alerts()
    monitor = HealthMonitor(store, HealthSettings(origins=False), alerts=alerts, blob_root=tmp_path / "blobs")
    async with httpx.AsyncClient() as http:
        for blocks in (30, 20, 150, 150):
            free["blocks"] = blocks
            await monitor.round(http)
    store.close()
    kinds = [(a.kind, a.severity, a.subject) for _, a in alerts.recent]
    assert kinds == [("control_disk_low", "warning", "control plane"), ("control_disk_normal", "resolved", "control plane")]
    assert alerts.recent[0][1].message.startswith(f"the control plane: the disk of its blobs at {tmp_path / 'blobs'} has 3.0% free")
