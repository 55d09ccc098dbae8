"""HTTP/1.1 over TLS through the cache, the scheme seen by origins and the log, and a
service's HTTPS policy: redirects from plain HTTP, HSTS only over HTTPS (RFC 6797)."""

import json

import pytest

from owncdn.testing.https import HttpsEdge
from owncdn.testing.origin import FakeOrigin, Reply

CACHEABLE = {"Cache-Control": "max-age=60", "Content-Type": "text/plain"}

TWO_SERVICES = """
version: 1
edge: {{id: edge-t, location: test, memory_cache: 64MiB}}
services:
  - name: site
    hostnames: [example.test, "*.example.test"]
    origins: ["{origin}"]
    https: {{redirect: true, hsts: {{max_age: 1d, include_subdomains: true}}}}
  - name: plain
    hostnames: [plain.test]
    origins: ["{origin}"]
"""


async def test_http1_over_tls_miss_then_hit_and_the_scheme_everywhere(tmp_path):
    origin = FakeOrigin()
    origin.route("/a", body=b"hello" * 4000, headers=CACHEABLE)
    log = tmp_path / "access.log"
    async with HttpsEdge(origin, access_log=str(log)) as t:
        client = t.httpx()
        first = await t.fetch("/a", client=client)
        second = await t.fetch("/a", client=client)
        big_hit = await t.fetch("/a", "img.example.test")  # another name, another connection
    assert (first.http_version, first.status_code, first.headers["x-cache"]) == ("HTTP/1.1", 200, "MISS")
    assert (second.status_code, second.headers["x-cache"], second.content) == (200, "HIT", b"hello" * 4000)
    assert big_hit.headers["x-cache"] == "MISS"  # the host is part of the cache key
    assert origin.hits("/a") == 2
    assert origin.requests[0].headers["x-forwarded-proto"] == "https"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["scheme"], e["protocol"], e["cache"]) for e in lines] == [
        ("https", "1.1", "MISS"), ("https", "1.1", "HIT"), ("https", "1.1", "MISS")]


async def test_plain_http_still_says_http():
    origin = FakeOrigin()
    origin.route("/a", body=b"x", headers=CACHEABLE)
    async with HttpsEdge(origin) as t:
        r = await t.get("/a")
    assert r.status == 200
    assert origin.requests[0].headers["x-forwarded-proto"] == "http"
    assert "strict-transport-security" not in r.headers


@pytest.mark.parametrize(("method", "status"), [("GET", 301), ("HEAD", 301), ("POST", 308), ("DELETE", 308)])
async def test_plain_http_is_redirected_to_https(method, status):
    origin = FakeOrigin()
    origin.route("/a", body=b"x", headers=CACHEABLE)
    async with HttpsEdge(origin, TWO_SERVICES) as t:
        r = await t.get("/a?q=1", headers={"Host": f"www.example.test:{t.port}"}, method=method)
    assert r.status == status
    assert r.headers["location"] == "https://www.example.test/a?q=1"
    # RFC 6797 §7.2: never Strict-Transport-Security over plain HTTP.
    assert "strict-transport-security" not in r.headers
    assert origin.requests == []


async def test_hsts_over_https_on_misses_hits_and_errors_only_for_that_service():
    origin = FakeOrigin()
    origin.route("/a", body=b"x", headers=CACHEABLE)
    async with HttpsEdge(origin, TWO_SERVICES, names=("example.test", "plain.test")) as t:
        miss = await t.fetch("/a")
        hit = await t.fetch("/a")
        missing = await t.fetch("/nothing")
        other = await t.fetch("/a", "plain.test")
        plain = await t.get("/a", headers={"Host": "plain.test"})
    expected = "max-age=86400; includeSubDomains"
    for r in (miss, hit, missing):
        assert r.headers["strict-transport-security"] == expected
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert "strict-transport-security" not in other.headers
    assert plain.status == 200  # no redirect configured for plain.test


async def test_an_origin_redirect_to_https_is_not_served_over_https():
    """The scheme is part of the cache key (RFC 9111 §2, core/http/cachekey.py Rule 1):
    an origin that redirects plain-HTTP visitors by X-Forwarded-Proto, with a cacheable
    301, must not send HTTPS visitors round in a loop."""
    def by_proto(req):
        if req.headers["x-forwarded-proto"] == "http":
            return Reply(301, headers={"Location": "https://example.test/a", **CACHEABLE})
        return Reply(200, body=b"secure", headers=CACHEABLE)

    origin = FakeOrigin()
    origin.route("/a", handler=by_proto)
    async with HttpsEdge(origin) as t:
        plain = await t.get("/a")
        plain_again = await t.get("/a")
        secure = await t.fetch("/a")
        secure_again = await t.fetch("/a")
    assert (plain.status, plain_again.status, plain_again.headers["x-cache"]) == (301, 301, "HIT")
    assert (secure.status_code, secure.content, secure.headers["x-cache"]) == (200, b"secure", "MISS")
    assert (secure_again.status_code, secure_again.headers["x-cache"]) == (200, "HIT")
    assert origin.hits("/a") == 2
