"""Blobs carried inside a release event (edge/releasesync.py rule 8): kept without a
fetch when they match their names, refused and fetched when they do not; an event
without them is fetched as always. Against a scripted control plane on loopback."""

from __future__ import annotations

import base64
import json

import pytest

from owncdn.core.content.bundle import header
from owncdn.core.content.digest import digest as blob_name
from owncdn.core.content.manifest import Manifest
from owncdn.edge.releases import ReleaseStore
from owncdn.edge.releasesync import ReleaseSync
from owncdn.testing.origin import FakeOrigin, Reply


def event(number: int, files: dict[str, bytes], inline: dict[str, str] | None = None) -> dict:
    manifest = Manifest.build([(p, blob_name(d), len(d)) for p, d in files.items()])
    out = {"key": "blog", "service": "blog", "number": number, "id": manifest.id, "manifest": manifest.to_json()}
    return out if inline is None else out | {"blobs": inline}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Control:
    """``POST /v1/blobs/fetch`` over these blobs, and the acknowledgements received."""

    def __init__(self, blobs: list[bytes]) -> None:
        self.origin = FakeOrigin()
        self.blobs = {blob_name(d): d for d in blobs}
        self.asked: list[list[str]] = []
        self.acks: list[dict] = []
        self.control = ""
        self.node_id = "n1"
        self.unsent: list = []

    async def start(self) -> "Control":
        await self.origin.start()
        self.origin.route("/v1/blobs/fetch", handler=self._bundle)
        self.origin.route("/v1/nodes/n1/releases", handler=self._ack)
        self.control = self.origin.url
        return self

    def _auth(self) -> dict:  # the agent's part
        return {"Authorization": "Bearer node-token"}

    def _bundle(self, req) -> Reply:
        hashes = json.loads(req.body)["hashes"]
        self.asked.append(sorted(hashes))
        body = b"".join(header(h, len(self.blobs[h])) + self.blobs[h] for h in hashes)
        return Reply(200, body, {"Content-Type": "application/x-owncdn-bundle"}, conditional=False)

    def _ack(self, req) -> Reply:
        self.acks.append(json.loads(req.body))
        return Reply(200, b"{}", {"Content-Type": "application/json"}, conditional=False)


ONE = {"index.html": b"<h1>one</h1>", "a.css": b"a{}"}
TWO = {"index.html": b"<h1>two</h1>", "a.css": b"a{}", "b.css": b"b{}"}


@pytest.mark.parametrize("boot_id", ["boot-1", None])  # blobs flushed later (rule 7), or fsynced first
async def test_inline_blobs_are_verified_and_kept_without_a_fetch(tmp_path, boot_id):
    control = await Control([*ONE.values(), *TWO.values()]).start()
    store = ReleaseStore(tmp_path / "push", boot_id=boot_id)
    sync = ReleaseSync(store, control)
    try:
        await sync.on_event(None, None, event(1, ONE))  # no blobs inline: fetched
        await sync.wait("blog")
        assert control.asked == [sorted(blob_name(d) for d in ONE.values())]
        fetched = sync.fetched_blobs

        new = {blob_name(d): b64(d) for d in (b"<h1>two</h1>", b"b{}", b"a{}")}  # a{} is held already
        await sync.on_event(None, None, event(2, TWO, new))
        await sync.wait("blog")
        assert len(control.asked) == 1  # nothing more was fetched
        assert store.live["blog"].target.number == 2
        assert control.acks[-1] == {"service": "blog", "number": 2, "status": "serving", "reason": ""}
        for data in TWO.values():
            assert store.read_blob(blob_name(data)) == data
        assert (sync.inline_blobs, sync.fetched_blobs - fetched) == (2, 2)
        assert not list(store.partial.iterdir())
    finally:
        await sync.close()
        await control.origin.close()


async def test_an_inline_blob_that_does_not_match_its_name_is_refused_and_fetched(tmp_path, capsys):
    control = await Control(list(TWO.values())).start()
    store = ReleaseStore(tmp_path / "push")
    sync = ReleaseSync(store, control)
    extra = b"not in the release"
    inline = {
        blob_name(b"<h1>two</h1>"): b64(b"<h1>TWO</h1>"),  # other bytes of the same size
        blob_name(b"a{}"): "not base64!",
        blob_name(b"b{}"): b64(b"b{}"),  # right
        blob_name(extra): b64(extra),  # named by no file of the release
    }
    try:
        await sync.on_event(None, None, event(1, TWO, inline))
        await sync.wait("blog")
        assert control.asked == [sorted([blob_name(b"<h1>two</h1>"), blob_name(b"a{}")])]
        assert store.live["blog"].target.number == 1 and control.acks[-1]["status"] == "serving"
        for data in TWO.values():
            assert store.read_blob(blob_name(data)) == data
        assert not store.has_blob(blob_name(extra))
        assert sync.inline_blobs == 1
        assert "2 inline blob(s) did not match their names" in capsys.readouterr().err
    finally:
        await sync.close()
        await control.origin.close()


@pytest.mark.parametrize("name, size, data, kept", [
    (blob_name(b"a{}"), 3, b"a{}", True),
    (blob_name(b"a{}"), 2, b"a{}", False),  # not the size the manifest says
    (blob_name(b"a{}"), 3, b"b{}", False),  # other bytes
    ("../../etc/passwd", 3, b"a{}", False),  # not a blob name
])
def test_the_store_keeps_an_inline_blob_only_when_it_matches(tmp_path, name, size, data, kept):
    store = ReleaseStore(tmp_path / "push")
    assert store.keep_inline(name, size, data) is kept
    assert store.has_blob(name) is kept
    assert not list(store.partial.iterdir())
