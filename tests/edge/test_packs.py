"""Blob packs at the edge (owncdn/packs.py, blobhold.py rules 1-4, releases.py rule 6): releases whose
blobs sit in packs are served, survive a killed process and a reboot, and are collected
and compacted; stores of loose files still load."""

from __future__ import annotations

import os
import shutil

import pytest

from owncdn.core.content.digest import digest
from owncdn.core.content.manifest import Manifest
from owncdn.edge.bodies import DiskBody
from owncdn.packs import Slot
from owncdn.edge.releases import ReleaseStore, Target
from tests.edge.test_push_serving import RELEASED, PushEdge

BIG = os.urandom(200_000)  # at or above FILE_THRESHOLD: mapped and sent with sendfile from its pack
SITE = {"index.html": b"<h1>home</h1>", "about.html": b"<h1>about</h1>", "downloads/big.bin": BIG,
        "404.html": b"<h1>not found</h1>"}


def packed(store: ReleaseStore, blobs: list[bytes], close: bool = True):
    """Write ``blobs`` into one new pack as a bundle fetch does (bundlefetch.py)."""
    writer = store.pack_writer()
    for data in blobs:
        if not store.has_blob(digest(data)):
            writer.begin()
            writer.write(memoryview(data))
            store.keep_packed(writer, digest(data))
    if close:
        store.end_pack(writer)
    return writer


def install_packed(store: ReleaseStore, service: str, number: int, files: dict[str, bytes]):
    packed(store, list(files.values()))
    manifest = Manifest.build([(path, digest(data), len(data)) for path, data in files.items()])
    return store.switch(Target(service, number, manifest.id, manifest, RELEASED))


def where(store: ReleaseStore, data: bytes):
    slot = store.held[digest(data)]
    return None if slot is None else (slot.pack.number, slot.offset)


@pytest.fixture
def state(tmp_path):
    return tmp_path / "edge"


async def test_a_packed_release_is_served_whole_in_ranges_conditionally_and_to_head(state):
    async with PushEdge(state) as t:
        install_packed(t.store, "blog", 1, SITE)
        assert where(t.store, SITE["about.html"]) == (1, len(SITE["index.html"]))  # not at the pack's start
        assert where(t.store, BIG) == (1, len(SITE["index.html"]) + len(SITE["about.html"]))
        home, about, big = [await t.get(p) for p in ("/", "/about", "/downloads/big.bin")]
        inside = await t.get("/about", headers={"Range": "bytes=4-8"})
        tail = await t.get("/about", headers={"Range": "bytes=-5"})
        big_part = await t.get("/downloads/big.bin", headers={"Range": "bytes=1000-1999"})
        big_two = await t.get("/downloads/big.bin", headers={"Range": "bytes=0-9, 199990-"})
        same = await t.get("/about", headers={"If-None-Match": about.headers["etag"]})
        head = await t.get("/downloads/big.bin", method="HEAD")
        missing = await t.get("/nope")
    assert (home.status, home.body) == (200, SITE["index.html"])
    assert (about.status, about.body) == (200, SITE["about.html"])
    assert (big.status, len(big.body), big.body == BIG) == (200, len(BIG), True)
    assert (inside.status, inside.body, inside.headers["content-range"]) == (206, b"about", "bytes 4-8/14")
    assert (tail.status, tail.body) == (206, b"</h1>")
    assert (big_part.status, big_part.body) == (206, BIG[1000:2000])
    assert big_two.status == 206 and BIG[:10] in big_two.body and BIG[199990:] in big_two.body
    assert (same.status, same.body) == (304, b"")
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", str(len(BIG)))
    assert (missing.status, missing.body) == (404, SITE["404.html"])


@pytest.mark.parametrize("boot_id, kept", [
    ("boot-a", 2),  # records appended as each blob was verified (rule 6 holds)
    (None, 0),      # records only at the commit, which never came
])
def test_a_process_killed_mid_bundle_keeps_what_its_index_records_say(tmp_path, boot_id, kept):
    store = ReleaseStore(tmp_path / "push", boot_id=boot_id)
    blobs = [b"one", b"two" * 10, b"three" * 100]
    writer = packed(store, blobs[:2], close=False)
    writer.begin()
    writer.write(memoryview(blobs[2][:7]))  # killed inside the third blob: no close, no commit
    again = ReleaseStore(tmp_path / "push", boot_id=boot_id)  # same boot: the page cache kept it
    assert again.held.keys() == {digest(b) for b in blobs[:kept]}
    assert [again.read_blob(digest(b)) for b in blobs[:kept]] == blobs[:kept]
    assert sorted(p.name for p in again.packs.dir.iterdir()) == (["1.idx", "1.pack"] if kept else [])
    assert again.reverified == 0 and packed(again, [b"four"]).pack.number == 2  # numbers go on


def test_a_restart_rebuilds_held_from_the_indexes_without_reading_blobs(tmp_path, monkeypatch):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    install_packed(store, "blog", 1, SITE)
    loose = store.put_blob(b"from a release event")  # a loose file next to the packs
    before = {sha: None if s is None else (s.pack.number, s.offset, s.size) for sha, s in store.held.items()}
    monkeypatch.setattr("owncdn.packs.Packs.read", lambda slot: pytest.fail("read a blob"))
    again = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    assert {sha: None if s is None else (s.pack.number, s.offset, s.size) for sha, s in again.held.items()} == before
    assert again.held[loose] is None and not again.pending and again.live["blog"].target.number == 1


def test_after_a_reboot_a_corrupt_packed_blob_is_dropped_and_the_others_reverified(tmp_path):
    store = ReleaseStore(tmp_path / "push", boot_id="boot-a")
    install_packed(store, "blog", 1, SITE)  # not flushed (rule 6)
    slot = store.held[digest(SITE["about.html"])]
    with open(slot.pack.path, "r+b") as f:  # the OS crashed before this page was written back
        f.seek(slot.offset + 5)
        f.write(b"\0")
    after = ReleaseStore(tmp_path / "push", boot_id="boot-b")
    assert after.reverified == len(SITE)  # each hashed again, read from the pack
    assert not after.has_blob(digest(SITE["about.html"])) and after.pending["blog"].number == 1
    assert all(after.read_blob(digest(SITE[p])) == SITE[p] for p in SITE if p != "about.html")
    assert isinstance(after.held[digest(BIG)], Slot)


@pytest.mark.parametrize("boot_id", ["boot-a", None])
def test_collection_deletes_dead_packs_and_compacts_mostly_dead_ones_while_bodies_stay_readable(tmp_path, boot_id):
    store = ReleaseStore(tmp_path / "push", boot_id=boot_id)
    install_packed(store, "blog", 1, {"keep.css": b"kept", "big.bin": BIG})           # pack 1
    install_packed(store, "blog", 2, {"keep.css": b"kept", "a.html": b"two" * 1000})  # pack 2: a.html only
    install_packed(store, "blog", 3, {"keep.css": b"kept", "a.html": b"three"})       # pack 3
    install_packed(store, "blog", 4, {"keep.css": b"kept", "a.html": b"four"})        # pack 4
    fd, base = store.open_blob(digest(BIG))
    body = DiskBody(fd, base, len(BIG))  # what edge/static.py holds while a response goes out
    assert (base, sorted(store.packs.packs)) == (4, [1, 2, 3, 4])
    files, size = store.collect()  # releases 4 and 3 are wanted: BIG and b"two"*1000 are not
    assert (files, size) == (2, len(BIG) + 3000)
    assert 1 not in store.packs.packs and 2 not in store.packs.packs  # 1 compacted, 2 all dead
    assert where(store, b"kept") == (5, 0)  # copied into a new pack
    assert sorted(p.name for p in store.packs.dir.iterdir()) == ["3.idx", "3.pack", "4.idx", "4.pack", "5.idx", "5.pack"]
    assert bytes(body.view) == BIG  # the deleted pack stays readable through the open body
    again = ReleaseStore(tmp_path / "push", boot_id=boot_id)
    assert again.read_blob(digest(b"kept")) == b"kept" and not again.pending
    assert again.collect() == (0, 0) and sorted(again.packs.packs) == [3, 4, 5]


def test_a_store_of_loose_blobs_still_loads_and_serves_them(tmp_path):
    store = ReleaseStore(tmp_path / "push")
    store.install("blog", 1, SITE)  # put_blob: loose files under blobs/
    shutil.rmtree(store.packs.dir)  # a store written before packs
    old = ReleaseStore(tmp_path / "push")
    assert set(old.held.values()) == {None} and not old.pending and old.live["blog"].target.number == 1
    assert old.read_blob(digest(SITE["about.html"])) == SITE["about.html"]
    fd, base = old.open_blob(digest(BIG))
    assert base == 0 and bytes(DiskBody(fd, base, len(BIG)).view) == BIG
    with pytest.raises(FileNotFoundError):
        old.read_blob(digest(b"never held"))


@pytest.mark.parametrize("boot_id", ["boot-a", None])
def test_sixteen_small_packs_are_merged_into_one(tmp_path, boot_id):
    """packs Rule 4, packindex Rule 4: a one-file push makes a small pack each time."""
    store = ReleaseStore(tmp_path / "push", boot_id=boot_id)
    datas = [b"page %d" % i for i in range(15)]
    for data in datas:
        packed(store, [data])
    keep = {digest(d) for d in datas}
    assert store.collect(keep) == (0, 0) and len(store.packs.packs) == 15  # 15: left alone
    datas.append(b"the 16th")
    packed(store, [datas[-1]])
    keep.add(digest(datas[-1]))
    assert store.collect(keep) == (0, 0)
    assert sorted(p.name for p in store.packs.dir.iterdir()) == ["17.idx", "17.pack"]
    assert [where(store, d)[0] for d in datas] == [17] * 16
    again = ReleaseStore(tmp_path / "push", boot_id=boot_id)
    assert [again.read_blob(digest(d)) for d in datas] == datas
