"""The CDN zone from cdn.yaml: routed answers by the client's position, over UDP.

Rows in the gdnsd spirit: (client subnet, location health) -> expected addresses and
ECS scope, with a small GeoIP database placing networks on three continents.
"""

import asyncio
import socket

import dns.edns
import dns.message
import dns.rcode
import pytest

from owncdn.core.config import parse_config
from owncdn.dns.cdnzone import build_zone
from owncdn.dns.geo import GeoDatabase
from owncdn.dns.server import DnsServer
from owncdn.testing.geodb import write_test_db

CONFIG = """
version: 1
dns: {zone: cdn.test, nameservers: [ns1.cdn.test], ttl: 20s,
      records: [{name: "@", type: CAA, value: '0 issue "letsencrypt.org"'}]}
locations:
  - {name: fra, lat: 50.11, lon: 8.68, addresses: [192.0.2.1, 192.0.2.2, "2001:db8::1"]}
  - {name: iad, lat: 38.95, lon: -77.45, addresses: [198.51.100.1]}
  - {name: sin, lat: 1.35, lon: 103.82, addresses: [203.0.113.1]}
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: ["https://origin.example.com"]
"""

NETWORKS = {
    "10.1.0.0/16": (48.85, 2.35),      # Paris
    "10.2.0.0/16": (40.71, -74.0),     # New York
    "10.3.0.0/16": (35.68, 139.69),    # Tokyo
}


@pytest.fixture(scope="module")
def geo(tmp_path_factory):
    path = tmp_path_factory.mktemp("geo") / "test.mmdb"
    write_test_db(path, NETWORKS)
    db = GeoDatabase(str(path))
    yield db
    db.close()


async def ask(port: int, name: str, rdtype: str = "A", subnet: str | None = None) -> dns.message.Message:
    options = []
    if subnet:
        address, prefix = subnet.split("/")
        options.append(dns.edns.ECSOption(address, int(prefix)))
    query = dns.message.make_query(name, rdtype, use_edns=0, options=options)
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, query.to_wire())
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
    return dns.message.from_wire(data)


@pytest.mark.parametrize("subnet, down, expected, scope", [
    ("10.1.2.0/24", set(), ["192.0.2.1", "192.0.2.2"], 16),   # Paris -> fra, both edges
    ("10.2.2.0/24", set(), ["198.51.100.1"], 16),              # New York -> iad
    ("10.3.2.0/24", set(), ["203.0.113.1"], 16),               # Tokyo -> sin
    ("10.1.2.0/24", {"fra"}, ["198.51.100.1"], 16),            # fra down: next nearest to Paris
    ("10.1.2.0/24", {"fra", "iad", "sin"},
     ["192.0.2.1", "192.0.2.2", "198.51.100.1", "203.0.113.1"], 16),  # all down: all of them answer
])
async def test_routed_answers_follow_the_client_subnet(geo, subnet, down, expected, scope):
    config = parse_config(CONFIG, "cdn.yaml", lambda kind, name: None)
    zone = build_zone(config, geo, healthy={name: False for name in down})
    server = await DnsServer.start(zone, "127.0.0.1", 0)
    try:
        reply = await ask(server.port, "blog.cdn.test", subnet=subnet)
    finally:
        await server.close()
    answer = [rr.to_text() for rrset in reply.answer for rr in rrset]
    assert sorted(answer) == sorted(expected)
    assert reply.answer[0].ttl == 20
    ecs = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    assert ecs and ecs[0].scopelen == scope


async def test_aaaa_static_records_and_nxdomain(geo):
    config = parse_config(CONFIG, "cdn.yaml", lambda kind, name: None)
    server = await DnsServer.start(build_zone(config, geo), "127.0.0.1", 0)
    try:
        aaaa = await ask(server.port, "blog.cdn.test", "AAAA", subnet="10.3.2.0/24")
        caa = await ask(server.port, "cdn.test", "CAA")
        missing = await ask(server.port, "nope.cdn.test")
        outside = await ask(server.port, "example.org")
    finally:
        await server.close()
    # Only fra has IPv6: the AAAA answer comes from there even for Tokyo.
    assert [rr.to_text() for rrset in aaaa.answer for rr in rrset] == ["2001:db8::1"]
    assert caa.answer and "letsencrypt.org" in caa.answer[0].to_text()
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.authority
    assert outside.rcode() == dns.rcode.REFUSED


async def test_the_dns_command_answers_for_the_zone(tmp_path, geo):
    import os
    import subprocess
    import sys

    (tmp_path / "cdn.yaml").write_text(CONFIG)
    write_test_db(tmp_path / "geo.mmdb", NETWORKS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "owncdn.cli", "dns", "--config", str(tmp_path / "cdn.yaml"),
                             "--listen", f"127.0.0.1:{port}", "--geoip", str(tmp_path / "geo.mmdb")],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline), 30)
        assert "cdn.test" in line
        reply = await ask(port, "blog.cdn.test", subnet="10.2.9.0/24")
    finally:
        proc.terminate()
        proc.wait(10)
    assert [rr.to_text() for rrset in reply.answer for rr in rrset] == ["198.51.100.1"]


def test_route_explain_names_location_order_answer_and_scope(tmp_path):
    from typer.testing import CliRunner

    from owncdn.cli.main import app

    (tmp_path / "cdn.yaml").write_text(CONFIG)
    write_test_db(tmp_path / "geo.mmdb", NETWORKS)
    args = ["route", "explain", "--config", str(tmp_path / "cdn.yaml"), "--geoip", str(tmp_path / "geo.mmdb"),
            "--client", "192.0.2.53", "--name", "blog.cdn.test", "--ecs", "10.3.7.0/24"]
    result = CliRunner().invoke(app, args)
    down = CliRunner().invoke(app, args + ["--down", "sin"])
    unknown = CliRunner().invoke(app, args[:-4] + ["--name", "shop.cdn.test"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "at 35.68, 139.69" in lines[0] and "/16" in lines[0]
    assert [line.split()[1] for line in lines[2:5]] == ["sin", "fra", "iad"]
    assert "answer A: 203.0.113.1 from sin" in result.output and "ECS scope: /16" in result.output
    assert "answer A: 192.0.2.1, 192.0.2.2 from fra" in down.output and "DOWN" in down.output
    assert "not a service name" in unknown.output


MIRRORS = CONFIG.replace(
    "  - {name: iad, lat: 38.95, lon: -77.45, addresses: [198.51.100.1]}",
    "  - {name: iad, lat: 38.95, lon: -77.45, addresses: [198.51.100.1], hostname: iad.mirror.cdn.test}",
).replace(
    "  - {name: sin, lat: 1.35, lon: 103.82, addresses: [203.0.113.1]}",
    "  - {name: sin, lat: 1.35, lon: 103.82, addresses: [203.0.113.1], hostname: sin.example.org}",
)


# rows: (name, type, registered edges as (name, location, ip, healthy), expected rdata)
LOCATION_NAMES = [
    ("iad.mirror.cdn.test.", "A", [], ["198.51.100.1"]),
    ("iad.mirror.cdn.test.", "A", [("e1", "iad", "198.51.100.7:80", True)], ["198.51.100.1", "198.51.100.7"]),
    ("iad.mirror.cdn.test.", "A", [("e1", "iad", "198.51.100.7:80", False), ("e2", "iad", "198.51.100.8:80", True)],
     ["198.51.100.1", "198.51.100.8"]),
    ("iad.mirror.cdn.test.", "A", [("e1", "iad", "198.51.100.7:80", False)], ["198.51.100.1", "198.51.100.7"]),
    ("iad.mirror.cdn.test.", "AAAA", [], []),
    ("sin.example.org.", "A", [], None),  # outside the zone: REFUSED
]


@pytest.mark.parametrize("name,rdtype,edges,expected", LOCATION_NAMES)
def test_location_hostnames_in_the_zone(name, rdtype, edges, expected):
    from owncdn.core.routing import EdgeHealth
    from owncdn.dns.wire import answer

    config = parse_config(MIRRORS, "cdn.yaml", lambda kind, ref: None)
    health = [EdgeHealth(n, loc, ip, ok) for n, loc, ip, ok in edges]
    zone = build_zone(config, None, edges=health)
    reply = dns.message.from_wire(answer(zone, dns.message.make_query(name, rdtype).to_wire(), "127.0.0.1"))
    if expected is None:
        assert reply.rcode() == dns.rcode.REFUSED
        return
    assert reply.rcode() == dns.rcode.NOERROR
    assert sorted(r.to_text() for rrset in reply.answer for r in rrset) == sorted(expected)


SETS = CONFIG.replace(
    "    origins: [\"https://origin.example.com\"]\n",
    "    origins: [\"https://origin.example.com\"]\n"
    "  - name: eu\n    hostnames: [eu.example.com]\n    origins: [\"https://origin.example.com\"]\n"
    "    locations: [fra]\n"
    "  - name: far\n    hostnames: [far.example.com]\n    origins: [\"https://origin.example.com\"]\n"
    "    locations: [iad, sin]\n",
).replace("addresses: [203.0.113.1]}", "addresses: [203.0.113.1], weight: 3}")

# rows: (name, ECS subnet, locations down, expected A answer)
SET_ROWS = [
    ("blog.cdn.test.", "10.2.2.0/24", [], ["198.51.100.1"]),     # New York -> iad, every location serves blog
    ("eu.cdn.test.", "10.2.2.0/24", [], ["192.0.2.1", "192.0.2.2"]),   # eu: only fra, even from New York
    ("eu.cdn.test.", "10.1.2.0/24", ["fra"], ["192.0.2.1", "192.0.2.2"]),  # its only location down: still fra
    ("far.cdn.test.", "10.2.2.0/24", [], ["198.51.100.1"]),      # New York -> iad
    ("far.cdn.test.", "10.2.2.0/24", ["iad"], ["203.0.113.1"]),  # iad down -> sin (fra is not far's)
    ("far.cdn.test.", "10.1.2.0/24", [], ["203.0.113.1"]),       # Paris: not fra; sin 10,700 km / 3 < iad 6,200 km
    # weights: sin (weight 3) draws Tokyo but not Paris; iad keeps New York
    ("blog.cdn.test.", "10.3.2.0/24", [], ["203.0.113.1"]),
    ("blog.cdn.test.", "10.1.2.0/24", [], ["192.0.2.1", "192.0.2.2"]),
]


@pytest.mark.parametrize("name,subnet,down,expected", SET_ROWS)
def test_service_location_sets_and_weights(geo, name, subnet, down, expected):
    from owncdn.dns.wire import answer

    config = parse_config(SETS, "cdn.yaml", lambda kind, ref: None)
    zone = build_zone(config, geo, healthy={n: False for n in down})
    address, prefix = subnet.split("/")
    query = dns.message.make_query(name, "A", use_edns=0, options=[dns.edns.ECSOption(address, int(prefix))])
    reply = dns.message.from_wire(answer(zone, query.to_wire(), "127.0.0.1"))
    assert sorted(r.to_text() for rrset in reply.answer for r in rrset) == sorted(expected)


def test_service_locations_must_exist():
    from owncdn.core.config import ConfigError

    bad = SETS.replace("locations: [iad, sin]", "locations: [iad, nowhere, iad]")
    with pytest.raises(ConfigError) as caught:
        parse_config(bad, "cdn.yaml", lambda kind, ref: None)
    text = " ".join(str(p) for p in caught.value.problems)
    assert "no location is called 'nowhere'" in text and "location 'iad' is listed twice" in text
