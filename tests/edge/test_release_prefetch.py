"""An edge prefetching an upcoming release (edge/releasesync.py rule 6) from a real
control plane on loopback: blobs fetched while they are uploaded, nothing switched
until the release exists, nothing fetched twice, a superseded prefetch stopped."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from owncdn.control.api import ApiServer, create_app
from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.store import Store, sqlite_url
from owncdn.core.content.bundle import header
from owncdn.core.content.digest import digest as blob_name
from owncdn.core.content.manifest import Manifest
from owncdn.edge.releases import ReleaseStore
from owncdn.edge import releasesync
from owncdn.edge.releasesync import ReleaseSync

SITE = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    mode: push
"""
FILES = {"index.html": b"<h1>hello</h1>", "style.css": b"body{}", "big.bin": bytes(range(256)) * 8000}


def sha(data: bytes) -> str:
    return blob_name(data)  # BLAKE3, <hex>-b3


def manifest(files: dict[str, bytes]) -> Manifest:
    return Manifest.build([(path, sha(data), len(data)) for path, data in files.items()])


def bundle(*blobs: bytes) -> bytes:
    return b"".join(header(sha(blob), len(blob)) + blob for blob in blobs)


class Agent:
    """What ReleaseSync uses of the sync agent, with a node registered on the control plane."""

    def __init__(self, url: str, node_id: str, token: str) -> None:
        self.control, self.node_id, self.token = url, node_id, token
        self.unsent: list = []

    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def cdn(tmp_path):
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    app = create_app(store, blobs=DirBlobStore(tmp_path / "blobs"))
    server = ApiServer(app).start()
    deploy = store.create_token("deploy", {"deploy", "admin"})[1]
    bootstrap = store.create_token("bootstrap", {"node"})[1]
    http = httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {deploy}"}, timeout=10)
    (await http.post("/v1/envs/production/versions", json={"source": SITE})).raise_for_status()
    node = (await http.post("/v1/nodes/register", headers={"Authorization": f"Bearer {bootstrap}"},
                            json={"name": "edge-1", "kind": "edge", "location": "fra", "env": "production",
                                  "address": "192.0.2.1"})).json()
    releases = ReleaseStore(tmp_path / "edge" / "push")
    sync = ReleaseSync(releases, Agent(server.url, node["node_id"], node["token"]))
    yield http, releases, sync
    await sync.close()
    await http.aclose()
    server.stop()
    store.close()


async def announce(http, m: Manifest) -> dict:
    r = await http.post("/v1/services/blog/releases/upcoming", json={"manifest": m.to_json()})
    assert r.status_code == 202, r.text
    return {"key": "blog", **r.json(), "manifest": m.to_json()}


async def until(check, what: str) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} did not happen")


async def test_blobs_come_while_they_are_uploaded_and_the_release_switches_without_fetching_again(cdn):
    http, releases, sync = cdn
    m = manifest(FILES)
    await sync.on_upcoming(None, None, await announce(http, m))
    upcoming = releases.upcoming["blog"]  # kept from garbage collection while it runs
    assert upcoming.id == m.id
    (await http.post("/v1/blobs/bundle", content=bundle(FILES["index.html"]))).raise_for_status()
    await until(lambda: sync.fetched_bytes == len(FILES["index.html"]), "the first blob arriving")
    assert "blog" not in releases.live  # a prefetch never switches
    (await http.post("/v1/blobs/bundle", content=bundle(FILES["style.css"], FILES["big.bin"]))).raise_for_status()
    await until(lambda: not releases.missing(upcoming), "every blob arriving")
    fetched = sync.fetched_bytes
    assert fetched == sum(map(len, FILES.values()))

    created = (await http.post("/v1/services/blog/releases", json={"manifest": m.to_json()})).json()
    await sync.on_event(None, None, {"key": "blog", "service": "blog", "number": created["number"], "id": m.id,
                                     "manifest": m.to_json()})
    await sync.wait("blog")
    assert releases.live["blog"].target.id == m.id and sync.fetched_bytes == fetched  # nothing fetched twice
    for data in FILES.values():
        assert releases.read_blob(sha(data)) == data
    assert sync.acked["blog"] == (created["number"], "serving")
    assert "blog" not in releases.upcoming


async def test_a_blob_too_large_for_a_bundle_comes_as_its_upload_writes_it(cdn, monkeypatch):
    """Rule 6 and control/api/arriving.py: the edge has the first half of the blob
    before the second half was sent, and the release then fetches nothing again."""
    monkeypatch.setattr(releasesync, "PREFETCH_BLOB", 1 << 20)  # big.bin (2 MB) is then too large for a bundle
    http, releases, sync = cdn
    m = manifest(FILES)
    await sync.on_upcoming(None, None, await announce(http, m))
    upcoming = releases.upcoming["blog"]
    big, half = FILES["big.bin"], len(FILES["big.bin"]) // 2
    upload = socket.create_connection((http.base_url.host, http.base_url.port), timeout=10)
    upload.sendall(f"PUT /v1/blobs/{sha(big)} HTTP/1.1\r\nHost: t\r\nAuthorization: {http.headers['authorization']}"
                   f"\r\nContent-Length: {len(big)}\r\n\r\n".encode() + big[:half])
    await until(lambda: sync.fetched_bytes >= half, "the first half reaching the edge")
    assert not releases.has_blob(sha(big))
    upload.sendall(big[half:])
    answer = await asyncio.to_thread(upload.recv, 1 << 16)
    upload.close()
    assert answer.startswith(b"HTTP/1.1 200")
    await until(lambda: releases.has_blob(sha(big)), "the blob kept")
    assert sync.fetched_bytes == len(big)
    (await http.post("/v1/blobs/bundle", content=bundle(FILES["index.html"], FILES["style.css"]))).raise_for_status()
    await until(lambda: not releases.missing(upcoming), "every blob arriving")
    created = (await http.post("/v1/services/blog/releases", json={"manifest": m.to_json()})).json()
    await sync.on_event(None, None, {"key": "blog", "service": "blog", "number": created["number"], "id": m.id,
                                     "manifest": m.to_json()})
    await sync.wait("blog")
    assert sync.fetched_bytes == sum(map(len, FILES.values()))  # nothing fetched twice
    assert releases.read_blob(sha(big)) == big and sync.acked["blog"] == (created["number"], "serving")


async def test_a_release_arriving_during_the_prefetch_waits_for_it_then_fetches_the_rest(cdn):
    http, releases, sync = cdn
    m = manifest(FILES)
    await sync.on_upcoming(None, None, await announce(http, m))
    await until(lambda: "blog" in sync.prefetches, "the prefetch starting")
    (await http.post("/v1/blobs/bundle", content=bundle(*FILES.values()))).raise_for_status()
    created = (await http.post("/v1/services/blog/releases", json={"manifest": m.to_json()})).json()
    await sync.on_event(None, None, {"key": "blog", "service": "blog", "number": created["number"], "id": m.id,
                                     "manifest": m.to_json()})
    await sync.wait("blog")
    assert releases.live["blog"].target.id == m.id
    assert sync.fetched_bytes == sum(map(len, FILES.values()))  # each blob once, by one of the two


async def test_another_announcement_stops_the_prefetch_and_the_same_one_again_changes_nothing(cdn):
    http, releases, sync = cdn
    first, second = manifest({"a.html": b"first"}), manifest({"a.html": b"second"})
    await sync.on_upcoming(None, None, await announce(http, first))
    task = sync.prefetches["blog"][1]
    await sync.on_upcoming(None, None, await announce(http, first))  # resent on a reconnect
    assert sync.prefetches["blog"][1] is task
    await sync.on_upcoming(None, None, await announce(http, second))
    await asyncio.wait([task])
    assert task.cancelled() and releases.upcoming["blog"].id == second.id
    await sync.on_upcoming(None, None, {"key": "blog", "deleted": True})  # the prefetch ends by itself
    assert not sync.prefetches["blog"][1].done()
