"""Origin trouble: stale-while-revalidate, stale-if-error, timeouts, retries, made-up errors.

An origin problem never becomes a 404: the visitor gets the stale copy, or a 502/504
whose body names the edge and a request id that is also in the response headers.
"""

import asyncio
import socket

import pytest

from owncdn.testing.cluster import EdgeUnderTest
from owncdn.testing.origin import FakeOrigin, Reply


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(*origins: str, cache: str = "", timeouts: str = "{connect: 1s, first_byte: 0.3s, idle: 0.3s}",
           retries: int = 1) -> str:
    listed = ", ".join(f'"{o}"' for o in origins)
    return f"""
version: 1
edge: {{{{id: edge-t, location: test}}}}
services:
  - name: site
    hostnames: [example.test]
    origins: [{listed}]
    timeouts: {timeouts.replace("{", "{{").replace("}", "}}")}
    retries: {retries}
    cache: {{{{{cache}}}}}
"""


async def test_stale_while_revalidate_serves_stale_and_refreshes_in_background():
    origin = FakeOrigin()
    origin.route("/a", responses=[
        Reply(200, b"old", {"Cache-Control": "max-age=10, stale-while-revalidate=60"}, conditional=False),
        Reply(200, b"new", {"Cache-Control": "max-age=10, stale-while-revalidate=60"}, conditional=False),
    ])
    async with EdgeUnderTest(origin, config("{origin}")) as t:
        await t.get("/a")
        t.clock.advance(20)
        stale = await t.get("/a")
        for _ in range(50):
            if origin.hits("/a") == 2 and not t.edge.fills:
                break
            await asyncio.sleep(0.01)
        fresh = await t.get("/a")
    assert (stale.cache, stale.body, stale.headers["age"]) == ("STALE", b"old", "20")
    assert (fresh.cache, fresh.body) == ("HIT", b"new")


async def test_stale_while_revalidate_window_from_service_default():
    origin = FakeOrigin()
    origin.route("/a", body=b"x", headers={"Cache-Control": "max-age=10"}, conditional=False)
    async with EdgeUnderTest(origin, config("{origin}", cache="stale_while_revalidate: 30s")) as t:
        await t.get("/a")
        t.clock.advance(25)
        inside = await t.get("/a")
        await asyncio.sleep(0.05)
        t.clock.advance(100)
        outside = await t.get("/a")
    assert inside.cache == "STALE" and outside.cache == "MISS"


@pytest.mark.parametrize("failure", ["down", "500", "503", "timeout"])
async def test_stale_if_error_serves_the_stale_copy(failure):
    origin = FakeOrigin()
    bad = {"500": Reply(500, b"boom"), "503": Reply(503, b"busy"), "timeout": Reply(200, b"late", delay=1.0),
           "down": Reply(200, b"x")}[failure]
    origin.route("/a", responses=[Reply(200, b"good", {"Cache-Control": "max-age=10"}, conditional=False), bad])
    async with EdgeUnderTest(origin, config("{origin}")) as t:
        await t.get("/a")
        t.clock.advance(60)
        if failure == "down":
            await origin.close()
        r = await t.get("/a")
    assert (r.status, r.cache, r.body) == (200, "STALE", b"good")


@pytest.mark.parametrize("cc", ["max-age=10, must-revalidate", "max-age=10, proxy-revalidate", "s-maxage=10"])
async def test_must_revalidate_forbids_stale_on_error(cc):
    origin = FakeOrigin()
    origin.route("/a", responses=[Reply(200, b"good", {"Cache-Control": cc}, conditional=False), Reply(503, b"busy")])
    async with EdgeUnderTest(origin, config("{origin}")) as t:
        await t.get("/a")
        t.clock.advance(60)
        r = await t.get("/a")
    assert (r.status, r.body) == (503, b"busy")


async def test_origin_down_without_a_stale_copy_is_a_502_naming_edge_and_request():
    origin = FakeOrigin()
    async with EdgeUnderTest(origin, config(f"http://127.0.0.1:{closed_port()}")) as t:
        r = await t.get("/missing")
    assert r.status == 502 and r.cache == "MISS"
    assert b"edge-t (test)" in r.body
    assert r.headers["x-request-id"].encode() in r.body
    assert r.headers["cache-control"] == "no-store"


async def test_origin_too_slow_is_a_504():
    origin = FakeOrigin()
    origin.route("/slow", body=b"late", delay=1.0)
    async with EdgeUnderTest(origin, config("{origin}", retries=0)) as t:
        r = await t.get("/slow")
    assert r.status == 504 and b"in time" in r.body


async def test_idempotent_request_retried_on_the_next_origin():
    origin = FakeOrigin()
    origin.route("/a", body=b"from second", headers={"Cache-Control": "max-age=60"})
    async with EdgeUnderTest(origin, config(f"http://127.0.0.1:{closed_port()}", "{origin}")) as t:
        r = await t.get("/a")
    assert (r.status, r.body) == (200, b"from second")


async def test_post_is_not_retried_after_a_timeout():
    origin = FakeOrigin()
    origin.route("/p", body=b"slow", delay=1.0)
    async with EdgeUnderTest(origin, config("{origin}", "{origin}", retries=2)) as t:
        r = await t.get("/p", method="POST", body=b"data")
    assert r.status == 504 and origin.hits("/p") == 1


async def test_origin_404_stays_404_and_5xx_is_passed_on():
    origin = FakeOrigin()
    origin.route("/gone", status=404, body=b"nope")
    origin.route("/err", status=500, body=b"boom")
    async with EdgeUnderTest(origin, config("{origin}")) as t:
        r404 = await t.get("/gone")
        r500 = await t.get("/err")
    assert (r404.status, r404.body) == (404, b"nope")
    assert (r500.status, r500.body) == (500, b"boom")


async def test_origin_cut_off_mid_body_is_not_stored_and_connection_is_closed():
    origin = FakeOrigin()
    origin.route("/cut", responses=[
        Reply(200, b"x" * 100_000, {"Cache-Control": "max-age=60"}, abort_after=1000),
        Reply(200, b"y" * 10, {"Cache-Control": "max-age=60"}),
    ])
    async with EdgeUnderTest(origin, config("{origin}")) as t:
        with pytest.raises((ConnectionError, Exception)):
            await t.get("/cut")
        r = await t.get("/cut")
    assert (r.cache, r.body) == ("MISS", b"y" * 10)
