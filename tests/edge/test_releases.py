"""The edge's release store and release sync (edge/releases.py, edge/blobhold.py, edge/releasesync.py),
against a scripted control plane on loopback (FakeOrigin): verification, resuming,
superseding, failures that keep the previous release, garbage collection."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from owncdn.core.content.digest import digest as blob_name
from owncdn.core.content.manifest import Manifest
from owncdn.edge import releases as releases_module
from owncdn.edge.releases import ReleaseStore, Target
from owncdn.edge.releasesync import ReleaseSync, retry_reason, trouble_kind
from owncdn.testing.origin import FakeOrigin, Reply


def sha(data: bytes) -> str:
    return blob_name(data)  # BLAKE3, <hex>-b3


def old(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # a blob pushed before BLAKE3


def event(number: int, files: dict[str, bytes], service: str = "blog", name=sha) -> dict:
    manifest = Manifest.build([(p, name(d), len(d)) for p, d in files.items()])
    return {"key": service, "service": service, "number": number, "id": manifest.id,
            "manifest": manifest.to_json()}


class FakeAgent:
    """What ReleaseSync uses of the sync agent: control URL, node id, token, unsent
    reports; ``sent``: the acknowledgements the control plane received."""

    control = ""
    node_id = "n1"

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.unsent: list[tuple[str, dict]] = []
        self.refuse = 0  # acknowledgements to answer 503

    def _auth(self) -> dict:
        return {"Authorization": "Bearer node-token"}

    def receive(self, req) -> Reply:
        assert req.method == "POST" and req.headers["authorization"] == "Bearer node-token"
        if self.refuse:
            self.refuse -= 1
            return Reply(503, b"busy")
        self.sent.append(json.loads(req.body))
        return Reply(200, b"{}", {"Content-Type": "application/json"}, conditional=False)


class FakeControl:
    """GET /v1/blobs/{sha}: a scripted control plane on loopback (FakeOrigin) holding these
    blobs, honouring Range unless told not to."""

    def __init__(self, blobs: dict[str, bytes], names=(sha,)) -> None:
        self.origin = FakeOrigin()
        self.blobs = {name(d): d for d in blobs.values() for name in names}
        self.requests: list[tuple[str, str | None]] = []
        self.corrupt: set[str] = set()
        self.ignore_range = False
        self.fail_next = 0
        self.hold: asyncio.Event | None = None

    async def start(self) -> "FakeControl":
        await self.origin.start()
        for digest in self.blobs:
            self.origin.route(f"/v1/blobs/{digest}", handler=self._reply)
        return self

    def _reply(self, req) -> Reply:
        assert req.headers["authorization"] == "Bearer node-token"
        digest = req.path.rsplit("/", 1)[1]
        self.requests.append((digest, req.headers.get("range")))
        if self.fail_next:
            self.fail_next -= 1
            return Reply(503, b"busy", hold=self.hold)
        data = self.blobs[digest]
        if digest in self.corrupt:
            data = b"X" + data[1:]
        rng = req.headers.get("range")
        if rng and not self.ignore_range:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            return Reply(206, data[start:], hold=self.hold, conditional=False)
        return Reply(200, data, hold=self.hold, conditional=False)


async def make_sync(tmp_path, control: FakeControl, **store_options) -> tuple[ReleaseStore, ReleaseSync, FakeAgent]:
    if control.origin.server is None:
        await control.start()
    store = ReleaseStore(tmp_path / "push", **store_options)
    agent = FakeAgent()
    agent.control = control.origin.url
    control.origin.route("/v1/nodes/n1/releases", handler=agent.receive)
    sync = ReleaseSync(store, agent)
    return store, sync, agent


SITE1 = {"index.html": b"one", "style.css": b"body{}", "big.bin": bytes(range(256)) * 4000}
SITE2 = {"index.html": b"two", "style.css": b"body{}", "big.bin": bytes(range(256)) * 4000}


async def test_fetch_verify_switch_and_acknowledge(tmp_path):
    control = FakeControl(SITE1 | {"x": SITE2["index.html"]})
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    assert store.live["blog"].target.number == 1 and not store.pending
    assert agent.sent == [{"service": "blog", "number": 1, "status": "serving", "reason": ""}]
    assert sync.fetched_blobs == 3 and sync.fetched_bytes == sum(map(len, SITE1.values()))
    for data in SITE1.values():
        assert store.read_blob(sha(data)) == data
    saved = json.loads((store.releases / "blog.json").read_text())
    assert saved["number"] == 1 and saved["manifest"] == event(1, SITE1)["manifest"]

    control.requests.clear()
    await sync.on_event(None, None, event(2, SITE2))
    await sync.wait("blog")
    assert [r[0] for r in control.requests] == [sha(b"two")]  # only the changed blob
    assert store.live["blog"].target.number == 2 and store.live["blog"].previous.number == 1
    await sync.close()
    await control.origin.close()


async def test_a_release_is_warmed_a_little_after_its_acknowledgement(tmp_path, monkeypatch):
    from owncdn.edge import releasesync

    monkeypatch.setattr(releasesync, "WARM_DELAY", 0.2)
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control)
    loop = asyncio.get_running_loop()
    warmed: list[tuple[str, float, int]] = []

    async def on_live(service: str) -> None:
        warmed.append((service, loop.time(), len(agent.sent)))

    sync.on_live = on_live
    await sync.on_event(None, None, event(1, SITE1))
    for _ in range(100):  # acknowledged first...
        if agent.sent:
            break
        await asyncio.sleep(0.01)
    acked = loop.time()
    assert agent.sent and warmed == []
    await sync.wait("blog")  # ...warmed WARM_DELAY later (releasesync Rule 4)
    assert len(warmed) == 1 and warmed[0][0] == "blog" and warmed[0][2] == 1
    assert warmed[0][1] - acked >= 0.15
    await sync.close()
    await control.origin.close()


async def test_the_same_release_again_is_only_acknowledged(tmp_path):
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    control.requests.clear()
    await sync.on_event(None, None, event(1, SITE1))   # resent after a reconnect
    await sync.wait("blog")
    assert control.requests == [] and [a["status"] for a in agent.sent] == ["serving", "serving"]
    await sync.close()
    await control.origin.close()


async def test_an_acknowledgement_that_cannot_be_sent_is_queued_for_the_agent(tmp_path):
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control)
    agent.refuse = 1
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    assert store.live["blog"].target.number == 1 and agent.sent == []
    assert agent.unsent == [("/v1/nodes/n1/releases", {"service": "blog", "number": 1, "status": "serving", "reason": ""})]
    await sync.on_event(None, None, event(1, SITE1))  # resent after a reconnect: acknowledged again
    assert [a["status"] for a in agent.sent] == ["serving"] and sync.acked["blog"] == (1, "serving")
    await sync.close()
    await control.origin.close()


async def test_a_partial_blob_is_resumed_with_range(tmp_path):
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control)
    big = SITE1["big.bin"]
    store.part_path(sha(big)).write_bytes(big[:300_000])   # left by an interrupted fetch
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    assert (sha(big), "bytes=300000-") in control.requests
    assert store.read_blob(sha(big)) == big
    assert sync.fetched_bytes == len(big) - 300_000 + len(b"one") + len(b"body{}")
    await sync.close()
    await control.origin.close()


async def test_a_server_ignoring_range_starts_the_blob_over(tmp_path):
    control = FakeControl(SITE1)
    control.ignore_range = True
    store, sync, agent = await make_sync(tmp_path, control)
    big = SITE1["big.bin"]
    store.part_path(sha(big)).write_bytes(big[:1000])
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    assert store.read_blob(sha(big)) == big
    await sync.close()
    await control.origin.close()


async def test_a_corrupt_partial_file_is_detected_and_refetched(tmp_path):
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control)
    big = SITE1["big.bin"]
    store.part_path(sha(big)).write_bytes(b"garbage" * 100)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    assert store.read_blob(sha(big)) == big
    assert agent.sent[-1]["status"] == "serving"
    await sync.close()
    await control.origin.close()


async def test_wrong_bytes_fail_the_release_and_the_previous_keeps_serving(tmp_path):
    control = FakeControl(SITE1 | {"i2": b"two"})
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    control.corrupt.add(sha(b"two"))
    await sync.on_event(None, None, event(2, SITE2))
    await sync.wait("blog")
    assert store.live["blog"].target.number == 1 and "blog" not in store.pending
    assert agent.sent[-1]["status"] == "failed" and "did not match its name" in agent.sent[-1]["reason"]
    assert [r[0] for r in control.requests].count(sha(b"two")) == 3
    assert not store.has_blob(sha(b"two"))
    await sync.close()
    await control.origin.close()


async def test_a_release_pushed_before_blake3_is_fetched_served_and_rolled_back_to(tmp_path):
    """A release named by SHA-256 next to BLAKE3 ones: each blob is verified with the hash
    its name says (a wrong body fails either kind), and rolling back fetches nothing."""
    control = FakeControl(SITE1 | {"i2": SITE2["index.html"], "bad": b"bad"}, names=(sha, old))
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1, name=old))
    await sync.wait("blog")
    await sync.on_event(None, None, event(2, SITE2))
    await sync.wait("blog")
    assert [a["status"] for a in agent.sent] == ["serving", "serving"]
    assert store.live["blog"].previous.number == 1
    assert store.read_blob(old(b"one")) == b"one" and store.read_blob(sha(b"two")) == b"two"
    control.requests.clear()
    await sync.on_event(None, None, event(3, SITE1, name=old))  # a rollback: release 1's manifest again
    await sync.wait("blog")
    assert store.live["blog"].target.manifest == Target.from_event(event(1, SITE1, name=old)).manifest
    assert control.requests == [] and agent.sent[-1]["status"] == "serving"
    store.collect()
    assert store.held.keys() == {old(d) for d in SITE1.values()} | {sha(d) for d in SITE2.values()}  # current, previous
    for name in (old, sha):
        control.corrupt.add(name(b"bad"))
        await sync.on_event(None, None, event(4 if name is old else 5, {"index.html": b"bad"}, name=name))
        await sync.wait("blog")
        assert agent.sent[-1]["status"] == "failed" and "did not match its name" in agent.sent[-1]["reason"]
        assert store.live["blog"].target.number == 3 and not store.has_blob(name(b"bad"))
    await sync.close()
    await control.origin.close()


async def test_a_blob_the_control_plane_lacks_fails_the_release(tmp_path):
    control = FakeControl({"index.html": b"one"})
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    assert "blog" not in store.live
    assert agent.sent[-1]["status"] == "failed" and "has no blob" in agent.sent[-1]["reason"]
    await sync.close()
    await control.origin.close()


async def test_network_errors_are_retried(tmp_path):
    control = FakeControl(SITE1)
    control.fail_next = 2
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    assert store.live["blog"].target.number == 1 and agent.sent[-1]["status"] == "serving"
    await sync.close()
    await control.origin.close()


async def test_network_trouble_is_reported_as_retrying_with_its_reason(tmp_path):
    """releasesync Rule 3: the control plane hears why the edge does not serve it yet."""
    control = FakeControl(SITE1)
    control.fail_next = 3
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    statuses = [a["status"] for a in agent.sent]
    assert statuses[0] == "retrying" and statuses[-1] == "serving"
    assert "blobs not fetched" in agent.sent[0]["reason"] and agent.sent[0]["number"] == 1
    assert statuses.count("retrying") == 1   # the same kind of trouble three times: reported once
    await sync.close()
    await control.origin.close()


async def test_a_full_disk_is_reported_as_this_edge_s_and_retried_until_there_is_room(tmp_path, monkeypatch):
    from owncdn.edge import blobdownload

    full = {"writes": 2}
    real_write = os.write

    def write(fd, data):
        if full["writes"]:
            full["writes"] -= 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(blobdownload.os, "write", write)
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    retrying = [a for a in agent.sent if a["status"] == "retrying"]
    assert retrying and retrying[0]["reason"].startswith(f"no space left on this edge's disk ({store.root}: ")
    assert agent.sent[-1]["status"] == "serving" and store.live["blog"].target.number == 1
    assert not agent.unsent                      # the reports were sent, none queued
    await sync.close()
    await control.origin.close()


async def test_no_space_first_drops_what_only_the_release_switched_from_named(tmp_path, monkeypatch):
    """releasesync Rule 3: the newest release before a rollback copy of the one before."""
    from owncdn.edge import blobdownload

    one, two, three = (bytes([n]) * 300_000 for n in (1, 2, 3))
    control = FakeControl({"three.bin": three})
    store, sync, agent = await make_sync(tmp_path, control)
    store.install("blog", 1, {"one.bin": one})
    store.install("blog", 2, {"two.bin": two})       # live 2; 1 kept as the rollback copy
    real_write = os.write

    def write(fd, data):   # a disk with room for the new blob only once the old one is gone
        if store.has_blob(sha(one)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(blobdownload.os, "write", write)
    await sync.on_event(None, None, event(3, {"three.bin": three}))
    await asyncio.wait_for(sync.wait("blog"), 30)   # without room made: retried for ever
    assert store.live["blog"].target.number == 3 and store.read_blob(sha(three)) == three
    assert not store.has_blob(sha(one)) and store.has_blob(sha(two))   # 2 is now the one switched from
    assert [a["status"] for a in agent.sent] == ["serving"]              # room was made before any retry
    await sync.close()
    await control.origin.close()


async def test_a_retrying_report_that_cannot_be_sent_is_not_queued(tmp_path):
    control = FakeControl(SITE1)
    control.fail_next = 1
    store, sync, agent = await make_sync(tmp_path, control)
    agent.refuse = 1                              # the retrying report is answered 503
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    assert [a["status"] for a in agent.sent] == ["serving"] and agent.unsent == []
    await sync.close()
    await control.origin.close()


@pytest.mark.parametrize("errors, expected", [
    ([OSError(errno.ENOSPC, "No space left on device")],
     "no space left on this edge's disk (/s/push: No space left on device); 1 blob not fetched"),
    ([ConnectionResetError(104, "reset"), OSError(errno.EDQUOT, "Disk quota exceeded")],
     "no space left on this edge's disk (/s/push: Disk quota exceeded); 2 blobs not fetched"),
    ([OSError(errno.EROFS, "Read-only file system")],
     "cannot write to this edge's disk (/s/push: Read-only file system); 1 blob not fetched"),
    ([OSError(errno.EIO, "Input/output error")],
     "cannot write to this edge's disk (/s/push: Input/output error); 1 blob not fetched"),
    ([ConnectionRefusedError(111, "Connection refused")] * 3, "3 blobs not fetched ([Errno 111] Connection refused)"),
    ([TimeoutError()], "1 blob not fetched (TimeoutError)"),
])
def test_retry_reason_names_the_edge_s_disk_first(errors, expected):
    assert retry_reason(errors, Path("/s/push")) == expected


@pytest.mark.parametrize("errors, kind", [
    ([OSError(errno.ENOSPC, "full")], "disk 28"),
    ([ConnectionResetError(104, "reset"), OSError(errno.ENOSPC, "full")], "disk 28"),
    ([ConnectionRefusedError(111, "refused")] * 5, "ConnectionRefusedError"),
    ([ConnectionRefusedError(111, "refused")] * 2, "ConnectionRefusedError"),   # fewer left: the same trouble
    ([TimeoutError()], "TimeoutError"),
])
def test_the_trouble_reported_changes_with_its_kind_not_its_count(errors, kind):
    assert trouble_kind(errors) == kind


async def test_a_newer_release_supersedes_an_unfinished_one(tmp_path):
    control = FakeControl(SITE1 | {"i2": b"two"})
    control.hold = asyncio.Event()
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    first = sync.tasks["blog"][1]
    await sync.on_event(None, None, event(2, SITE2))
    assert first.cancelled() or first.done() or first.cancelling()
    assert store.pending["blog"].number == 2
    control.hold.set()
    await sync.wait("blog")
    assert store.live["blog"].target.number == 2
    assert [a["number"] for a in agent.sent] == [2]
    await sync.close()
    await control.origin.close()


async def test_pending_targets_resume_after_a_restart(tmp_path):
    control = FakeControl(SITE1)
    control.hold = asyncio.Event()
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.close()                                     # the edge stops midway
    assert "blog" not in store.live
    store2, sync2, agent2 = await make_sync(tmp_path, control)  # and starts again
    assert store2.pending["blog"].number == 1
    control.hold.set()
    sync2.resume()
    await sync2.wait("blog")
    assert store2.live["blog"].target.number == 1 and not (store2.releases / "blog.pending.json").exists()
    await sync2.close()
    await control.origin.close()


async def test_a_deleted_release_stops_serving(tmp_path):
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    await sync.on_event(None, None, {"key": "blog", "deleted": True})
    assert "blog" not in store.live and not (store.releases / "blog.json").exists()
    await sync.close()
    await control.origin.close()


async def test_blobs_lost_on_disk_are_fetched_again_at_start(tmp_path):
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control)
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    await sync.close()
    store.blob_path(sha(b"one")).unlink()
    store2, sync2, agent2 = await make_sync(tmp_path, control)
    assert store2.pending["blog"].number == 1 and store2.live["blog"].target.number == 1
    sync2.resume()
    await sync2.wait("blog")
    assert store2.has_blob(sha(b"one")) and not store2.pending and store2.fetched_blobs == 1
    await sync2.close()
    await control.origin.close()


def test_switch_refuses_a_release_with_missing_blobs(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    store.install("blog", 1, {"index.html": b"one"})
    manifest = Manifest.build([("index.html", sha(b"two"), 3)])
    with pytest.raises(ValueError, match="lacks 1 blobs"):
        store.switch(Target("blog", 2, manifest.id, manifest))
    assert store.live["blog"].target.number == 1
    assert ReleaseStore(tmp_path / "push").live["blog"].target.number == 1


def _release(number: int, files: dict[str, bytes]) -> Target:
    manifest = Manifest.build([(p, sha(d), len(d)) for p, d in files.items()])
    return Target("blog", number, manifest.id, manifest)


def test_missing_remembers_and_sees_blobs_dropped_since(tmp_path):
    """releases.py rule 9: a later question looks at what was missing and what was dropped."""
    store = ReleaseStore(tmp_path / "push")
    target = _release(1, {"a": b"a", "b": b"b", "c": b"c"})
    store.put_blob(b"a")
    assert list(store.missing(target)) == [sha(b"b"), sha(b"c")]
    store.put_blob(b"b")
    assert list(store.missing(target)) == [sha(b"c")]
    store.collect(keep={sha(b"b")})  # drops a, which the target names and had
    assert sorted(store.missing(target)) == sorted([sha(b"a"), sha(b"c")])
    store.put_blob(b"a")
    store.put_blob(b"c")
    assert store.missing(target) == {}
    store.collect(keep=set())
    assert sorted(store.missing(target)) == sorted(sha(d) for d in (b"a", b"b", b"c"))


def test_missing_of_a_release_made_of_changes_asks_only_about_them(tmp_path, monkeypatch):
    store = ReleaseStore(tmp_path / "push")
    base = store.install("blog", 1, {"a": b"a", "b": b"b"}).target
    assert store.missing(base) == {}  # as asked at its switch
    changed = Target.from_changes(event(2, {"a": b"a", "b": b"B", "c": b"c"}) | {
        "changes": {"b": {"blob": sha(b"B"), "size": 1}, "c": {"blob": sha(b"c"), "size": 1}}}, base)
    store.put_blob(b"c")
    monkeypatch.setattr(store, "_all_missing", lambda target: pytest.fail("every blob looked at"))
    assert store.missing(changed) == {sha(b"B"): 1}
    assert changed._base is None  # no chain of releases kept alive


@pytest.mark.parametrize("dropped, expected", [
    (b"a", {sha(b"a"): 1, sha(b"B"): 1}),  # a blob of the base lost: every blob looked at
    (b"x", {sha(b"B"): 1}),                # a blob the base does not name: only the changes
])
def test_missing_of_changes_after_drops(tmp_path, dropped, expected):
    store = ReleaseStore(tmp_path / "push")
    base = store.install("blog", 1, {"a": b"a", "b": b"b"}).target
    store.put_blob(b"x")
    assert store.missing(base) == {}
    store.collect(keep={sha(d) for d in (b"a", b"b", b"x")} - {sha(dropped)})
    changed = Target.from_changes(event(2, {"a": b"a", "b": b"B"}) | {
        "changes": {"b": {"blob": sha(b"B"), "size": 1}}}, base)
    assert store.missing(changed) == expected


def test_a_rollback_takes_what_is_known_of_its_release(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    one = store.install("blog", 1, {"a": b"a"}).target
    assert store.missing(one) == {}
    back = Target.held_as(event(3, {"a": b"a"}), one)
    assert back._unheld == one._unheld and store.missing(back) == {}


def test_the_drop_log_is_bounded_and_says_when_it_does_not_reach_back(tmp_path, monkeypatch):
    from owncdn.edge import blobhold
    monkeypatch.setattr(blobhold, "DROP_LOG", 2)
    store = ReleaseStore(tmp_path / "push")
    target = _release(1, {"a": b"a"})
    store.put_blob(b"a")
    assert store.missing(target) == {}
    for data in (b"1", b"2", b"3", b"4", b"5"):
        store.put_blob(data)
        store.collect(keep={sha(b"a")})
    assert store.drops == 5 and store.dropped_since(0) is None and store.dropped_since(4) == [sha(b"5")]
    store.collect(keep=set())
    assert store.missing(target) == {sha(b"a"): 1}  # the log no longer reaches back: every blob looked at


def test_garbage_collection_keeps_current_previous_and_pending(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    store.install("blog", 1, {"index.html": b"one", "same.txt": b"same"})
    store.install("blog", 2, {"index.html": b"two", "same.txt": b"same"})
    store.install("blog", 3, {"index.html": b"three", "same.txt": b"same"})
    store.install("docs", 1, {"index.html": b"docs"})
    store.part_path(sha(b"stray")).write_bytes(b"str")
    pending = Manifest.build([("a", sha(b"pending"), 7)])
    store.set_pending(Target("blog", 4, pending.id, pending))
    store.part_path(sha(b"pending")).write_bytes(b"pen")
    files, size = store.collect()
    assert (files, size) == (2, len(b"one") + 3)
    assert {p.name for p in store.blobs.glob("*/*")} == {sha(b"two"), sha(b"three"), sha(b"same"), sha(b"docs")}
    assert [p.name for p in store.partial.glob("*.part")] == [f"{sha(b'pending')}.part"]


def test_garbage_collection_finds_the_blobs_without_listing_them(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    store.install("blog", 1, {"a": b"one"})
    store.install("blog", 2, {"a": b"two"})
    store.install("blog", 3, {"a": b"three"})
    assert store.collect() == (1, 3) and not store.blob_path(sha(b"one")).exists()
    assert store.held.keys() == {sha(b"two"), sha(b"three")}
    again = ReleaseStore(tmp_path / "push")  # a restart reads what is on disk
    assert again.held.keys() == {sha(b"two"), sha(b"three")} and again.collect() == (0, 0)


def test_a_switch_hands_the_bodies_of_blobs_still_named_to_the_new_release(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    old = store.install("blog", 1, {"same.css": b"same", "a.html": b"one", "big.bin": b"big"})
    disk = object()  # what edge/static.py keeps for a large blob (an open, mapped file)
    old.bodies.update({sha(b"same"): b"same", sha(b"one"): b"one", sha(b"big"): disk})
    old.small_bytes, old.open_blobs = 7, 1
    new = store.install("blog", 2, {"same.css": b"same", "a.html": b"two", "big.bin": b"big"})
    assert new.bodies == {sha(b"same"): b"same", sha(b"big"): disk}
    assert (new.small_bytes, new.open_blobs) == (4, 1)
    assert store.install("blog", 3, {"other": b"other"}).bodies == {}


def test_a_release_made_of_changes_leaves_the_bodies_of_its_changed_files_behind(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    old = store.install("blog", 1, {"same.css": b"same", "a.html": b"one", "b.html": b"b"})
    old.bodies.update({sha(b"same"): b"same", sha(b"one"): b"one", sha(b"b"): b"b"})
    old.small_bytes = 8
    new = Target.from_changes(event(2, {"same.css": b"same", "a.html": b"two", "b.html": b"b"}) | {
        "changes": {"a.html": {"blob": sha(b"two"), "size": 3}}}, old.target)
    store.put_blob(b"two")
    live = store.switch(new)
    assert live.bodies == {sha(b"same"): b"same", sha(b"b"): b"b"} and live.small_bytes == 5
    assert new._blobs is None  # no set of every blob made for it


def test_a_writer_file_cut_off_by_a_crash_is_removed_at_start_and_resumable_fetches_stay(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    resumable = store.part_path(sha(b"big"))
    resumable.write_bytes(b"bi")
    cut = store.partial / f"{sha(b'small')}.140234.part"
    cut.write_bytes(b"sma")
    ReleaseStore(tmp_path / "push")
    assert resumable.read_bytes() == b"bi" and not cut.exists()


def packed(store: ReleaseStore, blobs: list[bytes]) -> None:
    """These blobs in one pack, as a bundle fetch writes them (bundlefetch.py)."""
    writer = store.pack_writer()
    for data in blobs:
        writer.begin()
        writer.write(memoryview(data))
        store.keep_packed(writer, sha(data))
    store.end_pack(writer)


def test_packed_blobs_are_held_only_once_committed_and_a_failed_commit_holds_none(tmp_path, monkeypatch):
    store = ReleaseStore(tmp_path / "push", boot_id=None)  # no boot id: every commit is flushed (blobhold.py rule 1)
    writer = store.pack_writer()
    for data in (b"a", b"c"):
        writer.begin()
        writer.write(memoryview(data))
        store.keep_packed(writer, sha(data))
    assert not store.has_blob(sha(b"a")) and not os.path.exists(writer.pack.index)
    store.end_pack(writer)
    assert store.has_blob(sha(b"a")) and store.read_blob(sha(b"c")) == b"c"
    assert list(store.partial.iterdir()) == []

    def broken(path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("owncdn.packs.fsync_dir", broken)
    with pytest.raises(OSError):
        packed(store, [b"d"])
    assert not store.has_blob(sha(b"d")) and sorted(store.packs.packs) == [1]
    assert sorted(p.name for p in store.packs.dir.iterdir()) == ["1.idx", "1.pack"]


# -- durability without waiting (releases.py rule 6, releasesync.py rule 7) --------------------

def saved(store: ReleaseStore, service: str = "blog") -> dict:
    """The release file as a restart reads it: with its stamp, when the stamp is its own (Rule 7)."""
    data = json.loads((store.releases / f"{service}.json").read_text())
    try:
        stamp = json.loads((store.releases / f"{service}.stamp.json").read_text())
    except FileNotFoundError:
        return data
    return data | {k: stamp[k] for k in ("switched_at", "unflushed")} if stamp["file"] == data["file"] else data


def test_with_a_boot_id_blobs_are_not_flushed_before_a_switch_but_in_the_background(tmp_path, monkeypatch):
    def broken(*args):
        raise AssertionError("flushed while fetching")

    monkeypatch.setattr("owncdn.packs.fsync_dir", broken)
    monkeypatch.setattr("owncdn.edge.blobhold.sync_many", broken)
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    assert json.loads((store.root / "boot.json").read_text()) == {"boot_id": "boot-a"}
    packed(store, [b"a"])
    store.install("blog", 1, {"index.html": b"a", "b.html": b"b"})
    assert saved(store)["unflushed"] is not None and store.unflushed() == 1
    began = store.flush()
    store.install("docs", 1, {"index.html": b"d"})  # switched after the flush began: not marked
    assert store.mark_flushed(began) == 1
    assert saved(store)["unflushed"] is None and saved(store, "docs")["unflushed"] is not None
    assert store.unflushed() == 1


def test_a_killed_process_restarts_in_the_same_boot_without_hashing_anything(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one"})
    again = ReleaseStore(tmp_path / "push", boot_id="boot-a")  # the page cache kept what was written
    assert again.reverified == 0 and again.live["blog"].target.number == 1 and not again.pending
    assert again.unflushed() == 1  # still to be flushed by this process (releasesync.py rule 7)


def test_after_a_reboot_blobs_of_flushed_releases_are_trusted_and_strays_removed(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one", "a.css": b"a"})
    store.mark_flushed(store.flush())
    stray = store.put_blob(b"prefetched, never switched")
    store.part_path(sha(b"big")).write_bytes(b"bi")
    after = ReleaseStore(tmp_path / "push", boot_id="boot-b")
    assert after.reverified == 0 and not after.pending and after.live["blog"].target.number == 1
    assert not after.has_blob(stray) and not after.blob_path(stray).exists()
    assert not list(after.partial.iterdir())
    assert json.loads((after.root / "boot.json").read_text()) == {"boot_id": "boot-b"}


async def test_after_a_reboot_a_corrupt_unflushed_blob_is_deleted_and_fetched_again(tmp_path):
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control, boot_id="boot-a")
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    await sync.close()  # before its background flush: the OS crashed
    assert saved(store)["unflushed"] is not None
    store.blob_path(sha(b"one")).write_bytes(b"on\0")  # what the disk held after the crash

    store2 = ReleaseStore(tmp_path / "push", boot_id="boot-b")
    assert store2.reverified == len(SITE1)  # every blob of the unflushed release hashed again
    assert not store2.blob_path(sha(b"one")).exists() and not store2.has_blob(sha(b"one"))
    assert store2.has_blob(sha(b"body{}"))
    assert store2.pending["blog"].number == 1  # fetched again (rule 3); the file answers 503 meanwhile
    assert saved(store2)["unflushed"] is None  # what is left was read from disk
    control.requests.clear()
    sync2 = ReleaseSync(store2, agent)
    sync2.resume()
    await sync2.wait("blog")
    assert [r[0] for r in control.requests] == [sha(b"one")]
    assert store2.read_blob(sha(b"one")) == b"one" and not store2.pending
    await sync2.close()
    await control.origin.close()


async def test_a_switch_is_flushed_in_the_background_shortly_after(tmp_path, monkeypatch):
    monkeypatch.setattr("owncdn.edge.releasesync.FLUSH_DELAY", 0.0)
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control, boot_id="boot-a")
    await sync.on_event(None, None, event(1, SITE1))
    await sync.wait("blog")
    assert agent.sent[-1]["status"] == "serving"
    for _ in range(200):
        if not store.unflushed():
            break
        await asyncio.sleep(0.01)
    assert saved(store)["unflushed"] is None and store.unflushed() == 0
    after = ReleaseStore(tmp_path / "push", boot_id="boot-b")
    assert after.reverified == 0 and not after.pending
    await sync.close()
    await control.origin.close()


# -- the release file written ahead (releases.py rule 2, releasesync.py rule 1) ------------------

def test_the_release_file_is_written_ahead_and_the_switch_only_renames_it(tmp_path, monkeypatch):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one"})
    store.put_blob(b"two")
    manifest = Manifest.build([("index.html", sha(b"two"), 3)])
    target = Target("blog", 2, manifest.id, manifest)
    prepared = store.begin_pending(target)
    assert store.pending["blog"] is target and not (store.releases / "blog.pending.json").exists()
    assert store.write_pending(prepared)
    ahead = store.releases / "blog.pending.json"
    inode = ahead.stat().st_ino
    assert json.loads(ahead.read_text())["previous"]["number"] == 1  # the whole release file
    assert ReleaseStore(tmp_path / "push", boot_id="boot-a").pending["blog"].number == 2  # resumed after a restart

    monkeypatch.setattr("owncdn.edge.releases.write_json", None)  # nothing encoded or written now
    live = store.switch(target)
    assert (store.releases / "blog.json").stat().st_ino == inode and not ahead.exists()
    assert live.previous.number == 1 and not store.pending and not store.prepared
    assert saved(store)["number"] == 2 and saved(store)["unflushed"] is not None
    again = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    assert again.live["blog"].target.number == 2 and again.live["blog"].previous.number == 1 and not again.pending


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("boot_id", ["boot-a", None])  # flushed in the background, or fsynced first
def test_switched_at_is_the_time_of_the_switch_also_for_a_file_written_ahead(tmp_path, boot_id):
    clock = Clock(1000.0)
    store = ReleaseStore(tmp_path / "push", clock=clock, boot_id=boot_id)
    store.put_blob(b"one")
    manifest = Manifest.build([("index.html", sha(b"one"), 3)])
    target = Target("blog", 1, manifest.id, manifest)
    assert store.write_pending(store.begin_pending(target))  # the fetch begins
    clock.now = 1042.5
    live = store.switch(target)
    assert live.switched_at == live.released_at == 1042.5 and live.ahead and store.ahead() == 1
    assert saved(store)["switched_at"] == 1000.0  # the file written ahead, renamed: rewritten later
    assert store.mark_flushed(time.monotonic()) == 1  # releasesync.py rule 7, after the acknowledgement
    assert saved(store)["switched_at"] == 1042.5 and not live.ahead and store.ahead() == 0
    again = ReleaseStore(tmp_path / "push", clock=clock, boot_id=boot_id)
    assert again.live["blog"].switched_at == again.live["blog"].released_at == 1042.5


async def test_the_sync_gives_a_file_written_ahead_its_switch_time_after_the_acknowledgement(tmp_path, monkeypatch):
    monkeypatch.setattr("owncdn.edge.releasesync.FLUSH_DELAY", 0.0)
    control = FakeControl(SITE1)
    store, sync, agent = await make_sync(tmp_path, control, boot_id=None)  # no background flush
    clock = store.clock = Clock(1000.0)
    hold = control.hold = asyncio.Event()  # the blobs come once the clock moved on
    await sync.on_event(None, None, event(1, SITE1))
    for _ in range(200):
        if (store.releases / "blog.pending.json").exists():
            break
        await asyncio.sleep(0.01)
    clock.now = 1007.0
    hold.set()
    await sync.wait("blog")
    assert agent.sent[-1]["status"] == "serving" and store.live["blog"].switched_at == 1007.0
    for _ in range(200):
        if not store.ahead():
            break
        await asyncio.sleep(0.01)
    assert saved(store)["switched_at"] == 1007.0
    await sync.close()
    await control.origin.close()


def switch_ahead(store: ReleaseStore, number: int, data: bytes) -> Target:
    store.put_blob(data)
    manifest = Manifest.build([("index.html", sha(data), len(data))])
    target = Target("blog", number, manifest.id, manifest)
    assert store.write_pending(store.begin_pending(target))
    store.switch(target)
    return target


@pytest.mark.parametrize("boot_id", [None, "boot-a"])
def test_the_switch_of_a_file_written_ahead_fsyncs_its_directory(tmp_path, monkeypatch, boot_id):
    fsynced = []
    monkeypatch.setattr(releases_module, "fsync_dir", fsynced.append)
    store = ReleaseStore(tmp_path / "push", boot_id=boot_id)
    store.install("blog", 1, {"index.html": b"one"})
    fsynced.clear()
    switch_ahead(store, 2, b"two")
    assert fsynced == [store.releases] and saved(store)["number"] == 2


def test_a_file_begun_for_a_superseded_or_cleared_target_never_becomes_the_pending_one(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    m1 = Manifest.build([("a", sha(b"one"), 3)])
    m2 = Manifest.build([("a", sha(b"two"), 3)])
    first = store.begin_pending(Target("blog", 1, m1.id, m1))
    second = store.begin_pending(Target("blog", 2, m2.id, m2))  # a newer event meanwhile
    assert store.write_pending(second)
    assert not store.write_pending(first)  # the cancelled fetch's thread ends later
    assert json.loads((store.releases / "blog.pending.json").read_text())["number"] == 2
    store.clear_pending("blog")  # e.g. the release failed
    assert not store.write_pending(second) and not (store.releases / "blog.pending.json").exists()
    assert list(store.releases.iterdir()) == []  # no temp file left behind


def test_a_file_written_ahead_naming_another_previous_release_is_written_again(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    store.install("blog", 1, {"index.html": b"one"})
    store.put_blob(b"three")
    manifest = Manifest.build([("index.html", sha(b"three"), 5)])
    target = Target("blog", 3, manifest.id, manifest)
    assert store.write_pending(store.begin_pending(target))  # names release 1 as the previous one
    store.install("blog", 2, {"index.html": b"two"})  # the live release changed meanwhile
    store.switch(target)
    assert saved(store)["number"] == 3 and saved(store)["previous"]["number"] == 2
    assert store.live["blog"].previous.number == 2 and not (store.releases / "blog.pending.json").exists()


def test_a_leftover_temp_file_is_removed_at_start(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    (store.releases / "blog.pending.7.tmp").write_bytes(b'{"cut off')
    assert list(ReleaseStore(tmp_path / "push").releases.iterdir()) == []


async def test_a_release_is_switched_without_waiting_for_the_end_of_its_bundle(tmp_path):
    """releasesync.py rule 2 / bundlefetch.py rule 8: every blob came; the body's end never does."""
    from owncdn.core.content.bundle import header

    files = {"index.html": b"one", "style.css": b"body{}"}
    records = b"".join(header(sha(d), len(d)) + d for d in files.values())
    control = FakeControl({})
    await control.start()
    control.origin.route("/v1/blobs/fetch", handler=lambda req: Reply(
        200, records, {"Content-Type": "application/x-owncdn-bundle", "Content-Length": str(len(records) + 10)},
        conditional=False))
    store, sync, agent = await make_sync(tmp_path, control, boot_id="boot-a")
    await sync.on_event(None, None, event(1, files))
    await asyncio.wait_for(sync.wait("blog"), 10)
    assert store.live["blog"].target.number == 1 and agent.sent[-1]["status"] == "serving"
    assert sync.fetched_blobs == 2 and not control.requests  # no GET: they came in the bundle
    await control.origin.close()  # the thread still reading the body ends
    await sync.close()


def test_a_switch_whose_file_written_ahead_is_gone_writes_it(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    store.put_blob(b"one")
    manifest = Manifest.build([("index.html", sha(b"one"), 3)])
    target = Target("blog", 1, manifest.id, manifest)
    assert store.write_pending(store.begin_pending(target))
    (store.releases / "blog.pending.json").unlink()
    store.switch(target)
    assert saved(store)["number"] == 1 and not store.pending and not store.prepared


# -- Rule 7: a release file is written once; its stamp says what changed since ---------------------
def test_a_flush_stamps_the_release_file_and_leaves_it_as_written(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one"})
    written = (store.releases / "blog.json").read_bytes()
    assert store.mark_flushed(store.flush()) == 1
    assert (store.releases / "blog.json").read_bytes() == written  # not written again
    stamp = json.loads((store.releases / "blog.stamp.json").read_text())
    assert stamp["file"] == json.loads(written)["file"] and stamp["unflushed"] is None
    again = ReleaseStore(tmp_path / "push", boot_id="boot-b")  # after a reboot: trusted from the stamp
    assert again.reverified == 0 and again.live["blog"].unflushed is None


def test_a_stamp_of_another_release_file_is_ignored(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one"})
    store.mark_flushed(store.flush())
    old_stamp = (store.releases / "blog.stamp.json").read_bytes()
    store.install("blog", 2, {"index.html": b"two"})  # a new file, a new token; not flushed yet
    (store.releases / "blog.stamp.json").write_bytes(old_stamp)  # as a crash between could leave it
    again = ReleaseStore(tmp_path / "push", boot_id="boot-b")
    assert again.live["blog"].target.number == 2
    assert again.reverified == 2  # release 2's file says unflushed: its blobs and its previous's hashed again
    (store.releases / "blog.stamp.json").write_text("not json")
    assert ReleaseStore(tmp_path / "push", boot_id="boot-b").live["blog"].target.number == 2


def test_a_release_file_without_a_token_is_written_whole_with_one(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one"})
    path = store.releases / "blog.json"
    data = json.loads(path.read_text())
    del data["file"]  # as an older owncdn wrote it
    path.write_text(json.dumps(data))
    older = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    assert older.live["blog"].file is None
    assert older.mark_flushed(older.flush()) == 1
    assert isinstance(json.loads(path.read_text())["file"], str) and saved(older)["unflushed"] is None
    assert not (older.releases / "blog.stamp.json").exists()
    older.drop("blog")
    assert not path.exists()


# -- Rule 8: one manifest a release file; the previous release in its own file ---------------------
def _files(store: ReleaseStore, service: str = "blog") -> dict:
    return {p.name: json.loads(p.read_text()) for p in store.releases.glob(f"{service}*.json")}


def test_a_release_file_holds_its_own_manifest_and_the_previous_one_stays_in_its_file(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one"})
    store.install("blog", 2, {"index.html": b"two", "a.css": b"a"})
    files = _files(store)
    assert files["blog.json"]["previous"] == {"service": "blog", "number": 1, "id": store.live["blog"].previous.id,
                                              "released_at": None}  # named, not held
    assert files["blog.previous.json"]["number"] == 1 and files["blog.previous.json"]["manifest"] == \
        store.live["blog"].previous.manifest.to_json()
    again = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    live = again.live["blog"]
    assert (live.target.number, live.previous.number) == (2, 1)
    assert live.previous.manifest == store.live["blog"].previous.manifest
    assert again.has_blob(sha(b"one"))  # kept for the rollback: no fetch
    rolled = again.switch(Target("blog", 3, live.previous.id, live.previous.manifest))  # a rollback to it
    assert rolled.previous.number == 2 and _files(again)["blog.previous.json"]["number"] == 2
    assert ReleaseStore(tmp_path / "push", boot_id="boot-a").live["blog"].previous.number == 2


def test_the_same_manifest_switched_again_keeps_the_previous_release(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one"})
    two = store.install("blog", 2, {"index.html": b"two"})
    store.switch(Target("blog", 3, two.target.id, two.target.manifest))  # released again, same files
    again = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    assert (again.live["blog"].target.number, again.live["blog"].previous.number) == (3, 1)


def test_a_switch_cut_off_between_its_renames_serves_the_release_before_it(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one"})
    store.put_blob(b"two")
    manifest = Manifest.build([("index.html", sha(b"two"), 3)])
    target = Target("blog", 2, manifest.id, manifest)
    assert store.write_pending(store.begin_pending(target))
    os.replace(store.releases / "blog.json", store.releases / "blog.previous.json")  # the first rename, then a crash
    again = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    assert again.live["blog"].target.number == 1 and again.pending["blog"].number == 2
    live = again.switch(again.pending["blog"])
    assert (live.target.number, live.previous.number) == (2, 1)
    third = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    assert (third.live["blog"].target.number, third.live["blog"].previous.number) == (2, 1) and not third.pending


def test_an_older_release_file_with_the_previous_manifest_in_it_is_read_and_converted(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    store.install("blog", 1, {"index.html": b"one"})
    store.install("blog", 2, {"index.html": b"two"})
    live = store.live["blog"]
    path = store.releases / "blog.json"
    data = json.loads(path.read_text())
    data["previous"] = json.loads(live.previous.encoded())  # as an older owncdn wrote it: the manifest inside
    del data["file"]
    path.write_text(json.dumps(data))
    (store.releases / "blog.previous.json").unlink()
    older = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    assert older.live["blog"].previous.manifest == live.previous.manifest
    older.mark_flushed(older.flush())  # no token: written whole, in the new form
    files = _files(older)
    assert "manifest" not in files["blog.json"]["previous"] and files["blog.previous.json"]["number"] == 1
    assert ReleaseStore(tmp_path / "push", boot_id="boot-a").live["blog"].previous.number == 1
