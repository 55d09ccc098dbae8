"""Purge at the edge: by URL, prefix, tag, everything; hard and soft; per service."""

import pytest

from owncdn.edge.purge import PurgeError, run_purge
from owncdn.testing.cluster import EdgeUnderTest
from owncdn.testing.origin import FakeOrigin

TWO_SERVICES = """
version: 1
edge: {{id: edge-t, location: test}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
  - name: other
    hostnames: [other.test]
    origins: ["{origin}"]
"""

PATHS = {
    "/img/a.png": {"Cache-Tag": "images, product-1"},
    "/img/b.png": {"Surrogate-Key": "images product-2"},
    "/doc?x=1": {"Cache-Tag": "docs"},
    "/": {},
}


async def filled(t, origin):
    for path in PATHS:
        await t.get(path)
    async with t.client("other.test") as c:
        await c.get("/img/a.png")


def make_origin() -> FakeOrigin:
    origin = FakeOrigin()
    for path, tags in PATHS.items():
        origin.route(path.split("?")[0], body=path.encode(),
                     headers={"Cache-Control": "max-age=600", "ETag": '"v1"', **tags})
    return origin


@pytest.mark.parametrize("spec, gone, kept", [
    ({"url": "http://example.test/img/a.png"}, ["/img/a.png"], ["/img/b.png", "/"]),
    ({"url": "http://example.test/doc?x=1"}, ["/doc?x=1"], ["/"]),
    ({"prefix": "http://example.test/img/"}, ["/img/a.png", "/img/b.png"], ["/", "/doc?x=1"]),
    ({"prefix": "/img/", "service": "site"}, ["/img/a.png", "/img/b.png"], ["/"]),
    ({"tag": "images", "service": "site"}, ["/img/a.png", "/img/b.png"], ["/", "/doc?x=1"]),
    ({"tag": "product-2"}, ["/img/b.png"], ["/img/a.png"]),
    ({"all": True, "service": "site"}, list(PATHS), []),
    ({"url": "http://unknown.test/img/a.png"}, [], list(PATHS)),
])
async def test_hard_purge(spec, gone, kept):
    origin = make_origin()
    async with EdgeUnderTest(origin, TWO_SERVICES) as t:
        await filled(t, origin)
        removed = run_purge(t.edge, spec)
        after = {path: (await t.get(path)).cache for path in PATHS}
        async with t.client("other.test") as c:
            other = (await c.get("/img/a.png")).cache
    assert removed == len(gone)
    assert all(after[p] == "MISS" for p in gone) and all(after[p] == "HIT" for p in kept)
    assert other == "HIT"  # the other service was not touched


async def test_purge_everything_on_the_edge():
    origin = make_origin()
    async with EdgeUnderTest(origin, TWO_SERVICES) as t:
        await filled(t, origin)
        assert run_purge(t.edge, {"all": True}) == len(PATHS) + 1
        assert t.edge.store.used == 0


async def test_soft_purge_revalidates_and_keeps_the_copy_for_errors():
    origin = make_origin()
    async with EdgeUnderTest(origin, TWO_SERVICES) as t:
        await filled(t, origin)
        assert run_purge(t.edge, {"tag": "images", "soft": True, "service": "site"}) == 2
        revalidated = await t.get("/img/a.png")
        untouched = await t.get("/")
    assert (revalidated.cache, revalidated.body) == ("REVALIDATED", b"/img/a.png")
    assert untouched.cache == "HIT"
    site = [r for r in origin.requests if r.path == "/img/a.png" and r.headers["x-forwarded-host"] == "example.test"]
    assert len(site) == 2 and site[1].headers["if-none-match"] == '"v1"'


async def test_soft_purged_copy_still_covers_an_origin_failure():
    origin = make_origin()
    async with EdgeUnderTest(origin, TWO_SERVICES) as t:
        await filled(t, origin)
        run_purge(t.edge, {"url": "http://example.test/", "soft": True})
        await origin.close()
        r = await t.get("/")
    assert (r.status, r.cache, r.body) == (200, "STALE", b"/")


@pytest.mark.parametrize("spec", [{}, {"prefix": "/img/"}, {"url": "/img/a.png"}])
async def test_bad_purge_specs(spec):
    origin = make_origin()
    async with EdgeUnderTest(origin, TWO_SERVICES) as t:
        with pytest.raises(PurgeError):
            run_purge(t.edge, spec)
