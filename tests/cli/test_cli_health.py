"""`owncdn status` and `owncdn route explain --control` show the monitor's edge health."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from owncdn.cli.main import app
from owncdn.control.api import ApiServer, create_app
from owncdn.control.store import CheckResult, Store, sqlite_url
from owncdn.testing.geodb import write_test_db

CONFIG = """
version: 1
dns: {zone: cdn.test, nameservers: [ns1.cdn.test], ttl: 20s}
locations:
  - {name: fra, lat: 50.11, lon: 8.68, addresses: [192.0.2.1]}
  - {name: iad, lat: 38.95, lon: -77.45}
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: ["https://origin.example.com"]
"""


@pytest.fixture
def control(tmp_path):
    """A control plane with edges fra-1 (down), fra-2 (down) and iad-1 (up)."""
    store = Store(sqlite_url(tmp_path / "control"))
    store.migrate()
    nodes = [store.register_node(name, "edge", loc, "production", address)
             for name, loc, address in [("fra-1", "fra", "10.0.0.1:80"), ("fra-2", "fra", "10.0.0.2:80"),
                                        ("iad-1", "iad", "10.0.1.1:80")]]
    store.register_node("dns-1", "dns", "fra", "production", "127.0.0.1:53")
    for _ in range(3):
        store.record_checks([CheckResult(nodes[0].id, False, "connection refused"),
                             CheckResult(nodes[1].id, False, "HTTP 503: draining"),
                             CheckResult(nodes[2].id, True)], fall=3, rise=2)
    _, token = store.create_token("cli", {"read"})
    with ApiServer(create_app(store)) as server:
        yield server.url, token
    store.close()


def test_status_has_a_health_column(control):
    url, token = control
    result = CliRunner().invoke(app, ["status", "--control", url, "--token", token], env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if len(line.split()) > 5}
    assert "DOWN: connection refused" in rows["fra-1"] and "DOWN: HTTP 503: draining" in rows["fra-2"]
    assert rows["iad-1"].rstrip().endswith("up") and rows["dns-1"].rstrip().endswith("-")
    assert "…" not in result.output  # cli/tables Rule 2: wider than the 60 columns, nothing cut


def test_route_explain_with_health_from_the_control_plane(control, tmp_path):
    url, token = control
    (tmp_path / "cdn.yaml").write_text(CONFIG)
    write_test_db(tmp_path / "geo.mmdb", {"10.1.0.0/16": (48.85, 2.35)})  # Paris
    args = ["route", "explain", "--config", str(tmp_path / "cdn.yaml"), "--geoip", str(tmp_path / "geo.mmdb"),
            "--client", "192.0.2.53", "--name", "blog.cdn.test", "--ecs", "10.1.2.0/24"]
    healthy = CliRunner().invoke(app, args)
    result = CliRunner().invoke(app, args + ["--control", url, "--token", token])
    unreachable = CliRunner().invoke(app, args + ["--control", "http://127.0.0.1:9", "--token", token])
    assert healthy.exit_code == 0 and "answer A: 192.0.2.1 from fra" in healthy.output
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "edge health from the control plane" in lines[1]
    assert lines[2].split()[1:2] == ["iad"] and "healthy" in lines[2] and "10.0.1.1" in lines[2]
    assert "edge iad-1" in lines[3] and lines[3].endswith("up")
    assert lines[4].split()[1:2] == ["fra"] and "DOWN" in lines[4]
    assert "answer A: 10.0.1.1 from iad (ttl 20)" in result.output
    assert "fallback chain: iad -> fra (DOWN)" in result.output
    assert unreachable.exit_code == 1 and "cannot reach the control plane" in unreachable.output


@pytest.mark.parametrize("health, cell", [
    (None, "-"),                                                                  # a DNS node
    ({"disk": None}, "-"),                                                        # not said yet
    ({"disk": {"path": "/srv", "free": 12_300_000_000, "total": 40_000_000_000}}, "12.3 GB (31%)"),
    ({"disk": {"path": "/srv", "free": 1_000_000_000, "total": 40_000_000_000}}, "1.0 GB (2%) LOW"),
    ({"disk": {"path": "/srv", "free": 0, "total": 0}}, "-"),
])
def test_status_shows_each_edge_s_free_disk(health, cell):
    from owncdn.cli.fleet_cmds import disk_cell

    assert disk_cell(health) == cell
