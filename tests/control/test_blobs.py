"""The blob store: a directory, and S3 on a real SeaweedFS server (same tests, both)."""

import hashlib
import os
import secrets
import subprocess
import sys
import time

import pytest

from owncdn.control.blobs import BlobMismatch, BlobNotFound, BlobTooLarge, open_blob_store
from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.s3blobs import S3BlobStore
from owncdn.core.content.digest import digest
from owncdn.testing.seaweedfs import SeaweedServer


def sha(data: bytes) -> str:
    return digest(data)  # BLAKE3, <hex>-b3: what pushes name blobs with


def old(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # a blob pushed before BLAKE3


@pytest.fixture(scope="module")
def seaweed():
    with SeaweedServer() as server:
        server.create_bucket("owncdn-blobs")
        yield server


@pytest.fixture(params=["dir", "s3"])
def blobs(request, tmp_path):
    if request.param == "dir":
        return DirBlobStore(tmp_path / "blobs", max_bytes=1 << 20)
    server = request.getfixturevalue("seaweed")
    return S3BlobStore("owncdn-blobs", f"t-{secrets.token_hex(4)}/", client=server.client(), max_bytes=1 << 20)


def temp_files(root) -> list:
    """The files under a directory store's ``tmp`` (its writing threads' directories may stay)."""
    return [p for p in (root / "tmp").rglob("*") if not p.is_dir()]


def put(blobs, data: bytes, name: str | None = None, chunk: int = 7000) -> int:
    writer = blobs.writer(name or sha(data))
    for i in range(0, len(data), chunk):
        writer.write(data[i:i + chunk])
    return writer.commit()


def test_store_read_and_resume(blobs):
    data = os.urandom(600_000)
    assert blobs.missing([sha(data)]) == [sha(data)]
    assert put(blobs, data) == len(data)
    blobs.sync([sha(data)])  # what the control plane does before a release names the blob
    assert blobs.missing([sha(data)]) == []
    assert blobs.sizes([sha(data), sha(b"none"), sha(data)]) == {sha(data): len(data), sha(b"none"): None}
    assert blobs.size(sha(data)) == len(data)
    assert b"".join(blobs.read(sha(data))) == data
    assert b"".join(blobs.read(sha(data), 123_456)) == data[123_456:]


def test_storing_twice_is_harmless(blobs):
    data = b"same bytes"
    put(blobs, data)
    put(blobs, data)
    assert b"".join(blobs.read(sha(data))) == data


def test_an_empty_blob(blobs):
    assert put(blobs, b"") == 0
    assert blobs.size(sha(b"")) == 0
    assert b"".join(blobs.read(sha(b""))) == b""


def test_a_mismatch_stores_nothing(blobs):
    wrong = sha(b"something else")
    with pytest.raises(BlobMismatch, match="hash to"):
        put(blobs, b"these bytes", wrong)
    assert blobs.missing([wrong]) == [wrong]
    with pytest.raises(BlobNotFound):
        list(blobs.read(wrong))


def test_too_large_is_refused(blobs):
    data = b"x" * ((1 << 20) + 1)
    with pytest.raises(BlobTooLarge):
        put(blobs, data, chunk=1 << 16)
    assert blobs.missing([sha(data)]) == [sha(data)]


def test_the_store_s_limit_comes_from_the_control_plane_s_option(tmp_path):
    from owncdn.control.blobs import open_blob_store

    assert open_blob_store(tmp_path / "b", max_bytes=8 << 30).max_bytes == 8 << 30   # --max-blob-size 8GiB
    assert open_blob_store(tmp_path / "c").max_bytes == 5 << 30
    s3 = open_blob_store("s3://bucket/prefix", partials_dir=tmp_path / "p", max_bytes=123)
    assert s3.max_bytes == 123


def test_missing_keeps_order_and_drops_repeats(blobs):
    have, a, b = b"have", b"a-missing", b"b-missing"
    put(blobs, have)
    assert blobs.missing([sha(b), sha(have), sha(a), sha(b)]) == [sha(b), sha(a)]


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "A" * 64, "a" * 63, "g" * 64, "a" * 64 + "-b2",
                                  "a" * 63 + "-b3", "blake3:" + "a" * 64, "gc." + "a" * 64, "a" * 64 + "-b3/x"])
def test_names_must_be_blob_names(blobs, name):
    with pytest.raises(ValueError, match="64 lowercase hex digits, then -b3"):
        blobs.writer(name)


def test_sha256_blobs_stored_before_blake3_are_read_listed_and_collected(blobs):
    """A store holding blobs of releases pushed before BLAKE3: each name is checked with
    the hash it says, both kinds are listed for collection and deleted alike."""
    data = os.urandom(20_000)
    assert put(blobs, data, old(data)) == put(blobs, data) == len(data)  # the same bytes under both names
    assert blobs.sizes([old(data), sha(data)]) == {old(data): len(data), sha(data): len(data)}
    assert b"".join(blobs.read(old(data), 5)) == data[5:]
    for wrong in (old(b"other"), sha(b"other"), sha(data)[:64]):  # a BLAKE3 hex is not a SHA-256 name
        with pytest.raises(BlobMismatch, match="hash to"):
            put(blobs, data, wrong)
    listed = dict(blobs.stored())
    assert set(listed) == {old(data), sha(data)}
    assert blobs.delete_older(old(data), cutoff=listed[old(data)].mtime + 10) == len(data)
    assert blobs.missing([old(data), sha(data)]) == [old(data)]


def test_dir_store_layout_and_leftovers(tmp_path):
    store = DirBlobStore(tmp_path)
    put(store, b"hello")
    assert (tmp_path / sha(b"hello")[:2] / sha(b"hello")).read_bytes() == b"hello"
    (tmp_path / "tmp" / "half-written").write_bytes(b"x")
    DirBlobStore(tmp_path)  # a restart removes what a crash left
    assert temp_files(tmp_path) == []
    writer = store.writer(sha(b"abandoned"))
    writer.write(b"aband")
    writer.abort()
    assert temp_files(tmp_path) == []


def test_open_blob_store(tmp_path, monkeypatch, seaweed):
    assert isinstance(open_blob_store(tmp_path / "b"), DirBlobStore)
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    store = open_blob_store("s3://owncdn-blobs/from-env")
    assert repr(store) == "<S3BlobStore s3://owncdn-blobs/from-env>"
    put(store, b"through the environment")
    assert store.key(sha(b"x")) == "from-env/" + sha(b"x")
    with pytest.raises(ValueError, match="s3://bucket"):
        open_blob_store("s3:///nobucket")
    assert seaweed.secret_key not in repr(seaweed)


@pytest.mark.parametrize("first", ["blobs", "dirblobs", "dirwriters", "s3blobs"])
def test_the_store_modules_import_in_any_order(first):
    """The stores' modules import ``blobs``, which imports them only inside
    ``open_blob_store``; so any of them can be imported first."""
    script = (f"import owncdn.control.{first}\n"
              "from owncdn.control import blobs, dirblobs, dirwriters, s3blobs\n"
              "assert dirwriters.BundlePack and s3blobs.S3BlobStore and dirblobs.DirBlobStore\n"
              "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


def test_a_push_through_the_api_into_s3(tmp_path, seaweed):
    from owncdn.client import Client
    from owncdn.client.push import push_site
    from owncdn.control.api import ApiServer, create_app
    from owncdn.control.store import Store, sqlite_url

    site = tmp_path / "public"
    site.mkdir()
    (site / "index.html").write_bytes(b"<h1>from s3</h1>")
    (site / "big.bin").write_bytes(os.urandom(2 << 20))
    blobs = S3BlobStore("owncdn-blobs", "site", client=seaweed.client())
    with Store(sqlite_url(tmp_path)) as store:
        store.migrate()
        _, token = store.create_token("ci", {"deploy", "read"})
        with ApiServer(create_app(store, blobs=blobs)) as server, Client(server.url, token) as client:
            client.add_version("production", "version: 1\nservices:\n  - name: blog\n    hostnames: [b.example]\n    mode: push\n")
            result = push_site(client, site, service="blog")
            assert result.release["number"] == 1 and result.blobs_uploaded == 2
            big = (site / "big.bin").read_bytes()
            assert client.get_blob(sha(big), start=1000) == big[1000:]
            assert push_site(client, site, service="blog").blobs_uploaded == 0


def test_dir_store_syncs_each_directory_once_after_renames(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr("owncdn.control.dirblobs._sync_dirs", synced.extend)
    store = DirBlobStore(tmp_path)
    put(store, b"one")
    store.sync([sha(b"one")])
    store.sync([sha(b"one")])  # nothing renamed since
    assert synced == [tmp_path / sha(b"one")[:2]]
    put(store, b"one")
    store.sync([sha(b"one"), sha(b"other")])
    assert synced == [tmp_path / sha(b"one")[:2]] * 2
    synced.clear()
    DirBlobStore(tmp_path).sync([sha(b"one")])  # after a restart: unknown, so synced once
    assert synced == [tmp_path / sha(b"one")[:2]]


def test_a_directory_sync_that_failed_is_made_again_by_the_next(tmp_path, monkeypatch):
    synced, failing = [], [True]

    def sync_dirs(dirs):
        if failing and dirs:
            failing.clear()
            raise OSError(5, "I/O error")
        synced.extend(dirs)

    monkeypatch.setattr("owncdn.control.dirblobs._sync_dirs", sync_dirs)
    store = DirBlobStore(tmp_path)
    put(store, b"one")
    with pytest.raises(OSError):
        store.sync([sha(b"one")])
    store.sync([sha(b"one")])  # still not durable: not skipped
    assert synced == [tmp_path / sha(b"one")[:2]]


def test_dir_store_puts_a_whole_blob_in_one_step(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr("owncdn.control.dirblobs._sync_dirs", synced.extend)
    store = DirBlobStore(tmp_path, max_bytes=10)
    assert store.put(sha(b"hello"), b"hello") == 5 and store.put(sha(b"hello"), b"hello") == 5  # idempotent
    assert b"".join(store.read(sha(b"hello"))) == b"hello"
    with pytest.raises(BlobMismatch):
        store.put(sha(b"hello"), b"jello")
    with pytest.raises(BlobTooLarge):
        store.put(sha(b"x" * 11), b"x" * 11)
    assert store.missing([sha(b"jello"), sha(b"x" * 11)]) == [sha(b"jello"), sha(b"x" * 11)]
    assert temp_files(tmp_path) == []
    store.sync([sha(b"hello")])
    assert synced == [tmp_path / sha(b"hello")[:2]]  # its rename is made durable before a release names it


def test_dir_store_puts_a_batch_up_to_the_first_bad_blob(tmp_path):
    store = DirBlobStore(tmp_path)
    items = [(sha(b"one"), b"one"), (sha(b"two"), b"tw0"), (sha(b"three"), b"three")]
    sizes, error = store.put_many(items)
    assert sizes == [3] and isinstance(error, BlobMismatch)
    assert store.missing([sha(b"one"), sha(b"two"), sha(b"three")]) == [sha(b"two"), sha(b"three")]
    many = [(sha(bytes([i])), bytes([i])) for i in range(40)]  # one flush to disk for the batch
    assert store.put_many(many) == ([1] * 40, None)
    assert store.missing([h for h, _ in many]) == []
    assert temp_files(tmp_path) == []


def test_each_writing_thread_has_a_temp_directory_and_a_restart_clears_them(tmp_path):
    import threading

    store = DirBlobStore(tmp_path)
    threads = [threading.Thread(target=store.put, args=(sha(bytes([i])), bytes([i]))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([p for p in (tmp_path / "tmp").iterdir() if p.is_dir()]) == 3
    leftover = next((tmp_path / "tmp").iterdir()) / "half-written"
    leftover.write_bytes(b"x")  # a crash while writing
    DirBlobStore(tmp_path)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert DirBlobStore(tmp_path).missing([sha(bytes([i])) for i in range(3)]) == []


# -- collection (blobs Rule 4) ------------------------------------------------------------

def test_stored_lists_every_blob_with_size_and_age(blobs):
    datas = [b"one", b"two two", os.urandom(3000)]
    for data in datas:
        put(blobs, data)
    listed = dict(blobs.stored())
    assert {name: info.size for name, info in listed.items()} == {sha(d): len(d) for d in datas}
    assert all(info.mtime > 0 for info in listed.values())


def test_delete_older_deletes_only_before_the_cutoff(blobs):
    put(blobs, b"doomed")
    mtime = dict(blobs.stored())[sha(b"doomed")].mtime
    assert blobs.delete_older(sha(b"doomed"), cutoff=mtime - 1) is None  # not old enough: kept
    assert blobs.missing([sha(b"doomed")]) == []
    assert blobs.delete_older(sha(b"doomed"), cutoff=mtime + 10) == len(b"doomed")
    assert blobs.missing([sha(b"doomed")]) == [sha(b"doomed")]
    assert blobs.delete_older(sha(b"doomed"), cutoff=mtime + 10) is None  # gone already
    with pytest.raises(BlobNotFound):
        b"".join(blobs.read(sha(b"doomed")))


def test_claim_is_missing_and_refreshes_old_blobs_in_a_directory(tmp_path):
    blobs = DirBlobStore(tmp_path / "blobs")
    put(blobs, b"old")
    path = blobs.path(sha(b"old"))
    os.utime(path, (1_000_000, 1_000_000))
    assert blobs.claim([sha(b"old"), sha(b"absent")]) == [sha(b"absent")]
    assert path.stat().st_mtime > 1_000_000  # claimed: a GC pass now finds it young
    assert blobs.delete_older(sha(b"old"), cutoff=2_000_000) is None  # the claim wins: renamed back
    assert path.read_bytes() == b"old"
    assert temp_files(blobs.root) == []


def test_a_blob_claimed_lately_is_not_looked_at_again_while_its_directory_is_unchanged(tmp_path, monkeypatch):
    """dirblobs Rule 4: one stat per directory instead of one per blob; a blob deleted since
    changed its directory, so it is looked at again."""
    blobs = DirBlobStore(tmp_path / "blobs")
    for data in (b"page", b"style"):
        put(blobs, data)
        os.utime(blobs.path(sha(data)).parent, (1_000_000, 1_000_000))  # quiet since long ago
    assert blobs.claim([sha(b"page"), sha(b"absent")]) == [sha(b"absent")]
    looked = []
    real_stat = os.stat
    monkeypatch.setattr("owncdn.control.dirblobs.os.stat", lambda path, *a, **k: looked.append(path) or real_stat(path, *a, **k))
    assert blobs.claim([sha(b"page"), sha(b"style"), sha(b"absent")]) == [sha(b"absent")]
    assert [os.path.basename(p) for p in looked if len(os.path.basename(p)) > 2] == [sha(b"style")]
    # not page: claimed lately, its directory unchanged; nor absent: no such file (Rule 8)
    blobs.path(sha(b"page")).unlink()  # lost by hand: its directory changed
    assert blobs.claim([sha(b"page")]) == [sha(b"page")]


def test_an_absent_blob_is_answered_without_a_stat_and_a_file_named_is_still_looked_at(tmp_path, monkeypatch):
    """dirblobs Rule 8."""
    blobs = DirBlobStore(tmp_path / "blobs")
    put(blobs, b"page")
    looked = []
    real_stat = os.stat
    monkeypatch.setattr("owncdn.control.dirblobs.os.stat", lambda path, *a, **k: looked.append(path) or real_stat(path, *a, **k))
    absent = [sha(b"absent %d" % i) for i in range(20)]
    assert blobs.missing([sha(b"page"), *absent]) == absent
    assert blobs.sizes(absent[:2]) == dict.fromkeys(absent[:2]) and blobs.size(absent[0]) is None
    assert blobs.claim(absent) == absent
    assert {os.path.basename(p) for p in looked} <= {sha(b"page"), sha(b"page")[:2]}  # only the file there
    old_form = hashlib.sha256(b"x").hexdigest()
    for bad in (["not a blob name"], [sha(b"x"), sha(b"y")[:-1] + "4"], [sha(b"x"), old_form + "Z"]):
        with pytest.raises(ValueError):
            blobs.sizes(bad)  # still checked: alone, and after BLAKE3 names
        with pytest.raises(ValueError):
            blobs.claim(bad)
    assert blobs.missing([sha(b"x"), old_form]) == [sha(b"x"), old_form]  # both forms
    part = blobs.part(sha(b"raw"), 3)  # each way a blob lands is known at once
    part.write(b"raw")
    blobs.commit_many([part.finish()])
    writer = blobs.writer(sha(b"written"))
    writer.write(b"written")
    writer.commit()
    assert blobs.missing([sha(b"raw"), sha(b"written")]) == []
    by_hand = blobs.path(absent[0])
    by_hand.write_bytes(b"absent 0")  # no process but this one writes here (Rule 7): not known ...
    assert blobs.size(absent[0]) is None
    blobs.path(sha(b"page")).unlink()  # ... and one lost by hand is missing
    assert blobs.missing([sha(b"page")]) == [sha(b"page")]
    monkeypatch.undo()
    del blobs
    again = DirBlobStore(tmp_path / "blobs")  # listed at start
    assert again.sizes([absent[0], sha(b"raw"), sha(b"page")]) == {absent[0]: 8, sha(b"raw"): 3, sha(b"page"): None}
    os.utime(again.path(sha(b"raw")), (1_000_000, 1_000_000))
    assert again.delete_older(sha(b"raw"), cutoff=2_000_000) == 3  # collected: gone from the names too
    assert again.missing([sha(b"raw")]) == [sha(b"raw")]


def test_a_blob_claimed_lately_is_not_collected(tmp_path):
    blobs = DirBlobStore(tmp_path / "blobs")
    put(blobs, b"page")
    assert blobs.claim([sha(b"page")]) == []
    os.utime(blobs.path(sha(b"page")), (1_000_000, 1_000_000))  # set back by hand: still claimed lately
    assert blobs.delete_older(sha(b"page"), cutoff=2_000_000) is None
    assert blobs.claim([sha(b"page")], now=3_000_000) == []  # a given clock looks at every blob
    os.utime(blobs.path(sha(b"page")), (1_000_000, 1_000_000))
    blobs.forget_claims()
    assert blobs.delete_older(sha(b"page"), cutoff=2_000_000) == len(b"page")
    assert blobs.claim([sha(b"page")]) == [sha(b"page")]


def test_a_sync_with_no_directory_renamed_into_looks_at_no_name(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr("owncdn.control.dirblobs._sync_dirs", synced.extend)
    store = DirBlobStore(tmp_path)
    put(store, b"one")
    store.sync([sha(b"one")])  # every directory is unknown after a start: all synced
    store.sync([sha(b"one"), "not a blob name"])  # nothing renamed into since: nothing to do
    assert synced == [tmp_path / sha(b"one")[:2]]
    put(store, b"two")
    with pytest.raises(ValueError):
        store.sync([sha(b"two"), "not a blob name"])


@pytest.mark.parametrize("name", [sha, old])
def test_a_blob_a_crash_left_in_gc_trash_is_put_back_at_start(tmp_path, name):
    blobs = DirBlobStore(tmp_path / "blobs")
    put(blobs, b"kept", name(b"kept"))
    os.replace(blobs.path(name(b"kept")), blobs.tmp / f"gc.{name(b'kept')}")  # as delete_older does first
    again = DirBlobStore(tmp_path / "blobs")
    assert again.missing([name(b"kept")]) == []
    assert temp_files(again.root) == []


def test_dir_store_reads_a_blob_into_a_buffer(tmp_path):
    from owncdn.control.blobs import BlobError

    blobs = DirBlobStore(tmp_path / "blobs")
    data = os.urandom(70_000)
    put(blobs, data)
    buffer = bytearray(len(data) + 10)
    blobs.read_into(sha(data), memoryview(buffer)[5:5 + len(data)])
    assert bytes(buffer[5:5 + len(data)]) == data and buffer[:5] == bytes(5)
    with pytest.raises(BlobError, match="ended after"):
        blobs.read_into(sha(data), memoryview(bytearray(len(data) + 1)))
    with pytest.raises(BlobNotFound):
        blobs.read_into(sha(b"none"), memoryview(bytearray(1)))


def test_dir_store_leaves_to_the_group_sync_the_directories_it_wrote_back(tmp_path, monkeypatch):
    """A bundle of SYNCFS_MIN blobs or more: its renames are written back by a group
    syncfs begun at once in the background; a release then syncs no directory of its own."""
    import time

    from owncdn import durable

    synced, syncfs = [], []
    monkeypatch.setattr("owncdn.control.dirblobs._sync_dirs", synced.extend)
    monkeypatch.setattr(durable, "_syncfs", lambda fd: syncfs.append(fd) or 0)
    store = DirBlobStore(tmp_path)
    many = [(sha(b"%d" % i), b"%d" % i) for i in range(durable.SYNCFS_MIN)]
    store.put_many(many)  # one group syncfs for the data, and soon() one for the renames
    deadline = time.monotonic() + 5
    while store._group.flushing:  # soon()'s thread, until its syncfs ended
        assert time.monotonic() < deadline
        time.sleep(0.001)
    store.sync([h for h, _ in many])
    assert synced == [] and len(syncfs) == 2 and store._group.covered(0)
    put(store, b"later")  # one blob, renamed after those syncs: fsynced by the release
    store.sync([sha(b"later")] + [h for h, _ in many])
    assert synced == [tmp_path / sha(b"later")[:2]]


def read_all_ways(store: DirBlobStore, name: str, size: int) -> list[bytes]:
    """The blob as ``read``, ``read_into`` and ``open_blob`` give it."""
    buffer = bytearray(size)
    store.read_into(name, memoryview(buffer))
    fd, base, length = store.open_blob(name)
    try:
        via_fd = os.pread(fd, size if length is not None else size + 1, base)
        assert length in (None, size)
    finally:
        os.close(fd)
    return [b"".join(store.read(name)), bytes(buffer), via_fd]


@pytest.mark.parametrize("end", ["commit", "discard", "failed flush"])
def test_an_offered_blob_is_read_from_its_temp_file_until_renamed_and_never_counted_stored(tmp_path, end):
    """dirblobs Rule 2: offered blobs are readable by name, not stored; renamed or removed,
    they are read from where they are then, or not found."""
    store = DirBlobStore(tmp_path)
    datas = [os.urandom(n) for n in (0, 10, 70_000)]
    parts = [store.part(sha(d), len(d)) for d in datas]
    for part, data in zip(parts, datas):
        part.write(data)
    written = [part.finish() for part in parts]
    store.offer(written)
    for data in datas:
        assert read_all_ways(store, sha(data), len(data)) == [data] * 3
    names = [sha(d) for d in datas]
    assert store.missing(names) == names and store.claim(names) == names
    assert store.sizes(names) == dict.fromkeys(names)
    if end == "commit":
        store.commit_many(written)
        assert store.missing(names) == [] and temp_files(tmp_path) == []
        for data in datas:
            assert read_all_ways(store, sha(data), len(data)) == [data] * 3
    else:
        if end == "discard":
            store.discard(written)
        else:
            def fail(paths):
                raise OSError("the disk is gone")

            store._group.sync_paths = fail
            with pytest.raises(OSError):
                store.commit_many(written)
        assert temp_files(tmp_path) == [] and store.missing(names) == names
        for name in names:
            with pytest.raises(BlobNotFound):
                store.open_blob(name)
    assert store._offered == {}


def test_a_blob_offered_by_two_uploads_stays_readable_until_both_ended(tmp_path):
    """dirblobs Rule 2: the first upload's rename does not withdraw the second's offer."""
    store = DirBlobStore(tmp_path)
    data = os.urandom(5000)
    first, second = store.write_many([(sha(data), data)])[0], store.write_many([(sha(data), data)])[0]
    store.offer(first)
    store.offer(second)
    store.discard(first)
    assert read_all_ways(store, sha(data), len(data)) == [data] * 3
    store.commit_many(second)
    assert store._offered == {} and read_all_ways(store, sha(data), len(data)) == [data] * 3


def test_an_s3_store_refuses_a_resumed_put(tmp_path, seaweed):
    """It keeps no partial uploads (api/blobs.py Rule 7): 400, as RFC 9110 §14.5 asks."""
    from owncdn.client import Client
    from owncdn.client.errors import ApiError
    from owncdn.control.api import ApiServer, create_app
    from owncdn.control.store import Store, sqlite_url

    blobs = S3BlobStore("owncdn-blobs", f"t-{secrets.token_hex(4)}/", client=seaweed.client())
    with Store(sqlite_url(tmp_path)) as store:
        store.migrate()
        _, token = store.create_token("ci", {"deploy", "read"})
        with ApiServer(create_app(store, blobs=blobs)) as server, Client(server.url, token) as client:
            data = os.urandom(3000)
            with pytest.raises(ApiError) as caught:
                client.put_blob(sha(data), data[1000:], offset=1000, size=len(data))
            assert caught.value.status == 400 and caught.value.code == "no_partial_uploads"
            assert client.missing_blobs([sha(data)]) == [sha(data)] and client.partial == {}
            assert client.put_blob(sha(data), data)["size"] == 3000


def test_an_s3_store_with_a_partials_directory_resumes_a_cut_put(tmp_path, seaweed):
    """s3blobs Rule 2: the cut upload's bytes kept locally, the rest sent with Content-Range."""
    from owncdn.client import Client
    from owncdn.control.api import ApiServer, create_app
    from owncdn.control.blobgc import collect_blobs
    from owncdn.control.store import Store, sqlite_url
    from owncdn.core.content.retention import Retention
    from tests.control.test_blob_resume import cut_put
    from tests.control.test_rawbody import Conn

    blobs = S3BlobStore("owncdn-blobs", f"t-{secrets.token_hex(4)}/", client=seaweed.client(),
                        partials_dir=tmp_path / "partials")
    data = os.urandom(12 << 20)  # past the spool's memory: on disk when cut
    small = os.urandom(3 << 20)  # still in memory when cut
    with Store(sqlite_url(tmp_path)) as store:
        store.migrate()
        _, token = store.create_token("ci", {"deploy", "read"})
        with ApiServer(create_app(store, blobs=blobs)) as server, Client(server.url, token) as client:
            for blob, sent in ((data, 10 << 20), (small, 2 << 20)):
                cut_put(Conn(server.port, token), blob, sent)
            deadline = time.monotonic() + 10
            while len(blobs.partials.held([sha(data), sha(small)])) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert client.missing_blobs([sha(data), sha(small)]) == [sha(data), sha(small)]
            kept = dict(client.partial)
            assert (8 << 20) < kept[sha(data)] <= (10 << 20) and (1 << 20) <= kept[sha(small)] <= (2 << 20)
            for blob in (data, small):
                got = client.put_blob(sha(blob), blob[kept[sha(blob)]:], size=len(blob), offset=kept[sha(blob)])
                assert got == {"sha256": sha(blob), "size": len(blob)}
                assert b"".join(blobs.read(sha(blob))) == blob
            assert client.resumed == [kept[sha(data)], kept[sha(small)]]
            assert blobs.partials.held([sha(data), sha(small)]) == {}
            assert os.listdir(tmp_path / "partials" / "tmp") == []  # no spool left behind
            other = os.urandom(3 << 20)
            cut_put(Conn(server.port, token), other, 2 << 20)
            deadline = time.monotonic() + 10
            while not blobs.partials.held([sha(other)]) and time.monotonic() < deadline:
                time.sleep(0.02)
        report = collect_blobs(store, blobs, Retention(), now=time.time() + 2 * 86400)  # a day and more later
        assert report.partials_dropped == 1 and blobs.partials.held([sha(other)]) == {}
        assert os.listdir(tmp_path / "partials") == ["tmp"]
