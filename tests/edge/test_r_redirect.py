"""Redirect services (download mirrors) through a real edge on loopback, with a test
GeoIP database: the 302 to the nearest location's hostname, X-Forwarded-For only from
trusted proxies, the location hostnames served as a cached pull, and the mirror list."""

import orjson
import pytest

from owncdn.testing.cluster import EdgeUnderTest
from owncdn.testing.geodb import write_test_db
from owncdn.testing.origin import FakeOrigin

PARIS, TOKYO, NEW_YORK = (48.86, 2.35), (35.68, 139.69), (40.71, -74.01)

CONFIG = """
version: 1
edge: {{{{id: edge-t, location: fra, geoip: "{geoip}", trusted_proxies: [{trusted}]}}}}
locations:
  - {{{{name: fra, city: Frankfurt, country: DE, lat: 50.11, lon: 8.68, hostname: fra.mirror.test}}}}
  - {{{{name: iad, city: Ashburn, country: US, lat: 38.95, lon: -77.45, hostname: iad.mirror.test}}}}
  - {{{{name: sin, city: Singapore, country: SG, lat: 1.35, lon: 103.82, hostname: sin.mirror.test}}}}
services:
  - name: mirror
    mode: redirect
    hostnames: [mirror.test]
    origins: ["{{origin}}"]
    redirect: {{{{max_age: 30s}}}}
"""


@pytest.fixture
def geoip(tmp_path):
    path = tmp_path / "geo.mmdb"
    # the test client connects from 127.0.0.1: a visitor in Paris
    write_test_db(path, {"127.0.0.0/8": PARIS, "203.0.113.0/24": TOKYO, "192.0.2.0/24": NEW_YORK})
    return str(path)


def mirror(geoip, trusted=""):
    origin = FakeOrigin()
    origin.route("/pub/x.iso", body=b"ISO" * 100, headers={"Cache-Control": "max-age=3600"})
    return EdgeUnderTest(origin, CONFIG.format(geoip=geoip, trusted=trusted))


ROWS = [
    # (trusted proxies, X-Forwarded-For, expected Location)
    ("", None, "http://fra.mirror.test/pub/x.iso?v=2"),                       # the peer: Paris
    ("", "203.0.113.9", "http://fra.mirror.test/pub/x.iso?v=2"),              # untrusted XFF ignored
    ("10.0.0.0/8", "203.0.113.9", "http://fra.mirror.test/pub/x.iso?v=2"),    # peer not in the list
    ("127.0.0.0/8", "203.0.113.9", "http://sin.mirror.test/pub/x.iso?v=2"),   # trusted: Tokyo
    ("127.0.0.0/8", "192.0.2.8, 127.0.0.5", "http://iad.mirror.test/pub/x.iso?v=2"),  # trusted hops skipped
    ("127.0.0.0/8", "198.18.0.1", "http://fra.mirror.test/pub/x.iso?v=2"),    # unknown: first location
]


@pytest.mark.parametrize("trusted, xff, expected", ROWS)
async def test_redirect_to_the_nearest_location(geoip, trusted, xff, expected):
    headers = {"Host": "mirror.test"} | ({"X-Forwarded-For": xff} if xff else {})
    async with mirror(geoip, trusted) as t:
        r = await t.get("/pub/x.iso?v=2", headers=headers)
        assert t.origin.requests == []  # a redirect never goes to the origin
    assert r.status == 302
    assert r.headers["location"] == expected
    assert r.headers["cache-control"] == "private, max-age=30"
    assert r.headers["x-cache"] == "REDIRECT" and r.headers["x-served-by"] == "edge-t (fra)"
    assert ("vary" in r.headers) == (trusted == "127.0.0.0/8")


async def test_head_and_a_port_in_host(geoip):
    async with mirror(geoip) as t:
        r = await t.get("/pub/x.iso", method="HEAD", headers={"Host": "mirror.test:8080"})
    assert (r.status, r.body) == (302, b"")
    assert r.headers["location"] == "http://fra.mirror.test:8080/pub/x.iso"


async def test_a_location_hostname_is_a_cached_pull(geoip):
    async with mirror(geoip) as t:
        first = await t.get("/pub/x.iso", headers={"Host": "fra.mirror.test"})
        again = await t.get("/pub/x.iso", headers={"Host": "fra.mirror.test"})
        other = await t.get("/pub/x.iso", headers={"Host": "sin.mirror.test"})  # any edge serves any
        origin_host = f"127.0.0.1:{t.origin.port}"
    assert (first.status, first.cache, first.body) == (200, "MISS", b"ISO" * 100)
    assert (again.status, again.cache) == (200, "HIT")
    assert other.status == 200
    assert [r.headers["host"] for r in t.origin.requests] == [origin_host] * 2


async def test_other_methods_get_405(geoip):
    async with mirror(geoip) as t:
        r = await t.get("/pub/x.iso", method="POST", body=b"x", headers={"Host": "mirror.test"})
        assert t.origin.requests == []
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"


async def test_mirror_list_json_marks_the_nearest(geoip):
    async with mirror(geoip, "127.0.0.0/8") as t:
        r = await t.get("/.mirrors", headers={"Host": "mirror.test", "Accept": "application/json",
                                              "X-Forwarded-For": "192.0.2.77"})
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["vary"] == "Accept, X-Forwarded-For" and r.headers["cache-control"].startswith("private")
    doc = orjson.loads(r.body)
    assert doc["visitor"]["address"] == "192.0.2.77" and doc["nearest"] == "iad"
    assert [(m["name"], m["city"], m["country"], m["hostname"], m["nearest"]) for m in doc["mirrors"]] == [
        ("fra", "Frankfurt", "DE", "fra.mirror.test", False),
        ("iad", "Ashburn", "US", "iad.mirror.test", True),
        ("sin", "Singapore", "SG", "sin.mirror.test", False),
    ]


async def test_mirror_list_html(geoip):
    async with mirror(geoip) as t:
        r = await t.get("/.mirrors", headers={"Host": "mirror.test", "Accept": "text/html"})
        on_location = await t.get("/.mirrors", headers={"Host": "fra.mirror.test"})
    assert r.status == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.body.decode()
    assert "fra <strong>(nearest to you)</strong>" in page
    assert all(host in page for host in ("fra.mirror.test", "iad.mirror.test", "sin.mirror.test"))
    assert on_location.cache == "MISS"  # a location hostname passes every path to the origin


async def test_a_new_config_keeps_redirecting(geoip):
    async with mirror(geoip) as t:
        from owncdn.core.config import parse_config

        text = CONFIG.format(geoip=geoip, trusted="").format(origin=t.origin.url)
        changed = text.replace("redirect: {max_age: 30s}", "redirect: {max_age: 5s, fallback: iad, status: 307}")
        geo = t.edge.redirects.geo
        t.edge.apply_config(parse_config(changed, "cdn.yaml", lambda kind, name: None))
        assert t.edge.redirects.geo is geo  # the same file is not opened again
        r = await t.get("/a", headers={"Host": "mirror.test"})
    assert (r.status, r.headers["location"], r.headers["cache-control"]) == (
        307, "http://fra.mirror.test/a", "private, max-age=5")


async def test_a_geoip_file_that_cannot_be_read_rejects_the_config(geoip, tmp_path):
    from owncdn.core.config import parse_config

    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    async with mirror(geoip) as t:
        text = CONFIG.format(geoip=geoip, trusted="").format(origin=t.origin.url)
        for path, error in ((bad, ValueError), (tmp_path / "missing.mmdb", FileNotFoundError)):
            with pytest.raises(error, match=str(path.name)):
                t.edge.apply_config(parse_config(text.replace(geoip, str(path)), "cdn.yaml", lambda k, n: None))
        r = await t.get("/a", headers={"Host": "mirror.test"})  # the old config still runs
    assert r.headers["location"] == "http://fra.mirror.test/a"
