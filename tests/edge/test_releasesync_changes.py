"""A release event that carries the release's changes from another release instead of
its manifest (edge/releasesync.py rule 9): applied where the edge holds that release,
the whole manifest fetched where it does not or where the changes do not give the
release's id. Against a scripted control plane on loopback."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from owncdn.core.content.changes import changes_between
from owncdn.core.content.digest import digest as blob_name
from owncdn.core.content.manifest import Manifest
from owncdn.edge.releases import ReleaseStore
from owncdn.edge.releasesync import ReleaseSync
from owncdn.testing.origin import Reply
from tests.edge.test_releasesync_inline import Control as InlineControl
from tests.edge.test_releasesync_inline import event

ONE = {"index.html": b"<h1>one</h1>", "a.css": b"a{}", "b.css": b"b{}", "c.css": b"c{}"}
TWO = {**ONE, "index.html": b"<h1>two</h1>", "new.html": b"new"}
THREE = {**TWO, "a.css": b"a{color:red}"}


def manifest_of(files: dict[str, bytes]) -> Manifest:
    return Manifest.build([(p, blob_name(d), len(d)) for p, d in files.items()])


def changes_event(number: int, base: dict[str, bytes], files: dict[str, bytes]) -> dict:
    old, new = manifest_of(base), manifest_of(files)
    return {"key": "blog", "service": "blog", "number": number, "id": new.id, "base": old.id,
            "changes": changes_between(old, new)}


class Control(InlineControl):
    """The inline tests' control plane, which also answers whole manifests."""

    env = "production"

    def __init__(self, blobs: list[bytes], manifests: dict[int, dict[str, bytes]]) -> None:
        super().__init__(blobs)
        self.manifests = manifests
        self.manifest_asks: list[str] = []

    async def start(self) -> "Control":
        await super().start()
        for number in self.manifests:
            self.origin.route(f"/v1/services/blog/releases/{number}/manifest", handler=self._manifest)
        return self

    def _manifest(self, req) -> Reply:
        self.manifest_asks.append(req.path)
        number = int(req.path.split("/")[5])
        body = manifest_of(self.manifests[number]).canonical()
        return Reply(200, body, {"Content-Type": "application/json"}, conditional=False)


async def settle(sync: ReleaseSync, service: str = "blog") -> None:
    """Until no task of ``service`` runs (a manifest's fetch hands over to the release's task)."""
    for _ in range(100):
        running = sync.tasks.get(service)
        if running is None or running[1].done():
            return
        await sync.wait(service)
    raise AssertionError("the release's tasks did not end")


@pytest.fixture
async def fleet(tmp_path):
    control = await Control([*ONE.values(), *TWO.values(), *THREE.values()], {2: TWO, 3: THREE}).start()
    store = ReleaseStore(tmp_path / "push")
    sync = ReleaseSync(store, control)
    async with httpx.AsyncClient(timeout=10) as http:
        yield control, store, sync, http
    await sync.close()
    await control.origin.close()


@pytest.mark.parametrize("base_is", ["live", "previous"])
async def test_changes_from_a_release_the_edge_holds_are_applied_without_the_manifest(fleet, tmp_path, base_is):
    control, store, sync, http = fleet
    await sync.on_event(None, http, event(1, ONE))
    await settle(sync)
    if base_is == "previous":  # the release before the live one: a rollback's base
        await sync.on_event(None, http, event(2, TWO))
        await settle(sync)
    received = store.manifest_bytes
    sent = changes_event(3, ONE, THREE)
    await sync.on_event(None, http, sent)
    await settle(sync)
    assert control.manifest_asks == []
    assert store.manifest_bytes - received == len(json.dumps(sent["changes"], separators=(",", ":")))
    live = store.live["blog"]
    assert (live.target.number, live.target.id) == (3, manifest_of(THREE).id)
    assert live.target.manifest == manifest_of(THREE)
    assert control.acks[-1] == {"service": "blog", "number": 3, "status": "serving", "reason": ""}
    for path, data in THREE.items():
        assert store.read_blob(live.target.manifest.files[path].sha256) == data
    saved = json.loads((tmp_path / "push" / "releases" / "blog.json").read_bytes())
    assert saved["id"] == manifest_of(THREE).id and saved["manifest"] == manifest_of(THREE).to_json()
    again = ReleaseStore(tmp_path / "push")  # a restart serves it from its file
    assert again.live["blog"].target.manifest == manifest_of(THREE)


@pytest.mark.parametrize("held, sent", [
    (None, changes_event(2, ONE, TWO)),  # a new edge: nothing to apply them to
    (ONE, changes_event(2, THREE, TWO)),  # it serves another release than the base
    (ONE, changes_event(2, ONE, TWO) | {"changes": {"index.html": None}}),  # changes that do not give the id
    (ONE, changes_event(2, ONE, TWO) | {"changes": {"../x": None}}),  # changes that are not valid
])
async def test_an_edge_without_the_base_fetches_the_whole_manifest(fleet, held, sent, capsys):
    control, store, sync, http = fleet
    if held is not None:
        await sync.on_event(None, http, event(1, held))
        await settle(sync)
    await sync.on_event(None, http, sent)
    await settle(sync)
    assert control.manifest_asks == ["/v1/services/blog/releases/2/manifest?env=production"]
    assert store.live["blog"].target.manifest == manifest_of(TWO)
    assert control.acks[-1]["number"] == 2 and control.acks[-1]["status"] == "serving"
    if held is not None and sent["base"] == manifest_of(held).id:
        assert "fetching its manifest" in capsys.readouterr().err


async def test_a_newer_event_cancels_the_fetch_of_a_manifest(fleet):
    control, store, sync, http = fleet
    control.origin.route("/v1/services/blog/releases/2/manifest", responses=[Reply(503, b"", {}, conditional=False)])
    await sync.on_event(None, http, changes_event(2, THREE, TWO))  # fetched, and retried while 503
    await asyncio.sleep(0.1)
    await sync.on_event(None, http, event(3, THREE))
    await settle(sync)
    assert store.live["blog"].target.number == 3
    assert [a["number"] for a in control.acks] == [3]


async def test_an_event_for_the_release_served_is_acknowledged_without_applying_anything(fleet):
    control, store, sync, http = fleet
    await sync.on_event(None, http, event(1, ONE))
    await settle(sync)
    await sync.on_event(None, http, changes_event(2, ONE, TWO))
    await settle(sync)
    await sync.on_event(None, http, changes_event(2, ONE, TWO))  # resent on a reconnect
    assert control.manifest_asks == []
    assert [(a["number"], a["status"]) for a in control.acks] == [(1, "serving"), (2, "serving"), (2, "serving")]


async def test_a_rollback_sent_as_changes_takes_the_manifest_the_edge_holds(fleet):
    """Release 2, created after 1, is sent as its changes from 1 (cached so); activated
    again after 3, the edge holds 2 as its previous release: no fetch, no changes applied."""
    control, store, sync, http = fleet
    await sync.on_event(None, http, event(1, ONE))
    await settle(sync)
    await sync.on_event(None, http, changes_event(2, ONE, TWO))
    await settle(sync)
    await sync.on_event(None, http, changes_event(3, TWO, THREE))
    await settle(sync)
    await sync.on_event(None, http, changes_event(2, ONE, TWO))  # release 2 made current again
    await settle(sync)
    assert control.manifest_asks == []
    live = store.live["blog"]
    assert (live.target.number, live.target.id) == (2, manifest_of(TWO).id)
    assert live.target.manifest == manifest_of(TWO) and live.previous.number == 3
    assert [(a["number"], a["status"]) for a in control.acks] == [(1, "serving"), (2, "serving"), (3, "serving"),
                                                                   (2, "serving")]
