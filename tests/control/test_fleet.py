"""The fleet follows the control plane: apply, reject, outage, restart, purge.

A real control plane (REST API on uvicorn, SQLite store) and five edges, each on its
own loopback address, with their agents streaming server-sent events.
"""

import asyncio
import time

import pytest

from owncdn.testing.fleet import Fleet
from owncdn.testing.origin import FakeOrigin

SITE = """
version: 1
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
{extra}
"""


def site(origin: FakeOrigin, extra: str = "") -> str:
    return SITE.format(origin=origin.url, extra=extra)


@pytest.fixture
async def origin():
    o = FakeOrigin()
    o.route("/", body=b"home", headers={"Cache-Control": "max-age=600", "Cache-Tag": "home"})
    o.route("/a", body=b"a", headers={"Cache-Control": "max-age=600"})
    await o.start()
    yield o
    await o.close()


async def test_apply_reaches_every_edge_and_is_acknowledged(tmp_path, origin):
    async with Fleet(tmp_path, edges=5) as fleet:
        v = await fleet.apply(site(origin), "first")
        await fleet.wait_applied(v)
        for _ in range(50):
            status = await fleet.status()
            if all(n["running_version"] == v and not n["drift"] for n in status["nodes"]):
                break
            await asyncio.sleep(0.05)
        replies = [await fleet.get(i, "/") for i in range(5)]
    assert status["latest_version"] == v and len(status["nodes"]) == 5
    assert all(n["running_version"] == v and n["status"] == "applied" and not n["drift"] for n in status["nodes"])
    assert [r.body for r in replies] == [b"home"] * 5
    assert {r.headers["x-served-by"] for r in replies} == {f"edge-{i} (loc{i})" for i in range(5)}


async def test_an_edge_that_cannot_apply_rejects_keeps_the_old_version_and_shows_drift(tmp_path, origin):
    # The new version needs a secret from a file; only edges 1-4 have it.
    async with Fleet(tmp_path, edges=5) as fleet:
        v1 = await fleet.apply(site(origin))
        await fleet.wait_applied(v1)
        for i in range(1, 5):
            (tmp_path / f"edge-{i}" / "origin.token").write_text("s3cret\n")
        rules = '    headers: {request: {set: {X-Origin-Auth: "${file:origin.token}"}}}'
        v2 = await fleet.apply(site(origin, rules))
        await fleet.wait_applied(v2, edges=[1, 2, 3, 4])
        for _ in range(100):
            nodes = {n["name"]: n for n in (await fleet.status())["nodes"]}
            if nodes["edge-0"]["status"] == "rejected":
                break
            await asyncio.sleep(0.05)
        still_serving = await fleet.get(0, "/")
        await fleet.get(1, "/a")
    bad = nodes["edge-0"]
    assert (bad["status"], bad["running_version"], bad["drift"]) == ("rejected", v1, True)
    assert "origin.token" in bad["reason"]
    assert all(nodes[f"edge-{i}"]["running_version"] == v2 and not nodes[f"edge-{i}"]["drift"] for i in range(1, 5))
    assert still_serving.status == 200
    seen = [r for r in origin.requests if r.path == "/a"]
    assert seen and seen[-1].headers["x-origin-auth"] == "s3cret"


async def test_edges_keep_serving_without_the_control_plane_and_resync(tmp_path, origin):
    async with Fleet(tmp_path, edges=3) as fleet:
        v1 = await fleet.apply(site(origin))
        await fleet.wait_applied(v1)
        await fleet.stop_control()
        during = [await fleet.get(i, "/") for i in range(3)]
        # An edge restarted while the control plane is away comes back with its last config.
        await fleet.stop_edge(2)
        await fleet.start_edge(2)
        restarted = await fleet.get(2, "/")
        await fleet.start_control()
        v2 = await fleet.apply(site(origin).replace("example.test]", "example.test, www.example.test]"))
        await fleet.wait_applied(v2, timeout=15)
        after = await fleet.get(1, "/", host="www.example.test")
    assert [r.status for r in during] == [200, 200, 200]
    assert (restarted.status, restarted.body) == (200, b"home")
    assert (after.status, after.body) == (200, b"home")


async def test_purge_is_acknowledged_by_every_edge(tmp_path, origin):
    async with Fleet(tmp_path, edges=5) as fleet:
        v = await fleet.apply(site(origin))
        await fleet.wait_applied(v)
        await asyncio.sleep(0.2)  # let every edge report before the purge counts them
        for i in range(5):
            await fleet.get(i, "/")
        t0 = time.perf_counter()
        result = await asyncio.to_thread(fleet.api.purge, fleet.env, tag="home", wait=10)
        elapsed = time.perf_counter() - t0
        after = [await fleet.get(i, "/") for i in range(5)]
    assert result["complete"] and not result["pending"]
    assert sorted(a["name"] for a in result["acked"]) == [f"edge-{i}" for i in range(5)]
    assert all(a["removed"] == 1 for a in result["acked"])
    assert [r.cache for r in after] == ["MISS"] * 5
    assert elapsed < 10


async def test_locations_list_declared_locations_and_their_nodes(tmp_path, origin):
    source = site(origin).replace("services:", "locations:\n  - {name: loc0, city: Frankfurt, lat: 50.1, lon: 8.7}\nservices:")
    async with Fleet(tmp_path, edges=2) as fleet:
        v = await fleet.apply(source)
        await fleet.wait_applied(v)
        found = await asyncio.to_thread(fleet.api.locations, fleet.env)
    by_name = {loc["name"]: loc for loc in found["locations"]}
    assert by_name["loc0"]["declared"] and by_name["loc0"]["city"] == "Frankfurt"
    assert by_name["loc0"]["nodes"] == ["edge-0"]
    assert not by_name["loc1"]["declared"] and by_name["loc1"]["nodes"] == ["edge-1"]


TAGGED = {"/img/a.png": "images, a", "/img/b.png": "images", "/doc": "docs", "/": ""}


@pytest.mark.parametrize("spec, gone", [
    ({"url": "http://example.test/img/a.png"}, {"/img/a.png"}),
    ({"prefix": "http://example.test/img/"}, {"/img/a.png", "/img/b.png"}),
    ({"prefix": "/img/", "service": "site"}, {"/img/a.png", "/img/b.png"}),
    ({"tag": "images"}, {"/img/a.png", "/img/b.png"}),
    ({"all": True, "service": "site"}, set(TAGGED)),
])
async def test_purge_by_each_selector_on_a_three_edge_fleet(tmp_path, spec, gone):
    origin = FakeOrigin()
    for path, tags in TAGGED.items():
        origin.route(path, body=path.encode(), headers={"Cache-Control": "max-age=600", "Cache-Tag": tags})
    await origin.start()
    async with Fleet(tmp_path, edges=3) as fleet:
        v = await fleet.apply(site(origin))
        await fleet.wait_applied(v)
        await asyncio.sleep(0.2)  # every edge reported, so the purge waits for all three
        for i in range(3):
            for path in TAGGED:
                await fleet.get(i, path)
        result = await asyncio.to_thread(fleet.api.purge, fleet.env, wait=10, **{
            "all" if k == "all" else k: v for k, v in spec.items()})
        after = [{path: (await fleet.get(i, path)).cache for path in TAGGED} for i in range(3)]
    await origin.close()
    assert result["complete"] and len(result["acked"]) == 3
    assert all(a["removed"] == len(gone) for a in result["acked"])
    for edge in after:
        assert {p for p, cache in edge.items() if cache == "MISS"} == gone
        assert {p for p, cache in edge.items() if cache == "HIT"} == set(TAGGED) - gone


async def test_soft_purge_through_the_fleet_serves_stale_while_revalidating(tmp_path):
    origin = FakeOrigin()
    origin.route("/", body=b"home", headers={"Cache-Control": "max-age=600, stale-while-revalidate=60",
                                            "ETag": '"v1"'})
    await origin.start()
    async with Fleet(tmp_path, edges=3) as fleet:
        v = await fleet.apply(site(origin))
        await fleet.wait_applied(v)
        await asyncio.sleep(0.2)
        for i in range(3):
            await fleet.get(i, "/")
        result = await asyncio.to_thread(fleet.api.purge, fleet.env, url="http://example.test/", soft=True, wait=10)
        stale = [await fleet.get(i, "/") for i in range(3)]
        await asyncio.sleep(0.2)  # the background revalidations finish
        fresh = [await fleet.get(i, "/") for i in range(3)]
    await origin.close()
    assert result["complete"]
    assert [(r.cache, r.body) for r in stale] == [("STALE", b"home")] * 3
    assert [r.cache for r in fresh] == ["HIT"] * 3
    conditional = [r for r in origin.requests if "if-none-match" in r.headers]
    assert len(conditional) == 3
