"""Cache behaviour at the edge, end to end: variants, ranges, conditionals,
revalidation, invalidation, what is not shared, per-service policy."""

import asyncio

import pytest

from owncdn.testing.cluster import EdgeUnderTest
from owncdn.testing.origin import FakeOrigin, Reply

CACHEABLE = {"Cache-Control": "max-age=60", "ETag": '"v1"', "Last-Modified": "Tue, 14 Nov 2023 22:00:00 GMT"}

SERVICE = """
version: 1
edge: {{id: edge-t, location: test}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
    cache:
%s
"""


def with_cache(yaml_lines: str) -> str:
    lines = yaml_lines.replace("{", "{{").replace("}", "}}").strip().splitlines()
    return SERVICE % "\n".join("      " + line for line in lines)


async def test_vary_keeps_one_variant_per_request_value():
    origin = FakeOrigin()
    origin.route("/v", handler=lambda req: Reply(
        200, (req.headers.get("accept-encoding") or "identity").encode(),
        {"Cache-Control": "max-age=60", "Vary": "Accept-Encoding"}))
    async with EdgeUnderTest(origin) as t:
        gz1 = await t.get("/v", headers={"Accept-Encoding": "gzip"})
        plain1 = await t.get("/v")
        gz2 = await t.get("/v", headers={"Accept-Encoding": "gzip"})
        plain2 = await t.get("/v")
    assert (gz1.cache, plain1.cache, gz2.cache, plain2.cache) == ("MISS", "MISS", "HIT", "HIT")
    assert (gz2.body, plain2.body) == (b"gzip", b"identity")


async def test_vary_star_is_never_stored():
    origin = FakeOrigin()
    origin.route("/v", body=b"x", headers={"Cache-Control": "max-age=60", "Vary": "*"})
    async with EdgeUnderTest(origin) as t:
        await t.get("/v")
        r = await t.get("/v")
    assert r.cache != "HIT" and origin.hits("/v") == 2


@pytest.mark.parametrize("range_value, status, content_range, body", [
    ("bytes=0-4", 206, "bytes 0-4/26", b"abcde"),         # RFC 9110 §14.1.2 first bytes
    ("bytes=-3", 206, "bytes 23-25/26", b"xyz"),           # suffix range
    ("bytes=20-", 206, "bytes 20-25/26", b"uvwxyz"),       # open end
    ("bytes=20-99", 206, "bytes 20-25/26", b"uvwxyz"),     # last-pos clamped
    ("bytes=30-40", 416, "bytes */26", None),              # §15.5.17 unsatisfiable
    ("items=0-4", 200, None, b"abcdefghijklmnopqrstuvwxyz"),  # unknown unit: ignored
    ("bytes=5-1", 200, None, b"abcdefghijklmnopqrstuvwxyz"),  # invalid: ignored
])
async def test_ranges_served_from_the_stored_object(range_value, status, content_range, body):
    origin = FakeOrigin()
    origin.route("/r", body=b"abcdefghijklmnopqrstuvwxyz", headers=CACHEABLE)
    async with EdgeUnderTest(origin) as t:
        await t.get("/r")
        r = await t.get("/r", headers={"Range": range_value})
    assert r.status == status and r.cache == "HIT"
    assert r.headers.get("content-range") == content_range
    if body is not None:
        assert r.body == body and r.headers["content-length"] == str(len(body))
    assert origin.hits("/r") == 1


async def test_several_ranges_make_a_multipart_body():
    origin = FakeOrigin()
    origin.route("/r", body=b"abcdefghijklmnopqrstuvwxyz", headers=dict(CACHEABLE, **{"Content-Type": "text/plain"}))
    async with EdgeUnderTest(origin) as t:
        await t.get("/r")
        r = await t.get("/r", headers={"Range": "bytes=0-2,-2"})
    assert r.status == 206
    ctype = r.headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("boundary=")[1]
    assert r.body == (
        f"--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-2/26\r\n\r\nabc"
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 24-25/26\r\n\r\nyz"
        f"\r\n--{boundary}--\r\n").encode()
    assert r.headers["content-length"] == str(len(r.body))


async def test_range_on_a_miss_is_sliced_from_the_fill():
    origin = FakeOrigin()
    origin.route("/r", body=bytes(range(256)) * 1024, headers=CACHEABLE)
    async with EdgeUnderTest(origin) as t:
        r = await t.get("/r", headers={"Range": "bytes=1000-1999"})
        whole = await t.get("/r")
    assert (r.status, r.cache, r.headers["content-range"]) == (206, "MISS", "bytes 1000-1999/262144")
    assert r.body == (bytes(range(256)) * 1024)[1000:2000]
    assert whole.cache == "HIT" and len(whole.body) == 262144
    assert "range" not in origin.requests[0].headers


@pytest.mark.parametrize("if_range, status", [
    ('"v1"', 206),                              # RFC 9110 §13.1.5 matching strong validator
    ('"v2"', 200),                              # changed: send the whole representation
    ("Tue, 14 Nov 2023 22:00:00 GMT", 206),     # date equal to Last-Modified
    ("Wed, 15 Nov 2023 22:00:00 GMT", 200),
])
async def test_if_range(if_range, status):
    origin = FakeOrigin()
    origin.route("/r", body=b"0123456789", headers=CACHEABLE)
    async with EdgeUnderTest(origin) as t:
        await t.get("/r")
        r = await t.get("/r", headers={"Range": "bytes=0-1", "If-Range": if_range})
    assert r.status == status


@pytest.mark.parametrize("headers, status", [
    ({"If-None-Match": '"v1"'}, 304),
    ({"If-None-Match": 'W/"v1"'}, 304),            # weak comparison for If-None-Match
    ({"If-None-Match": '"other", "v1"'}, 304),
    ({"If-None-Match": '"other"'}, 200),
    ({"If-None-Match": "*"}, 304),
    ({"If-Modified-Since": "Tue, 14 Nov 2023 22:00:00 GMT"}, 304),
    ({"If-Modified-Since": "Mon, 13 Nov 2023 22:00:00 GMT"}, 200),
    ({"If-None-Match": '"other"', "If-Modified-Since": "Tue, 14 Nov 2023 22:00:00 GMT"}, 200),  # INM wins
    ({"If-Match": '"nope"'}, 412),
    ({"If-Unmodified-Since": "Mon, 13 Nov 2023 22:00:00 GMT"}, 412),
])
async def test_client_conditionals_on_a_hit(headers, status):
    origin = FakeOrigin()
    origin.route("/c", body=b"body", headers=CACHEABLE)
    async with EdgeUnderTest(origin) as t:
        await t.get("/c")
        r = await t.get("/c", headers=headers)
    assert r.status == status
    if status == 304:
        assert r.body == b"" and r.headers["etag"] == '"v1"' and r.cache == "HIT"
        assert "content-length" not in r.headers or r.headers["content-length"] == "4"


async def test_conditional_on_a_miss_gets_304_and_fills_the_cache():
    origin = FakeOrigin()
    origin.route("/c", body=b"body", headers=CACHEABLE, conditional=False)
    async with EdgeUnderTest(origin) as t:
        r = await t.get("/c", headers={"If-None-Match": '"v1"'})
        full = await t.get("/c")
    assert (r.status, r.cache) == (304, "MISS")
    assert (full.status, full.cache, full.body) == (200, "HIT", b"body")
    assert "if-none-match" not in origin.requests[0].headers


async def test_expired_object_is_revalidated_with_its_validators():
    origin = FakeOrigin()
    origin.route("/c", responses=[
        Reply(200, b"body", {"Cache-Control": "max-age=10", "ETag": '"v1"', "X-Version": "1"}),
        Reply(304, b"", {"Cache-Control": "max-age=100", "ETag": '"v1"', "X-Version": "2"}),
    ])
    async with EdgeUnderTest(origin) as t:
        await t.get("/c")
        t.clock.advance(11)
        r = await t.get("/c")
        t.clock.advance(50)
        again = await t.get("/c")
    assert (r.status, r.cache, r.body) == (200, "REVALIDATED", b"body")
    assert r.headers["x-version"] == "2" and r.headers["cache-control"] == "max-age=100"
    assert origin.requests[1].headers["if-none-match"] == '"v1"'
    assert again.cache == "HIT"  # the 304's max-age=100 now applies


async def test_unsafe_method_invalidates_the_stored_uri():
    origin = FakeOrigin()
    origin.route("/doc", body=b"v1", headers={"Cache-Control": "max-age=600"})
    async with EdgeUnderTest(origin) as t:
        await t.get("/doc")
        assert (await t.get("/doc")).cache == "HIT"
        post = await t.get("/doc", method="POST", body=b"new")
        after = await t.get("/doc")
    assert post.cache == "PASS" and origin.requests[1].body == b"new"
    assert after.cache == "MISS"


@pytest.mark.parametrize("headers, stored", [
    ({"Cache-Control": "no-store"}, False),
    ({"Cache-Control": "private, max-age=60"}, False),
    ({"Cache-Control": "max-age=60", "Set-Cookie": "id=1"}, False),
    ({"Cache-Control": "max-age=60"}, True),
    ({"Cache-Control": "no-store", "CDN-Cache-Control": "max-age=60"}, True),   # RFC 9213 §2.2
    ({"Cache-Control": "max-age=60", "CDN-Cache-Control": "no-store"}, False),
    ({"Expires": "Thu, 01 Jan 2099 00:00:00 GMT"}, True),
])
async def test_what_is_stored(headers, stored):
    origin = FakeOrigin()
    origin.route("/s", body=b"x", headers=headers)
    async with EdgeUnderTest(origin) as t:
        await t.get("/s")
        r = await t.get("/s")
    assert (r.cache == "HIT") is stored


async def test_set_cookie_is_shared_only_when_the_service_allows_it():
    origin = FakeOrigin()
    origin.route("/s", body=b"x", headers={"Cache-Control": "max-age=60", "Set-Cookie": "id=1"})
    async with EdgeUnderTest(origin, with_cache("cookies: {share_set_cookie: true}")) as t:
        await t.get("/s")
        r = await t.get("/s")
    assert r.cache == "HIT" and r.headers["set-cookie"] == "id=1"


@pytest.mark.parametrize("cc, shared", [
    ("max-age=60", False),            # RFC 9111 §3.5: not without an explicit permission
    ("public, max-age=60", True),     # ...public, s-maxage or must-revalidate permit it
    ("s-maxage=60", True),
    ("max-age=60, must-revalidate", True),
])
async def test_responses_to_authorized_requests(cc, shared):
    origin = FakeOrigin()
    origin.route("/a", handler=lambda req: Reply(200, (req.headers.get("authorization") or "anon").encode(),
                                               {"Cache-Control": cc}))
    async with EdgeUnderTest(origin) as t:
        auth = await t.get("/a", headers={"Authorization": "Bearer secret"})
        anon = await t.get("/a")
    assert (auth.body, auth.cache) == (b"Bearer secret", "MISS")
    assert (anon.body, anon.cache) == ((b"Bearer secret", "HIT") if shared else (b"anon", "MISS"))


async def test_an_authorized_request_never_joins_or_leads_a_shared_fetch():
    origin = FakeOrigin()
    gate = asyncio.Event()
    origin.route("/a", handler=lambda req: Reply(200, (req.headers.get("authorization") or "anon").encode(),
                                               {"Cache-Control": "max-age=60"}, hold=gate))
    async with EdgeUnderTest(origin) as t:
        anon = asyncio.create_task(t.get("/a"))
        await asyncio.sleep(0.05)
        auth = asyncio.create_task(t.get("/a", headers={"Authorization": "Bearer secret"}))
        await asyncio.sleep(0.05)
        gate.set()
        anon, auth = await anon, await auth
    assert (anon.body, auth.body) == (b"anon", b"Bearer secret")
    assert origin.hits("/a") == 2


@pytest.mark.parametrize("cache_yaml, first, second, same", [
    ("query_string: {mode: sort}", "/q?b=2&a=1", "/q?a=1&b=2", True),
    ("query_string: {mode: keep}", "/q?b=2&a=1", "/q?a=1&b=2", False),
    ("query_string: {mode: ignore}", "/q?a=1", "/q?a=2", True),
    ("query_string: {mode: keep, exclude: [utm_source]}", "/q?a=1&utm_source=x", "/q?a=1&utm_source=y", True),
    ("query_string: {mode: keep, include: [v]}", "/q?v=1&x=1", "/q?v=1&x=2", True),
    ("query_string: {mode: keep, include: [v]}", "/q?v=1", "/q?v=2", False),
    ("cookies: {key: [lang]}", ("/q", "lang=en"), ("/q", "lang=fr"), False),
    ("cookies: {key: [lang]}", ("/q", "lang=en; a=1"), ("/q", "a=2; lang=en"), True),
])
async def test_cache_key_policy(cache_yaml, first, second, same):
    origin = FakeOrigin()
    origin.route("/q", body=b"q", headers={"Cache-Control": "max-age=60"})

    def request(spec):
        path, cookie = spec if isinstance(spec, tuple) else (spec, None)
        return path, ({"Cookie": cookie} if cookie else None)

    async with EdgeUnderTest(origin, with_cache(cache_yaml)) as t:
        path, headers = request(first)
        await t.get(path, headers=headers)
        path, headers = request(second)
        r = await t.get(path, headers=headers)
    assert (r.cache == "HIT") is same


@pytest.mark.parametrize("cache_yaml, origin_cc, advance, cache", [
    ("default_ttl: 30s", None, 20, "HIT"),
    ("default_ttl: 30s", None, 40, "MISS"),
    ("min_ttl: 60s", "max-age=5", 30, "HIT"),
    ("max_ttl: 10s", "max-age=3600", 20, "MISS"),
    ("enabled: false", "max-age=3600", 0, "PASS"),
])
async def test_per_service_ttl_policy(cache_yaml, origin_cc, advance, cache):
    origin = FakeOrigin()
    origin.route("/t", body=b"t", headers={"Cache-Control": origin_cc} if origin_cc else {}, conditional=False)
    async with EdgeUnderTest(origin, with_cache(cache_yaml)) as t:
        await t.get("/t")
        t.clock.advance(advance)
        r = await t.get("/t")
    assert r.cache == cache


async def test_client_no_cache_forces_revalidation_unless_the_service_ignores_it():
    origin = FakeOrigin()
    origin.route("/n", body=b"n", headers=CACHEABLE)
    async with EdgeUnderTest(origin) as t:
        await t.get("/n")
        r = await t.get("/n", headers={"Cache-Control": "no-cache"})
    assert r.cache == "REVALIDATED"
    origin2 = FakeOrigin()
    origin2.route("/n", body=b"n", headers=CACHEABLE)
    async with EdgeUnderTest(origin2, with_cache("honor_client_no_cache: false")) as t:
        await t.get("/n")
        r = await t.get("/n", headers={"Cache-Control": "no-cache"})
    assert r.cache == "HIT"
