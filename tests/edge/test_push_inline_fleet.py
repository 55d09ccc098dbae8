"""A one-file push across a fleet in this process: the changed blob reaches the edges
inside the release event (control/api/releases.py Rule 10, edge/releasesync.py rule 8),
and an edge that was away meanwhile, reconnecting to a control plane that restarted
(whose event then carries no blobs), fetches it as always; one away for two releases sent
as changes fetches the manifest the last ones do not apply to."""

from __future__ import annotations

import asyncio
from pathlib import Path

from owncdn.client.push import push_site
from owncdn.edge.server import EdgeServer
from owncdn.testing.client import HttpClient
from owncdn.testing.fleet import Fleet

SOURCE = """
version: 1
services:
  - name: blog
    hostnames: [blog.test]
    mode: push
"""


async def push(fleet: Fleet, root: Path) -> int:
    result = await asyncio.to_thread(push_site, fleet.api, root, service="blog", env=fleet.env)
    return result.release["number"]


async def wait_serving(servers: list[EdgeServer], number: int, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all((live := s.edge.releases.live.get("blog")) is not None and live.target.number == number
                  and s.push.acked.get("blog") == (number, "serving") for s in servers):
        if loop.time() > deadline:
            raise TimeoutError(f"not every edge serves release {number}: {[s.push for s in servers]}")
        await asyncio.sleep(0.01)


async def home(server: EdgeServer) -> bytes:
    sock = server.servers[0].sockets[0].getsockname()
    async with HttpClient(sock[0], sock[1], default_host="blog.test") as client:
        return (await client.get("/")).body


async def test_a_changed_file_comes_inline_and_an_edge_that_missed_the_event_fetches_it(tmp_path):
    site = tmp_path / "public"
    site.mkdir()
    (site / "index.html").write_bytes(b"<h1>v1</h1>")
    (site / "about.html").write_bytes(b"about")
    fleet = Fleet(tmp_path / "fleet", edges=2)
    await fleet.__aenter__()
    try:
        await fleet.wait_applied(await fleet.apply(SOURCE))
        one = await push(fleet, site)
        await wait_serving(fleet.edges, one)

        await fleet.stop_edge(1)
        (site / "index.html").write_bytes(b"<h1>version two</h1>")
        fetched, inline = fleet.edges[0].push.fetched_blobs, fleet.edges[0].push.inline_blobs
        two = await push(fleet, site)
        await wait_serving(fleet.edges[:1], two)
        assert (fleet.edges[0].push.inline_blobs - inline, fleet.edges[0].push.fetched_blobs - fetched) == (1, 1)
        assert await home(fleet.edges[0]) == b"<h1>version two</h1>"

        await fleet.stop_control()  # its release event, read back from the store, carries no blobs now
        await fleet.start_control()
        away = await fleet.restart_edge(1)
        await wait_serving([away], two)
        assert (away.push.inline_blobs, away.push.fetched_blobs) == (0, 1)
        assert await home(away) == b"<h1>version two</h1>"
    finally:
        await fleet.__aexit__(None, None, None)


async def test_an_edge_that_missed_the_release_its_changes_are_from_fetches_the_manifest(tmp_path, capfd):
    """Releases 2 and 3 go as their changes from the release before (releasechannels.py
    Rule 8); an edge away for both comes back holding 1, so 3's changes from 2 do not
    apply there: it fetches 3's manifest (GET .../releases/3/manifest, its node token)."""
    site = tmp_path / "public"
    site.mkdir()
    for name in ("index.html", "a.html", "b.html", "c.html", "d.html"):
        (site / name).write_bytes(b"<p>%s v1</p>" % name.encode())
    fleet = Fleet(tmp_path / "fleet", edges=2)
    await fleet.__aenter__()
    try:
        await fleet.wait_applied(await fleet.apply(SOURCE))
        await wait_serving(fleet.edges, await push(fleet, site))
        await fleet.stop_edge(1)
        received = fleet.edges[0].edge.releases.manifest_bytes
        for version in (b"v2", b"v3"):
            (site / "index.html").write_bytes(b"<h1>%s</h1>" % version)
            number = await push(fleet, site)
            await wait_serving(fleet.edges[:1], number)
        changes = fleet.edges[0].edge.releases.manifest_bytes - received
        assert 0 < changes < 250  # two entries' changes, not two manifests
        away = await fleet.restart_edge(1)
        await wait_serving([away], number)
        assert await home(away) == b"<h1>v3</h1>"
        assert away.edge.releases.live["blog"].target.id == fleet.edges[0].edge.releases.live["blog"].target.id
        whole = len(away.edge.releases.live["blog"].target.manifest_json)
        assert away.edge.releases.manifest_bytes >= whole > 250  # the whole manifest, fetched
        assert "which this edge does not hold; fetching its manifest" in capfd.readouterr().err
    finally:
        await fleet.__aexit__(None, None, None)
