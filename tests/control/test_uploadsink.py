"""Bundles and blobs stored from views of received bytes (control/api/uploadsink.py),
fed by hand: no sockets, the pieces cut anywhere."""

from __future__ import annotations

import os

import pytest

from owncdn.control.api.errors import ApiProblem
from owncdn.control.api.uploadsink import BlobSink, BundleSink
from owncdn.control.blobs import BlobMismatch, BlobTooLarge
from owncdn.control.dirblobs import DirBlobStore
from owncdn.core.content.bundle import BundleError, header
from owncdn.core.content.digest import digest


def record(data: bytes, name: str | None = None) -> bytes:
    return header(name or digest(data), len(data)) + data


def feed(sink, body: bytes, cut: int) -> None:
    """``body`` in pieces of ``cut`` bytes, each a read-only view of a reused buffer."""
    buffer = bytearray(max(cut, 1))
    for at in range(0, len(body), cut):
        piece = body[at:at + cut]
        buffer[:len(piece)] = piece
        sink.feed(memoryview(buffer)[:len(piece)].toreadonly())


def leftovers(store: DirBlobStore) -> list[str]:
    """Files of blobs not stored (yet): temp files, and packs without an index."""
    return [f for _, _, files in os.walk(store.tmp) for f in files] + [
        p.name for p in (store.root / "packs").glob("*.pack") if not p.with_suffix(".idx").exists()]


@pytest.mark.parametrize("cut", [1, 7, 70, 4096, 1 << 20])
def test_a_bundle_in_any_pieces_is_stored_whole(tmp_path, cut):
    store = DirBlobStore(tmp_path)
    datas = [b"", b"x", os.urandom(100), os.urandom(5000)]
    sink = BundleSink(store)
    feed(sink, b"".join(map(record, datas)), cut)
    sink.end()
    stored = sink.finish()
    assert [(b.sha256, b.size) for b in stored] == [(digest(d), len(d)) for d in datas]
    assert all(b"".join(store.read(digest(d))) == d for d in datas) and leftovers(store) == []


def test_a_wrong_hash_stops_the_bundle_keeping_what_came_before(tmp_path):
    store = DirBlobStore(tmp_path)
    sink = BundleSink(store)
    with pytest.raises(BlobMismatch):
        feed(sink, record(b"good") + record(b"bad", digest(b"other")) + record(b"after"), 5)
    assert [b.sha256 for b in sink.finish()] == [digest(b"good")]
    assert store.missing([digest(b"good"), digest(b"other"), digest(b"after")]) == [digest(b"other"), digest(b"after")]
    assert leftovers(store) == []


def test_a_cut_bundle_keeps_only_whole_blobs(tmp_path):
    store = DirBlobStore(tmp_path)
    sink = BundleSink(store)
    body = record(b"whole") + record(os.urandom(1000))
    feed(sink, body[:-10], 64)
    with pytest.raises(BundleError):
        sink.end()
    assert [b.sha256 for b in sink.finish()] == [digest(b"whole")] and leftovers(store) == []


def test_a_blob_larger_than_the_store_takes_is_refused_at_its_header(tmp_path):
    store = DirBlobStore(tmp_path, max_bytes=100)
    sink = BundleSink(store)
    with pytest.raises(BlobTooLarge):
        feed(sink, record(b"small") + record(os.urandom(101)), 1000)
    assert [b.sha256 for b in sink.finish()] == [digest(b"small")] and leftovers(store) == []


def test_the_first_record_is_handed_over_whole_and_not_stored(tmp_path):
    store = DirBlobStore(tmp_path)
    got = []
    sink = BundleSink(store, lambda sha, data: got.append((sha, data)), first_limit=100)
    feed(sink, record(b"manifest", "a" * 64) + record(b"blob"), 3)
    sink.end()
    assert got == [("a" * 64, b"manifest")] and [b.sha256 for b in sink.finish()] == [digest(b"blob")]
    assert store.missing(["a" * 64]) == ["a" * 64]
    refused = BundleSink(store, got.append, first_limit=4)
    with pytest.raises(ApiProblem) as caught:
        feed(refused, record(b"too long"), 100)
    assert caught.value.status == 413 and refused.finish() == []
    empty = BundleSink(store, got.append, first_limit=4)
    with pytest.raises(BundleError, match="first record is required"):
        empty.end()


@pytest.mark.parametrize("led", [True, False])
def test_a_bundles_blobs_are_durable_in_one_pack_before_it_is_answered(tmp_path, monkeypatch, led):
    """Rule 3: pack, index and their directory fsynced before ``finish`` returns; a
    release created from them next has nothing left to flush."""
    store = DirBlobStore(tmp_path)
    synced, fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or fsync(fd))
    sink = BundleSink(store, (lambda sha, data: None) if led else None, first_limit=100)
    feed(sink, (record(b"manifest", "a" * 64) if led else b"") + record(b"one") + record(b"two"), 5)
    sink.end()
    assert synced == []
    names = [digest(b"one"), digest(b"two")]
    assert [b.sha256 for b in sink.finish()] == names and store.missing(names) == []
    packs = str(tmp_path / "packs")
    assert synced == [f"{packs}/1.pack", f"{packs}/1.idx", packs]
    store.sync(names)
    assert synced == [f"{packs}/1.pack", f"{packs}/1.idx", packs]  # nothing more to flush


def test_a_blob_body_is_checked_at_its_end(tmp_path):
    store = DirBlobStore(tmp_path)
    data = os.urandom(300_000)
    sink = BlobSink(store, digest(data), len(data))
    feed(sink, data, 65536)
    sink.end()
    assert sink.finish() == len(data) and b"".join(store.read(digest(data))) == data
    wrong = BlobSink(store, digest(b"claimed"), len(data))
    feed(wrong, data, 65536)
    with pytest.raises(BlobMismatch):
        wrong.end()
    wrong.finish()
    cut = BlobSink(store, digest(b"cut"), 10)
    feed(cut, b"cut", 2)
    cut.finish()  # never ended
    assert store.missing([digest(b"claimed"), digest(b"cut")]) == [digest(b"claimed"), digest(b"cut")]
    assert leftovers(store) == []


def test_a_plain_bundles_blobs_land_as_the_pieces_come(tmp_path, monkeypatch):
    """Rule 3: every ``LAND_BYTES`` fed, the blobs verified since are offered (read
    back from the pack while it is written, not stored yet) and landed; the rest at the end; each
    blob once, in bundle order; a refusal keeps what landed before it."""
    monkeypatch.setattr("owncdn.control.api.uploadsink.LAND_BYTES", 300)
    store = DirBlobStore(tmp_path)
    datas = [os.urandom(100 + i) for i in range(8)]
    landings = []

    def landing(items):
        landings.append([(sha, size, b"".join(store.read(sha))) for sha, size in items])

    sink = BundleSink(store, landing=landing)
    feed(sink, b"".join(map(record, datas)), 128)
    before = [item for items in landings for item in items]
    assert len(landings) == 3 and len(before) == 6  # the last two blobs came after the last landing
    sink.end()
    assert [b.sha256 for b in sink.finish()] == [digest(d) for d in datas]
    landed = [item for items in landings for item in items]
    assert landed == [(digest(d), len(d), d) for d in datas] and store.missing([digest(d) for d in datas]) == []

    landings.clear()
    refused = BundleSink(store, landing=landing)
    good = [os.urandom(200) for _ in range(3)]
    with pytest.raises(BlobMismatch):
        feed(refused, b"".join(map(record, good)) + record(b"bad", digest(b"other")), 64)
    assert [item[0] for items in landings for item in items] == [digest(d) for d in good[:2]]  # before the refusal
    assert [b.sha256 for b in refused.finish()] == [digest(d) for d in good]
    assert [item[0] for items in landings for item in items] == [digest(d) for d in good]  # the last at the end


def test_a_bundle_led_by_a_record_lands_only_at_its_end(tmp_path, monkeypatch):
    """Rule 3 with Rule 4: nothing lands before the leading record's check is done."""
    monkeypatch.setattr("owncdn.control.api.uploadsink.LAND_BYTES", 10)
    store = DirBlobStore(tmp_path)
    landings = []
    sink = BundleSink(store, lambda sha, data: None, first_limit=100, landing=landings.append)
    datas = [os.urandom(50) for _ in range(4)]
    feed(sink, record(b"manifest", "a" * 64) + b"".join(map(record, datas)), 16)
    sink.end()
    assert landings == []
    sink.finish()
    assert landings == [[(digest(d), 50) for d in datas]]
