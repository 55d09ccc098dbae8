"""The directory blob store's packs (dirblobs Rule 5): a bundle upload's blobs in one pack
file, stored once pack and index are durable, found again at start from the index,
collected and compacted."""

from __future__ import annotations

import os
import time

import pytest

from owncdn.control.blobs import BlobMismatch, BlobNotFound, BlobTooLarge
from owncdn.control.dirblobs import DirBlobStore
from owncdn.core.content.bundle import header
from owncdn.core.content.digest import digest
from owncdn.packs import Packs


def packed(store: DirBlobStore, *datas: bytes) -> list[str]:
    """One bundle upload of ``datas``, committed; their names."""
    pack = store.bundle()
    try:
        for data in datas:
            pack.start(digest(data), len(data))
            for at in range(0, len(data), 7000):
                pack.write(memoryview(data)[at:at + 7000])
            assert pack.end() == len(data)
        pack.commit()
    finally:
        pack.close()
    return [digest(d) for d in datas]


def record(data: bytes) -> bytes:
    """``data``'s bundle record: how a headed pack holds it (dirblobs Rule 6)."""
    return header(digest(data), len(data)) + data


def read_all_ways(store: DirBlobStore, name: str, size: int) -> list[bytes]:
    buffer = bytearray(size)
    store.read_into(name, memoryview(buffer))
    fd, base, length = store.open_blob(name)
    try:
        assert length == size
        via_fd = os.pread(fd, size, base)
    finally:
        os.close(fd)
    return [b"".join(store.read(name)), bytes(buffer), via_fd]


def pack_files(root) -> list[str]:
    return sorted(p.name for p in (root / "packs").iterdir())


def test_a_bundles_blobs_are_one_pack_read_from_their_offsets_and_found_again_at_start(tmp_path, monkeypatch):
    store = DirBlobStore(tmp_path)
    datas = [b"", b"x", os.urandom(300_000), os.urandom(70)]
    names = packed(store, *datas)
    assert pack_files(tmp_path) == ["1.idx", "1.pack"]
    assert not [p for p in tmp_path.glob("??/*")]  # no file, no rename per blob
    bundle = b"".join(map(record, datas))
    assert (tmp_path / "packs" / "1.pack").read_bytes() == bundle  # headed (Rule 6): the upload as it came
    for data in datas:
        assert read_all_ways(store, digest(data), len(data)) == [data] * 3
        assert b"".join(store.read(digest(data), 1)) == data[1:]  # a fetch resumed
    assert store.sizes(names) == {digest(d): len(d) for d in datas} and store.missing(names) == []
    stored = dict(store.stored())
    assert {name: info.size for name, info in stored.items()} == {digest(d): len(d) for d in datas}
    assert all(abs(info.mtime - time.time()) < 60 for info in stored.values())

    monkeypatch.setattr(os, "pread", lambda *a: pytest.fail("read a blob at start"))
    again = DirBlobStore(tmp_path)  # a restart: the index, not the blobs
    assert again.sizes(names) == store.sizes(names)
    monkeypatch.undo()
    assert read_all_ways(again, names[2], len(datas[2])) == [datas[2]] * 3


def test_a_pack_whose_writer_died_is_deleted_at_start(tmp_path):
    store = DirBlobStore(tmp_path)
    packed(store, b"kept")
    pack = store.bundle()  # a second upload, killed before its commit
    pack.start(digest(b"lost"), 4)
    pack.write(b"lost")
    pack.end()
    assert pack_files(tmp_path) == ["1.idx", "1.pack", "2.pack"]
    again = DirBlobStore(tmp_path)
    assert pack_files(tmp_path) == ["1.idx", "1.pack"]
    assert again.missing([digest(b"kept"), digest(b"lost")]) == [digest(b"lost")]
    assert packed(again, b"next") and pack_files(tmp_path) == ["1.idx", "1.pack", "3.idx", "3.pack"]


def test_a_wrong_blob_is_cut_off_and_what_came_before_is_kept(tmp_path):
    store = DirBlobStore(tmp_path, max_bytes=1000)
    pack = store.bundle()
    pack.start(digest(b"good"), 4)
    pack.write(b"good")
    pack.end()
    pack.start(digest(b"claimed"), 7)
    pack.write(b"other!!")
    with pytest.raises(BlobMismatch):
        pack.end()
    with pytest.raises(BlobTooLarge):
        pack.start(digest(b"huge"), 1001)
    pack.start(digest(b"cut off midway"), 14)
    pack.write(b"cut off")
    pack.commit()
    pack.close()
    assert (tmp_path / "packs" / "1.pack").read_bytes() == record(b"good")  # no dead bytes, nor headers, at its end
    assert store.missing([digest(b"good"), digest(b"claimed"), digest(b"cut off midway")]) == [
        digest(b"claimed"), digest(b"cut off midway")]
    assert DirBlobStore(tmp_path).missing([digest(b"good")]) == []


@pytest.mark.parametrize("end", ["commit", "discard", "failed flush"])
def test_offered_blobs_are_read_from_the_pack_but_stored_only_once_durable(tmp_path, monkeypatch, end):
    """dirblobs Rules 2, 5: readable while the flush runs, never counted before it ended."""
    store = DirBlobStore(tmp_path)
    datas = [b"one", os.urandom(5000)]
    names = [digest(d) for d in datas]
    pack = store.bundle()
    for data in datas:
        pack.start(digest(data), len(data))
        pack.write(data)
        pack.end()
    pack.offer()
    assert [read_all_ways(store, digest(d), len(d)) for d in datas] == [[d] * 3 for d in datas]
    assert store.missing(names) == names and store.claim(names) == names
    if end == "commit":
        pack.commit()
    elif end == "discard":
        pack.discard()
    else:
        def broken(fd):
            raise OSError("the disk is gone")

        monkeypatch.setattr(os, "fsync", broken)
        with pytest.raises(OSError):
            pack.commit()
        monkeypatch.undo()
    pack.close()
    assert store._offered == {}
    if end == "commit":
        assert store.missing(names) == [] and pack_files(tmp_path) == ["1.idx", "1.pack"]
    else:
        assert store.missing(names) == names and pack_files(tmp_path) == []
        with pytest.raises(BlobNotFound):
            store.open_blob(names[0])


def test_a_blob_uploaded_again_stays_in_its_first_pack(tmp_path):
    store = DirBlobStore(tmp_path)
    packed(store, b"same")
    packed(store, b"same")  # its pack holds nothing new: deleted
    assert pack_files(tmp_path) == ["1.idx", "1.pack"]
    packed(store, b"same", b"new")
    assert pack_files(tmp_path) == ["1.idx", "1.pack", "3.idx", "3.pack"]
    assert store._packed[digest(b"same")].pack.number == 1


def age(store: DirBlobStore, name: str, when: float) -> None:
    slot = store._packed[name]
    os.utime(slot.pack.index, (when, when))
    slot.pack.made, slot.claimed = when, 0.0


def test_collection_ages_claims_deletions_and_compaction(tmp_path):
    store = DirBlobStore(tmp_path)
    now = time.time()
    big, small, alone = os.urandom(200_000), os.urandom(1000), b"alone"
    packed(store, big, small)
    packed(store, alone)
    for data in (big, small, alone):
        age(store, digest(data), now - 7200)
    assert store.delete_older(digest(big), now - 10_000) is None  # younger than the cutoff
    assert store.claim([digest(small)]) == []  # a push found it: young again
    assert dict(store.stored())[digest(small)].mtime >= now
    assert store.delete_older(digest(small), now - 3600) is None

    fd, base, _ = store.open_blob(digest(small))  # a download in progress across the compaction
    assert store.delete_older(digest(big), now - 3600) == len(big)
    assert store.delete_older(digest(alone), now - 3600) == len(alone)
    assert store.claim([digest(big), digest(alone)]) == [digest(big), digest(alone)]  # a claim after finds them gone
    assert store.compact() == len(record(big)) + len(record(alone))  # freed: their records (Rule 6)
    assert pack_files(tmp_path) == ["3.idx", "3.pack"]  # 2 deleted, 1 copied out without its dead blob
    assert os.pread(fd, len(small), base) == small
    os.close(fd)
    assert read_all_ways(store, digest(small), len(small)) == [small] * 3
    assert abs(dict(store.stored())[digest(small)].mtime - store._packed[digest(small)].claimed) < 1  # kept its age

    again = DirBlobStore(tmp_path)
    assert again.missing([digest(d) for d in (big, small, alone)]) == [digest(big), digest(alone)]
    assert abs(dict(again.stored())[digest(small)].mtime - (now - 7200)) < 1  # the claim was in memory only


def test_a_blob_deleted_from_a_pack_that_stays_comes_back_after_a_restart_as_old(tmp_path):
    store = DirBlobStore(tmp_path)
    now = time.time()
    names = packed(store, b"dead", b"alive and longer")
    for name in names:
        age(store, name, now - 7200)
    assert store.delete_older(names[0], now - 3600) == 4
    assert store.compact() == 0  # 16 of 20 bytes alive: kept as it is
    again = DirBlobStore(tmp_path)
    assert again.missing(names) == [] and dict(again.stored())[names[0]].mtime < now - 3600
    assert again.delete_older(names[0], now - 3600) == 4


def test_compaction_that_fails_keeps_the_old_pack(tmp_path, monkeypatch):
    store = DirBlobStore(tmp_path)
    now = time.time()
    names = packed(store, b"dead and long enough", b"alive")
    for name in names:
        age(store, name, now - 7200)
    store.delete_older(names[0], now - 3600)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("the disk is gone")))
    with pytest.raises(OSError):
        store.compact()
    monkeypatch.undo()
    assert pack_files(tmp_path) == ["1.idx", "1.pack"] and store.missing(names) == [names[0]]
    assert read_all_ways(store, names[1], 5) == [b"alive"] * 3
    assert store.compact() == len(record(b"dead and long enough")) and read_all_ways(store, names[1], 5) == [b"alive"] * 3


def test_a_packed_blob_is_durable_without_a_sync_of_the_store(tmp_path, monkeypatch):
    """dirblobs Rule 5: the release's ``sync`` has nothing to flush for packed blobs (no syncfs
    that would write back every other file on the disk)."""
    store = DirBlobStore(tmp_path)
    names = packed(store, b"a", b"b")
    monkeypatch.setattr(os, "fsync", lambda fd: pytest.fail("flushed again"))
    monkeypatch.setattr(store._group, "wait", lambda *a: pytest.fail("a syncfs"))
    store.sync(names)


def test_packs_found_at_start_keep_their_blobs_slots(tmp_path):
    store = DirBlobStore(tmp_path)
    first = packed(store, b"one", b"two")
    second = packed(store, b"three")
    slots = Packs(tmp_path / "packs").load()
    head = len(header(first[0], 3))  # 70: each blob after its header (Rule 6)
    assert {name: (slot.pack.number, slot.offset, slot.size, slot.pack.headed) for name, slot in slots.items()} == {
        first[0]: (1, head, 3, True), first[1]: (1, 2 * head + 3, 3, True), second[0]: (2, head, 5, True)}


def test_a_durable_pack_begins_its_writeback_every_mib_as_it_is_written(tmp_path, monkeypatch):
    """packs Rule 1, durable Rule 10: the commit's fsync then waits for the last bytes only."""
    begun = []
    monkeypatch.setattr("owncdn.packs.start_writeback", lambda fd, offset, count: begun.append((offset, count)))
    store = DirBlobStore(tmp_path)
    data = os.urandom(3 << 20)
    pack = store.bundle()
    pack.start(digest(data), len(data))
    for at in range(0, len(data), 300_000):
        pack.write(data[at:at + 300_000])
    pack.end()
    pack.commit()
    pack.close()
    assert begun and begun[0][0] == 0 and all(count >= 1 << 20 for _, count in begun)
    assert all(a + n == b for (a, n), (b, _) in zip(begun, begun[1:]))  # each range where the last ended
    assert sum(n for _, n in begun) > len(data) - (1 << 20)


def test_a_blob_received_raw_begins_its_writeback_every_mib_as_it_is_written(tmp_path, monkeypatch):
    """dirwriters.BlobPart (a PUT read raw): as a pack's, so its flush waits for its last bytes only."""
    begun = []
    monkeypatch.setattr("owncdn.control.dirwriters.start_writeback",
                        lambda fd, offset, count: begun.append((offset, count)))
    store = DirBlobStore(tmp_path)
    data = os.urandom(3 << 20)
    part = store.part(digest(data), len(data))
    for at in range(0, len(data), 300_000):
        part.write(data[at:at + 300_000])
    sha, tmp = part.finish()
    assert sha == digest(data) and open(tmp, "rb").read() == data
    assert begun and begun[0][0] == 0 and all(count >= 1 << 20 for _, count in begun)
    assert all(a + n == b for (a, n), (b, _) in zip(begun, begun[1:]))
    assert sum(n for _, n in begun) > len(data) - (1 << 20)


def test_a_collection_merges_sixteen_small_packs_into_one(tmp_path):
    """packs Rule 4: one-file pushes make a small pack each; collected, they become one."""
    store = DirBlobStore(tmp_path)
    names = [packed(store, b"page %d" % i)[0] for i in range(16)]
    assert len(pack_files(tmp_path)) == 32
    assert store.compact() == 0
    assert pack_files(tmp_path) == ["17.idx", "17.pack"]
    assert [b"".join(store.read(name)) for name in names] == [b"page %d" % i for i in range(16)]
    assert DirBlobStore(tmp_path).sizes(names) == {name: len(b"page %d" % i) for i, name in enumerate(names)}
    assert spans(store, [b"page %d" % i for i in range(16)]) == [16]  # the merged pack is headed too (packs Rule 5)


def spans(store: DirBlobStore, datas: list[bytes]) -> list[int]:
    """The records of ``datas`` as the sending thread takes them (``open_run``): how many
    each span holds; the bytes sent checked to be the bundle of ``datas``."""
    parts = [(header(digest(d), len(d)), digest(d), 0, len(d)) for d in datas]
    sent, counts, i = [], [], 0
    while i < len(parts):
        fd, at, count, n = store.open_run(parts, i)
        try:
            sent.append(parts[i][0] + os.pread(fd, count, at))
        finally:
            os.close(fd)
        counts.append(n)
        i += n
    assert b"".join(sent) == b"".join(map(record, datas))
    return counts


A, B, C, D = b"a" * 10, os.urandom(70_000), b"", b"d" * 999


@pytest.mark.parametrize("bundles, loose, asked, counts", [
    ("abc", "", "abc", [3]),  # a bundle's records in its order: one span
    ("abc", "", "cba", [1, 1, 1]),  # another order: a span each
    ("abc", "", "ac", [1, 1]),  # b between them, not asked: not sent
    ("ab c", "", "abc", [2, 1]),  # two bundles, two packs
    ("abc", "", "abca", [3, 1]),  # asked twice: sent twice
    ("ab", "d", "abd", [2, 1]),  # a loose blob (a PUT): alone
    ("abcd", "", "bcd", [3]),  # a span may begin anywhere
], ids=lambda v: repr(v))
def test_records_lying_one_after_another_in_a_pack_go_as_one_span(tmp_path, bundles, loose, asked, counts):
    """dirblobs Rule 6."""
    blobs = {"a": A, "b": B, "c": C, "d": D}
    store = DirBlobStore(tmp_path)
    for group in bundles.split():
        packed(store, *(blobs[k] for k in group))
    for k in loose:
        store.put(digest(blobs[k]), blobs[k])
    assert spans(store, [blobs[k] for k in asked]) == counts


def test_a_blob_dropped_from_between_two_others_breaks_their_span(tmp_path):
    store = DirBlobStore(tmp_path)
    names = packed(store, A, B, D)
    now = time.time()
    age(store, names[1], now - 7200)
    assert store.delete_older(names[1], now - 3600) == len(B)
    assert spans(store, [A, D]) == [1, 1]


def test_a_part_of_a_blob_and_a_pack_without_headers_go_a_blob_at_a_time(tmp_path):
    """A ranged GET sends a part from an offset; a pack written before headed packs (its
    index has no ``headed`` record) is read as it was, a blob at a time."""
    old = Packs(tmp_path / "packs")  # headed=False: the layout before dirblobs Rule 6
    writer = old.writer(durable=True)
    between = b"x" * len(header(digest(B), len(B)))  # where B's header would be, were it headed
    for data in (A, between, B):
        writer.begin()
        writer.write(memoryview(data))
        writer.keep(digest(data))
    writer.commit()
    writer.close()
    store = DirBlobStore(tmp_path)
    assert [slot.pack.headed for slot in store._packed.values()] == [False, False, False]
    assert spans(store, [A, B]) == [1, 1]
    packed(store, A, B)  # stored already: this new pack is dropped
    assert spans(store, [A, B]) == [1, 1]
    packed(store, D, B)
    fd, at, count, n = store.open_run([(b"", digest(D), 10, 20), (header(digest(B), len(B)), digest(B), 0, len(B))], 0)
    os.close(fd)
    assert (count, n) == (20, 1)


def test_a_download_is_put_in_the_order_its_blobs_lie_in_the_packs(tmp_path):
    """dirblobs Rule 6: by pack, then offset; loose and unknown blobs after, as asked."""
    store = DirBlobStore(tmp_path)
    packed(store, A, B)
    packed(store, C)
    store.put(digest(D), D)
    asked = [(digest(x), len(x)) for x in (D, b"none", C, B, A)]
    assert store.in_pack_order(asked) == [(digest(x), len(x)) for x in (A, B, C, D, b"none")]
