"""The edge fetching small blobs in bundles (edge/releasesync.py rule 2): one
``POST /v1/blobs/fetch`` for many blobs, large ones by ``GET``; a bundle cut off midway
keeps the blobs before the cut; wrong bytes are refetched, then fail the release; a
blob the control plane lacks fails it. Against a scripted control plane on loopback."""

from __future__ import annotations

import json
import os

from owncdn.core.content.bundle import header
from owncdn.core.content.digest import digest as blob_name
from owncdn.core.content.manifest import Manifest
from owncdn.edge.releases import ReleaseStore
from owncdn.edge.releasesync import BUNDLE_BLOB, ReleaseSync
from owncdn.testing.origin import FakeOrigin, Reply


def sha(data: bytes) -> str:
    return blob_name(data)  # BLAKE3, <hex>-b3


def event(number: int, files: dict[str, bytes], service: str = "blog") -> dict:
    manifest = Manifest.build([(p, sha(d), len(d)) for p, d in files.items()])
    return {"key": service, "service": service, "number": number, "id": manifest.id, "manifest": manifest.to_json()}


class FakeAgent:
    control = ""
    node_id = "n1"

    def __init__(self) -> None:
        self.sent: list[dict] = []  # acknowledgements the control plane received
        self.unsent: list[tuple[str, dict]] = []

    def _auth(self) -> dict:
        return {"Authorization": "Bearer node-token"}

    def receive(self, req) -> Reply:
        self.sent.append(json.loads(req.body))
        return Reply(200, b"{}", {"Content-Type": "application/json"}, conditional=False)


class BundleControl:
    """``POST /v1/blobs/fetch`` and ``GET /v1/blobs/{sha}`` over these blobs; scripted
    faults: ``cut`` (bytes after which the next bundle's connection drops), ``corrupt``
    (blobs sent with a wrong first byte), ``lacking`` (answered 404 missing_blobs)."""

    def __init__(self, blobs: list[bytes]) -> None:
        self.origin = FakeOrigin()
        self.blobs = {sha(d): d for d in blobs}
        self.asked: list[list[str]] = []  # hashes of each bundle request
        self.gets: list[str] = []
        self.cut: int | None = None
        self.corrupt: set[str] = set()
        self.lacking: set[str] = set()

    async def start(self) -> "BundleControl":
        await self.origin.start()
        self.origin.route("/v1/blobs/fetch", handler=self._bundle)
        for digest in self.blobs:
            self.origin.route(f"/v1/blobs/{digest}", handler=self._get)
        return self

    def _bundle(self, req) -> Reply:
        assert req.method == "POST" and req.headers["authorization"] == "Bearer node-token"
        hashes = json.loads(req.body)["hashes"]
        self.asked.append(hashes)
        lacking = [h for h in hashes if h in self.lacking]
        if lacking:
            body = {"error": {"status": 404, "code": "missing_blobs", "message": "missing", "problems": lacking}}
            return Reply(404, json.dumps(body).encode(), {"Content-Type": "application/json"})
        out = b"".join(header(h, len(self.blobs[h])) + self._bytes(h) for h in hashes)
        cut, self.cut = self.cut, None
        return Reply(200, out, {"Content-Type": "application/x-owncdn-bundle"}, abort_after=cut, conditional=False)

    def _get(self, req) -> Reply:
        digest = req.path.rsplit("/", 1)[1]
        self.gets.append(digest)
        return Reply(200, self._bytes(digest), conditional=False)

    def _bytes(self, digest: str) -> bytes:
        data = self.blobs[digest]
        return b"X" + data[1:] if digest in self.corrupt else data


async def setup(tmp_path, blobs: list[bytes]):
    control = await BundleControl(blobs).start()
    store = ReleaseStore(tmp_path / "push")
    agent = FakeAgent()
    agent.control = control.origin.url
    control.origin.route("/v1/nodes/n1/releases", handler=agent.receive)
    return control, store, ReleaseSync(store, agent), agent


SMALL = {f"page{i}.html": f"<p>page {i}</p>".encode() * (i + 1) for i in range(40)}
BIG = bytes(range(256)) * ((BUNDLE_BLOB // 256) + 10)  # larger than BUNDLE_BLOB: fetched by GET


async def test_small_blobs_come_in_one_bundle_and_large_ones_alone(tmp_path):
    files = SMALL | {"big.bin": BIG}
    control, store, sync, agent = await setup(tmp_path, list(files.values()) + [b"<p>new</p>"])
    try:
        await sync.on_event(None, None, event(1, files))
        await sync.wait("blog")
        assert store.live["blog"].target.number == 1
        assert agent.sent == [{"service": "blog", "number": 1, "status": "serving", "reason": ""}]
        assert len(control.asked) == 1 and sorted(control.asked[0]) == sorted(sha(d) for d in SMALL.values())
        assert control.gets == [sha(BIG)]
        assert sync.fetched_blobs == len(files) and sync.fetched_bytes == sum(map(len, files.values()))
        for data in files.values():
            assert store.read_blob(sha(data)) == data

        control.asked.clear()
        control.gets.clear()
        await sync.on_event(None, None, event(2, files | {"page3.html": b"<p>new</p>"}))
        await sync.wait("blog")
        assert control.asked == [[sha(b"<p>new</p>")]] and control.gets == []  # only the changed blob
        assert store.live["blog"].target.number == 2
    finally:
        await sync.close()
        await control.origin.close()


async def test_a_bundle_cut_off_keeps_the_blobs_before_the_cut(tmp_path):
    blobs = list(SMALL.values())
    control, store, sync, agent = await setup(tmp_path, blobs)
    try:
        order = list(Manifest.build([(p, sha(d), len(d)) for p, d in SMALL.items()]).blobs)  # the order asked
        whole = sum(len(header(h, len(control.blobs[h]))) + len(control.blobs[h]) for h in order[:3])
        control.cut = whole + 70  # inside the fourth record's header or bytes
        await sync.on_event(None, None, event(1, SMALL))
        await sync.wait("blog")
        assert len(control.asked) == 2 and control.asked[0] == order
        assert control.asked[1] == order[3:]  # the three before the cut were kept
        assert store.live["blog"].target.number == 1 and agent.sent[-1]["status"] == "serving"
        for data in blobs:
            assert store.read_blob(sha(data)) == data
        assert not list(store.partial.iterdir())
        assert sorted(store.packs.packs) == [1, 2] and len(store.packs.packs[1].live) == 3  # a pack per bundle
        assert {store.held[h].pack.number for h in order[3:]} == {2}
    finally:
        await sync.close()
        await control.origin.close()


async def test_wrong_bytes_in_a_bundle_are_refetched_then_fail_the_release(tmp_path):
    one = {"index.html": b"one", "a.css": b"a{}"}
    two = {"index.html": b"two", "a.css": b"a{}", "b.css": b"b{}"}
    control, store, sync, agent = await setup(tmp_path, [b"one", b"a{}", b"two", b"b{}"])
    try:
        await sync.on_event(None, None, event(1, one))
        await sync.wait("blog")
        control.corrupt.add(sha(b"two"))
        await sync.on_event(None, None, event(2, two))
        await sync.wait("blog")
        assert store.live["blog"].target.number == 1 and "blog" not in store.pending
        assert agent.sent[-1]["status"] == "failed" and "did not match its name" in agent.sent[-1]["reason"]
        assert sum(sha(b"two") in asked for asked in control.asked) == 3
        assert not store.has_blob(sha(b"two")) and store.has_blob(sha(b"b{}"))  # the good one was kept
    finally:
        await sync.close()
        await control.origin.close()


async def test_a_blob_the_control_plane_lacks_fails_the_release(tmp_path):
    control, store, sync, agent = await setup(tmp_path, list(SMALL.values()))
    control.lacking.add(sha(SMALL["page7.html"]))
    try:
        await sync.on_event(None, None, event(1, SMALL))
        await sync.wait("blog")
        assert "blog" not in store.live
        assert agent.sent[-1]["status"] == "failed" and "has no blob" in agent.sent[-1]["reason"]
    finally:
        await sync.close()
        await control.origin.close()


async def test_without_a_bundle_endpoint_blobs_come_one_by_one(tmp_path):
    control, store, sync, agent = await setup(tmp_path, list(SMALL.values()))
    del control.origin.routes["/v1/blobs/fetch"]  # an older control plane: 404 not found
    try:
        await sync.on_event(None, None, event(1, SMALL))
        await sync.wait("blog")
        assert store.live["blog"].target.number == 1 and not sync.bundles
        assert sorted(control.gets) == sorted({sha(d) for d in SMALL.values()})
    finally:
        await sync.close()
        await control.origin.close()


async def test_a_bundle_is_made_durable_once_and_a_cancelled_fetch_still_keeps_what_was_written(tmp_path):
    """Without a boot id (releases.py rule 6 cannot hold): the pack of a bundle and its
    index records are made durable in one step, then its blobs held, also after a cancel."""
    import asyncio
    import threading

    control, _, sync, agent = await setup(tmp_path, list(SMALL.values()))
    store = sync.store = ReleaseStore(tmp_path / "durable", boot_id=None)
    commits, entered, release = [], threading.Event(), threading.Event()
    real = store.end_pack

    def slow_commit(writer):
        commits.append(writer.kept)
        entered.set()
        release.wait(10)
        return real(writer)

    store.end_pack = slow_commit
    try:
        await sync.on_event(None, None, event(1, SMALL))
        await asyncio.to_thread(entered.wait, 10)
        assert not any(store.has_blob(sha(d)) for d in SMALL.values())  # written, not yet blobs (blobhold.py rule 1)
        assert (store.packs.dir / "1.pack").stat().st_size == sum(map(len, SMALL.values()))
        assert not (store.packs.dir / "1.idx").exists()  # records only once the pack is fsynced
        sync._cancel("blog")  # e.g. a newer release arrived
        release.set()
        for _ in range(200):
            if all(store.has_blob(sha(d)) for d in SMALL.values()):
                break
            await asyncio.sleep(0.01)
        assert commits == [len(SMALL)]  # one flush for the whole bundle
        assert all(store.read_blob(sha(d)) == d for d in SMALL.values())
        assert not list(store.partial.iterdir())
        assert "blog" not in store.live and agent.sent == []
    finally:
        release.set()
        await sync.close()
        await control.origin.close()


async def test_with_a_boot_id_each_verified_blob_is_named_at_once(tmp_path, monkeypatch):
    """releases.py rule 6: nothing to flush first, so no blob waits for its bundle's end."""
    control, store, sync, agent = await setup(tmp_path, list(SMALL.values()))
    monkeypatch.setattr("owncdn.packs.PackWriter.commit", lambda self: (_ for _ in ()).throw(AssertionError("not needed")))
    order = list(Manifest.build([(p, sha(d), len(d)) for p, d in SMALL.items()]).blobs)
    control.cut = sum(len(header(h, len(control.blobs[h]))) + len(control.blobs[h]) for h in order[:5]) + 3
    try:
        await sync.on_event(None, None, event(1, SMALL))
        await sync.wait("blog")
        assert control.asked[1] == order[5:] and store.live["blog"].target.number == 1
        assert not list(store.partial.iterdir())
    finally:
        await sync.close()
        await control.origin.close()


async def test_a_bundle_fetch_reserves_the_disk_space_of_the_blobs_it_asked_for(tmp_path, monkeypatch):
    """packs Rule 7: the pack is made at the first blob with room for every blob asked."""
    from tests.test_packs_reserve import allocated, spy_reserve

    asked = spy_reserve(monkeypatch)
    control, store, sync, agent = await setup(tmp_path, list(SMALL.values()))
    try:
        await sync.on_event(None, None, event(1, SMALL))
        await sync.wait("blog")
        assert store.live["blog"].target.number == 1
        assert asked == [sum(map(len, SMALL.values()))]
        (pack,) = (tmp_path / "push" / "packs").glob("*.pack")
        assert os.path.getsize(pack) == asked[0] and allocated(pack) < asked[0] + (1 << 20)
    finally:
        await sync.close()
        await control.origin.close()
