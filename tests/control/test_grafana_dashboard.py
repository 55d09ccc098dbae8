"""docs/grafana/owncdn.json uses only metric names (and labels) the roles really expose:
scraped here from an in-process fleet (control plane + edge) and a DNS server."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from owncdn.control.health import HealthSettings
from owncdn.core.config import parse_config
from owncdn.dns.cdnzone import build_zone
from owncdn.dns.metrics import DnsMetrics, location_addresses
from owncdn.dns.server import DnsServer
from owncdn.testing.fleet import Fleet
from owncdn.testing.origin import FakeOrigin

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "owncdn.json"
SITE = """\
version: 1
locations: [{{name: loc0, lat: 50.1, lon: 8.7, addresses: [192.0.2.10]}}]
services:
  - name: site
    hostnames: [www.example.com]
    origins: ["{origin}"]
"""
PROMQL_WORDS = {"by", "sum", "rate", "max", "increase", "histogram_quantile", "le"}


def exposed(text: str) -> dict[str, set[str]]:
    """Sample name -> label names seen, for every family (also those without samples)."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        for suffix in suffixes:
            out.setdefault(family.name + suffix, set())
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


async def scrape_everything(tmp_path) -> dict[str, set[str]]:
    origin = FakeOrigin()
    origin.route("/", body=b"ok", headers={"Cache-Control": "max-age=60"})
    await origin.start()
    fleet = Fleet(tmp_path, edges=1, health=HealthSettings(interval=0.05, timeout=2.0))
    fleet.admin = True
    metrics: dict[str, set[str]] = {}
    try:
        async with fleet:
            await fleet.wait_applied(await fleet.apply(SITE.format(origin=origin.url)))
            await fleet.get(0, "/", host="www.example.com")
            api = fleet.api
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while not all(o["last_check"] for o in await asyncio.to_thread(api.origin_health)) \
                    or not (await asyncio.to_thread(api.edge_health))[0]["admin"]:
                assert loop.time() < deadline
                await asyncio.sleep(0.05)
            admin = (await asyncio.to_thread(api.edge_health))[0]["admin"]
            async with httpx.AsyncClient() as http:
                for url, headers in ((f"{fleet.url}/metrics", {"Authorization": f"Bearer {fleet.admin_token}"}),
                                     (f"http://{admin}/metrics", {})):
                    for name, labels in exposed((await http.get(url, headers=headers)).text).items():
                        metrics.setdefault(name, set()).update(labels)
    finally:
        await origin.close()
    config = parse_config(SITE.format(origin="http://127.0.0.1:9"), "cdn.yaml", lambda kind, name: None)
    server = await DnsServer.start(build_zone(config), "127.0.0.1", 0)
    try:
        counters = DnsMetrics(server, lambda: location_addresses(config)).attach()
        import dns.message

        counters.server.answerer.answer(dns.message.make_query("site.cdn.test", "A").to_wire(), "127.0.0.1")
        metrics.update(exposed(counters.exposition().decode()))
    finally:
        await server.close()
    return metrics


async def test_the_dashboard_uses_only_exposed_metrics_and_labels(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert len(exprs) > 20
    metrics = await scrape_everything(tmp_path)
    used = {name for e in exprs for name in re.findall(r"owncdn_[a-z0-9_]+", e)}
    assert used - set(metrics) == set()
    for roles in ("owncdn_edge_", "owncdn_control_", "owncdn_dns_"):
        assert any(name.startswith(roles) for name in used)  # every role has panels
    for expr in exprs:
        for name, selector in re.findall(r"(owncdn_[a-z0-9_]+)\{([^}]*)\}", expr):
            labels = set(re.findall(r"([a-z_]+)\s*=~?", selector))
            assert not metrics[name] or labels <= metrics[name], (name, labels, metrics[name])
        for grouping, name in re.findall(r"by \(([^)]*)\) \(\w*\(?(owncdn_[a-z0-9_]+)", expr):
            labels = {label.strip() for label in grouping.split(",")} - PROMQL_WORDS - {"instance"}
            # labels are known from samples; a family with none yet (no purge run) is checked by name only
            assert not metrics[name] or labels <= metrics[name], (name, labels, metrics[name])
