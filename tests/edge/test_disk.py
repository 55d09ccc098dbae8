"""The disk tier: round trips, restart, crash safety, budget, processes sharing a root."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import pytest

from owncdn.edge import disk, disksnapshot
from owncdn.edge.disk import (READ_AHEAD, TMP_PREFIX, CorruptObject, DiskError, DiskStore,
                              ObjectGone, ObjectTooLarge, object_name)

MiB = 1 << 20


def body_for(key: str, size: int) -> bytes:
    seed = key.encode() * (size // max(len(key), 1) + 1)
    return seed[:size]


def all_files(root: Path) -> list[Path]:
    return [p for p in root.glob("??/*")]


def temp_files(root: Path) -> list[Path]:
    return [p for p in all_files(root) if p.name.startswith(TMP_PREFIX)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "disk"


@pytest.fixture
def store(root: Path) -> DiskStore:
    return DiskStore(root, 64 * MiB, fsync="never")


def read(store: DiskStore, key: str) -> tuple[bytes, bytes]:
    entry = store.get(key)
    assert entry is not None, key
    with store.open(entry) as obj:
        return obj.meta, obj.read()


# -- round trips -----------------------------------------------------------------

def test_put_get_open_remove(store: DiskStore, root: Path) -> None:
    key = "site example.test/a?x=1 cookie:lang=en"
    entry = store.put(key, b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n", b"hello",
                      tags=("product-42", "all"), uri="blog|example.test|/a?x=1")
    assert entry.size == 5 and entry.verified
    assert store.get(key) is entry and key in store and len(store) == 1
    assert Path(entry.path) == root / object_name(key)[:2] / object_name(key)
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    with store.open(entry) as obj:
        assert obj.meta == b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
        assert obj.size == 5
        assert os.pread(obj.fd, obj.size, obj.body_offset) == b"hello"
    assert store.keys_for_tag("product-42") == {key}
    assert store.keys_with_uri_prefix("blog|example.test|/") == {key}
    assert store.keys_with_uri_prefix("shop|") == set()
    assert store.remove(key) is True
    assert store.get(key) is None and len(store) == 0 and store.used == 0
    assert store.keys_for_tag("product-42") == set() and store.by_uri == {}
    assert all_files(root) == []
    assert store.remove(key) is False


def test_streaming_writer_keeps_memory_bounded(store: DiskStore, root: Path) -> None:
    chunk = b"0123456789abcdef" * 4096  # 64 KiB
    with store.writer("big", b"meta", uri="svc|h|/big") as w:
        for _ in range(64):  # 4 MiB
            w.write(chunk)
            assert w._buffered <= 256 * 1024 + len(chunk)
        entry = w.commit()
    assert entry.size == 64 * len(chunk)
    meta, body = read(store, "big")
    assert meta == b"meta" and body == chunk * 64
    assert temp_files(root) == []


def test_aborted_writer_leaves_nothing(store: DiskStore, root: Path) -> None:
    store.put("k", b"m", b"old")
    w = store.writer("k", b"m2")
    w.write(b"new body")
    assert len(temp_files(root)) == 1
    w.abort()
    assert temp_files(root) == [] and read(store, "k") == (b"m", b"old")
    with store.writer("k", b"m3") as w:  # leaving the block without commit aborts
        w.write(b"x")
    assert temp_files(root) == [] and read(store, "k") == (b"m", b"old")


def test_overwrite_replaces_object_and_accounting(store: DiskStore) -> None:
    store.put("k", b"m", b"a" * 1000, tags=("t1",), uri="u1")
    first = store.used
    store.put("k", b"m", [b"b" * 10, b"c" * 10], tags=("t2",), uri="u2")
    assert read(store, "k") == (b"m", b"b" * 10 + b"c" * 10)
    assert store.used == first - 980 and len(store) == 1
    assert store.keys_for_tag("t1") == set() and store.keys_for_tag("t2") == {"k"}
    assert store.by_uri == {"u2": {"k"}}


def test_keys_round_trip_any_string(store: DiskStore, root: Path) -> None:
    keys = ["", "ünïcødé/路径?q=✓", "a\nb\0c", "x" * 5000, "lone \udcff surrogate"]
    for key in keys:
        store.put(key, b"", key.encode("utf-8", "surrogatepass"), uri=key)
    again = DiskStore(root, 64 * MiB)
    assert again.load() == len(keys)
    for key in keys:
        assert read(again, key)[1] == key.encode("utf-8", "surrogatepass")
        assert again.keys_with_uri_prefix(key) >= {key}


# -- restart ---------------------------------------------------------------------

def test_restart_loads_headers_only(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = DiskStore(root, 64 * MiB, fsync="always")
    want = {}
    for i in range(50):
        key = f"site s.test/{i}"
        size = (i * 7919) % (300 * 1024)
        first.put(key, f"head {i}".encode(), body_for(key, size),
                  tags=(f"t{i % 3}", "all"), uri=f"svc|s.test|/{i}")
        want[key] = size
    first.close()
    (root / disksnapshot.SNAPSHOT_NAME).unlink()  # the full scan

    reads: list[tuple[int, int]] = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: reads.append((n, off)) or real_pread(fd, n, off))
    monkeypatch.setattr(os, "preadv", lambda *a: pytest.fail("load() read a body"))
    again = DiskStore(root, 64 * MiB)
    assert again.load() == 50
    assert reads and all(off == 0 and n <= READ_AHEAD for n, off in reads)
    monkeypatch.undo()

    assert {k: again.get(k).size for k in again.keys()} == want
    assert again.used == first.used
    assert again.keys_for_tag("t1") == {f"site s.test/{i}" for i in range(1, 50, 3)}
    assert again.keys_for_tag("all") == set(want)
    assert again.keys_with_uri_prefix("svc|s.test|/4") == {
        "site s.test/4", *{f"site s.test/{i}" for i in range(40, 50)}}
    entry = again.get("site s.test/7")
    assert not entry.verified
    assert read(again, "site s.test/7") == (b"head 7", body_for("site s.test/7", want["site s.test/7"]))
    assert entry.verified


# -- crash safety ----------------------------------------------------------------

def test_load_cleans_temp_files_of_dead_writers(root: Path) -> None:
    store = DiskStore(root, MiB)
    store.put("kept", b"", b"body")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    sub = root / "00"
    (sub / f"{TMP_PREFIX}{dead}-0-abcd").write_bytes(b"half an object")
    (sub / f"{TMP_PREFIX}{os.getpid()}-99-abcd").write_bytes(b"ours, from before a restart")
    (sub / f"{TMP_PREFIX}junk").write_bytes(b"")
    live_other = sub / f"{TMP_PREFIX}{os.getppid()}-0-abcd"
    live_other.write_bytes(b"another live worker is writing this")
    w = store.writer("in progress", b"")
    w.write(b"still writing")

    assert store.load() == 1
    assert store.last_load.removed_temp == 3
    assert sorted(p.name for p in temp_files(root)) == sorted(
        [live_other.name, os.path.basename(w.tmp_path)])
    w.commit()
    assert read(store, "in progress") == (b"", b"still writing")


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x40]))


DAMAGE = {
    "truncated": lambda e: os.truncate(e.path, e.file_size - 1),
    "truncated inside header": lambda e: os.truncate(e.path, 30),
    "empty": lambda e: os.truncate(e.path, 0),
    "flipped body byte": lambda e: _flip(e.path, e.body_offset + e.size // 2),
    "flipped meta byte": lambda e: _flip(e.path, e.body_offset - 1),
    "flipped key byte": lambda e: _flip(e.path, 61),
    "flipped header byte": lambda e: _flip(e.path, 40),  # in the object id
    "garbage header": lambda e: Path(e.path).write_bytes(os.urandom(200) + b"x" * e.size),
    "extended": lambda e: Path(e.path).write_bytes(Path(e.path).read_bytes() + b"tail"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_file_is_never_served_after_restart(root: Path, damage: str) -> None:
    store = DiskStore(root, MiB, fsync="always")
    entry = store.put("victim", b"head", body_for("victim", 20000), tags=("t",), uri="u")
    store.put("bystander", b"head", b"fine")
    DAMAGE[damage](entry)

    again = DiskStore(root, MiB)
    again.load()
    victim = again.get("victim")
    if victim is not None:  # the header survived: only the checksum can tell
        with pytest.raises(CorruptObject):
            again.open(victim)
    assert again.get("victim") is None and "victim" not in again.keys_for_tag("t")
    assert not os.path.exists(entry.path)
    assert read(again, "bystander") == (b"head", b"fine")
    assert again.used == again.get("bystander").file_size


@pytest.mark.parametrize("damage", ["truncated", "garbage header", "flipped key byte"])
def test_damage_under_a_running_store_is_caught_by_open(store: DiskStore, damage: str) -> None:
    entry = store.put("victim", b"head", body_for("victim", 5000))
    DAMAGE[damage](entry)
    with pytest.raises(CorruptObject):
        store.open(entry)
    assert store.get("victim") is None and not os.path.exists(entry.path)


def test_verified_entries_are_opened_without_reading_the_body(
        store: DiskStore, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = store.put("k", b"m", b"x" * 300_000)
    monkeypatch.setattr(os, "preadv", lambda *a: pytest.fail("read the body again"))
    for _ in range(3):
        with store.open(entry) as obj:
            assert obj.meta == b"m" and obj.size == 300_000


def test_refresh_removes_a_corrupt_file(root: Path) -> None:
    a, b = DiskStore(root, MiB, fsync="never"), DiskStore(root, MiB, fsync="never")
    entry = b.put("k", b"m", b"body")
    DAMAGE["flipped header byte"](entry)
    assert a.refresh("k") is None and not os.path.exists(entry.path)


def test_file_under_the_wrong_name_is_removed_on_load(store: DiskStore, root: Path) -> None:
    entry = store.put("a", b"", b"body")
    wrong = Path(entry.path).with_name("0" * 32)
    os.link(entry.path, wrong)
    again = DiskStore(root, MiB)
    assert again.load() == 1 and again.last_load.removed_invalid == 1
    assert not wrong.exists()


CRASH_WRITER = textwrap.dedent("""
    import sys
    from owncdn.edge.disk import DiskStore
    root, fsync, pause_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = DiskStore(root, 1 << 40, fsync=fsync)
    i = 0
    while True:
        key = f"crash/{i}"
        size = (i * 104729) % (2 << 20)
        data = (key.encode() * (size // len(key) + 1))[:size]
        with store.writer(key, key.encode(), tags=("crash",), uri=key) as w:
            for n in range(0, size, 65536):
                w.write(data[n:n + 65536])
                if i == pause_at and n >= size // 2:
                    print("mid", key, flush=True)
                    sys.stdin.read()  # the parent kills us here, half-way through
            w.commit()
        print("committed", key, flush=True)
        i += 1
""")


def _crash_once(root: Path, pause_at: int, run_for: float) -> list[str]:
    """Run the writer, SIGKILL it (after `run_for` s, or when it pauses mid-write)."""
    child = subprocess.Popen([sys.executable, "-c", CRASH_WRITER, str(root), "always", str(pause_at)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    committed: list[str] = []
    reader = threading.Thread(target=lambda: committed.extend(
        line.split()[1] for line in child.stdout
        if line.startswith("committed ") and line.endswith("\n")))  # not one cut by the kill
    reader.start()
    if pause_at >= 0:
        while not any(k == f"crash/{pause_at - 1}" for k in committed):
            assert child.poll() is None, "the writer died on its own"
            time.sleep(0.005)
        time.sleep(0.05)  # it is now blocked inside object `pause_at`
    else:
        time.sleep(run_for)
    child.send_signal(signal.SIGKILL)
    child.wait()
    reader.join()
    child.stdin.close()
    child.stdout.close()
    return committed


def test_sigkill_mid_write_never_serves_a_corrupt_object(root: Path) -> None:
    DiskStore(root, MiB)  # lay out the root
    committed: set[str] = set()
    left_behind = 0
    for pause_at, run_for in [(5, 0), (-1, 0.2), (-1, 0.35), (-1, 0.5)]:
        committed |= set(_crash_once(root, pause_at, run_for))
        store = DiskStore(root, 1 << 40)
        store.load()
        left_behind += store.last_load.removed_temp
        assert temp_files(root) == []
        assert committed <= set(store.keys())
        for key in store.keys():
            try:
                with store.open(store.get(key)) as obj:
                    assert obj.meta == key.encode() and obj.read() == body_for(key, obj.size)
            except CorruptObject:
                assert key not in committed
    assert left_behind >= 1  # at least the paused write


# -- budget ----------------------------------------------------------------------

def test_budget_refuses_objects_larger_than_the_whole_budget(root: Path) -> None:
    store = DiskStore(root, 10_000, fsync="never")
    with pytest.raises(ObjectTooLarge):
        store.put("huge", b"", b"x" * 10_000)
    w = store.writer("streamed", b"")
    w.write(b"x" * 5000)
    with pytest.raises(ObjectTooLarge):
        w.write(b"x" * 5000)
    assert temp_files(root) == [] and len(store) == 0 and store.used == 0

    a = store.put("a", b"mm", b"x" * 6000)
    assert store.used == a.file_size == 6000 + 2 + a.body_offset - 2
    b = store.put("b", b"", b"y" * 6000)  # the caller evicts; the store only counts
    assert store.used == a.file_size + b.file_size > store.budget
    store.remove("a")
    assert store.used == b.file_size


# -- policies and set-up ---------------------------------------------------------

def _eventually(check, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_fsync_policies(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        DiskStore(root, MiB, fsync="sometimes")
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:  # counts only this test's files: other tests' flushers run too
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(root)):
            synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)

    always = DiskStore(root, MiB, fsync="always")
    always.put("a", b"", b"x")
    assert len(synced) == 2 and always._sync.pending == 0  # the file, then its directory
    always.remove("a")
    assert len(synced) == 3

    synced.clear()
    batch = DiskStore(root, MiB, fsync="batch", batch_objects=4, batch_interval=3600)
    for i in range(3):
        batch.put(f"k{i}", b"", b"x")
    dirs = {object_name(f"k{i}")[:2] for i in range(3)}
    assert batch._sync.pending == 3 + len(dirs) and synced == []  # commit never waits
    batch.put("k3", b"", b"x")  # the fourth wakes the flusher
    _eventually(lambda: len(synced) == 4 + len({object_name(f"k{i}")[:2] for i in range(4)}))
    assert batch._sync.pending == 0
    batch.remove("k0")
    assert batch._sync.pending == 1
    batch.flush()
    assert batch._sync.pending == 0
    batch.close()

    timed = DiskStore(root, MiB, fsync="batch", batch_interval=0.05)
    timed.put("t", b"", b"x")
    _eventually(lambda: timed._sync.pending == 0)  # within about one interval
    timed.close()

    synced.clear()
    never = DiskStore(root, MiB, fsync="never")
    never.put("n", b"", b"x")
    never.remove("n")
    never.close()
    assert synced == []


def test_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "someone's file").write_text("keep me")
    with pytest.raises(DiskError, match="refusing"):
        DiskStore(tmp_path, MiB)
    assert (tmp_path / "someone's file").exists()


# -- processes sharing a root ----------------------------------------------------

def test_another_process_writes_are_found_by_refresh(root: Path) -> None:
    a = DiskStore(root, MiB, fsync="never")
    b = DiskStore(root, MiB, fsync="never")
    assert a.get("k") is None and a.refresh("k") is None
    b.put("k", b"v1", b"one", tags=("t",))
    assert a.get("k") is None  # lookups never touch the disk
    found = a.refresh("k")
    assert found is not None and not found.verified and a.keys_for_tag("t") == {"k"}
    assert a.refresh("k") is found
    assert read(a, "k") == (b"v1", b"one")

    b.put("k", b"v2", b"two!")  # replaced behind a's back: open follows the new file
    assert read(a, "k") == (b"v2", b"two!") and a.get("k").size == 4
    b.remove("k")
    with pytest.raises(ObjectGone):
        a.open(a.get("k"))
    assert a.get("k") is None and a.used == 0


SHARED_WRITER = textwrap.dedent("""
    import sys
    from owncdn.edge.disk import DiskStore
    root, name = sys.argv[1], sys.argv[2]
    store = DiskStore(root, 1 << 40, fsync="never")
    for i in range(150):
        for key in (f"{name}/{i}", f"shared/{i % 20}"):
            size = 1000 + (i * 7717) % 60000
            data = ((key + name).encode() * (size // len(key + name) + 1))[:size]
            store.put(key, name.encode(), [data[:size // 2], data[size // 2:]])
        if i % 3 == 0:
            store.remove(f"shared/{(i + 7) % 20}")
""")


def test_two_processes_writing_one_root(root: Path) -> None:
    DiskStore(root, MiB)
    children = [subprocess.Popen([sys.executable, "-c", SHARED_WRITER, str(root), name])
                for name in ("p1", "p2")]
    assert [c.wait(timeout=30) for c in children] == [0, 0]
    store = DiskStore(root, 1 << 40)
    store.load()
    assert store.last_load.removed_temp == store.last_load.removed_invalid == 0
    assert {k for k in store.keys() if not k.startswith("shared/")} == {
        f"{p}/{i}" for p in ("p1", "p2") for i in range(150)}
    for key in store.keys():
        meta, body = read(store, key)  # whole objects only: raises if any were torn
        owner = meta.decode()
        assert body == body_for(key + owner, len(body))
    assert temp_files(root) == []


def test_disk_module_has_no_hidden_body_reads_in_lookups(store: DiskStore,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store.put("k", b"m", b"body", tags=("t",), uri="u")
    monkeypatch.setattr(disk.os, "open", lambda *a, **k: pytest.fail("lookup touched the disk"))
    assert store.get("k") is not None and "k" in store and store.get("nope") is None
    assert store.keys_for_tag("t") == {"k"} and store.keys_with_uri_prefix("u") == {"k"}


# -- the index's memory layout (diskindex.py rules 3-5) ----------------------------

def test_uris_rebuilt_from_keys_and_uris_kept_answer_alike(store: DiskStore, root: Path) -> None:
    plain = {f"site ex.test/p/{i}.png": f"site|ex.test|/p/{i}.png" for i in range(3)}
    odd = {"site ex.test/p/0.png cookie:lang=en": "site|ex.test|/p/0.png",  # a cookie key
           "other ex.test/q?a=1&b=2": "other|ex.test|/q?b=2&a=1",  # a normalised query
           "no-slash": "svc|h|*"}
    for key, uri in {**plain, **odd}.items():
        store.put(key, b"", b"x", uri=uri)
    for index in (store, _reloaded(root)):
        assert {k: index.get(k).uri for k in index.keys()} == {**plain, **odd}
        assert index.keys_for_uri("site|ex.test|/p/0.png") == {
            "site ex.test/p/0.png", "site ex.test/p/0.png cookie:lang=en"}
        assert index.keys_for_uri("site|ex.test|/p/1.png") == {"site ex.test/p/1.png"}
        assert index.keys_for_uri("other|ex.test|/q?b=2&a=1") == {"other ex.test/q?a=1&b=2"}
        assert index.keys_for_uri("site|ex.test|/p/9.png") == set()
        assert index.keys_with_uri_prefix("site|") == set(plain) | {"site ex.test/p/0.png cookie:lang=en"}
        assert index.keys_with_uri_prefix("site|ex.test|/p/1") == {"site ex.test/p/1.png"}
        assert index.keys_with_uri_prefix("") == set(plain) | set(odd)
        assert index.by_uri["site|ex.test|/p/0.png"] == {
            "site ex.test/p/0.png", "site ex.test/p/0.png cookie:lang=en"}
    for key in [*plain, *odd]:
        store.remove(key)
    assert store.by_uri == {} and store._index.prefixes == {} and store._index.uris == {}


def _reloaded(root: Path) -> DiskStore:
    again = DiskStore(root, 64 * MiB, fsync="never")
    again.load()
    return again


def test_tag_lists_drop_stale_keys(store: DiskStore) -> None:
    for i in range(40):
        store.put(f"k{i}", b"", b"x", tags=("all", f"t{i % 2}", "all"), uri=f"u/{i}")
    for i in range(0, 40, 2):
        store.put(f"k{i}", b"", b"y", tags=("t1",), uri=f"u/{i}")  # re-tagged
    for i in range(30):
        store.remove(f"k{i}")
    assert store.keys_for_tag("all") == {f"k{i}" for i in range(31, 40, 2)}
    assert store.keys_for_tag("t1") == {f"k{i}" for i in range(30, 40)}
    assert store.keys_for_tag("t0") == set() and "t0" not in store.by_tag
    tagged = store._index.tags["t1"]
    assert len(tagged.keys) <= 2 * tagged.live + 8  # compacted as keys went
    entry = store.get("k31")
    assert entry.tags == ("all", "t1", "all") and entry.has_tag("t1") and not entry.has_tag("t")


def test_entry_fields_survive_packing(store: DiskStore, root: Path) -> None:
    meta = b"m" * 1000
    entry = store.put("k", meta, b"b" * 70_000, tags=("a", "b"), uri="svc|h|/k")
    again = _reloaded(root).get("k")
    for e in (entry, again):
        assert (e.key, e.uri, e.tags, e.size, e.meta_size) == ("k", "svc|h|/k", ("a", "b"), 70_000, 1000)
        assert e.file_size == e.body_offset + 70_000 == os.path.getsize(e.path)
        assert e.object_id == entry.object_id
    assert entry.verified and not again.verified
    assert "unverified" in repr(again) and again.root == str(root)


# -- the index snapshot (disksnapshot.py) -----------------------------------------

@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch):
    """Shrink the racy window to 20 ms: `settle()` then makes every directory old enough
    to be recorded as exact (disksnapshot.py rule 2), without waiting 2 s."""
    monkeypatch.setattr(disksnapshot, "RACY_NS", 20_000_000)
    return lambda: time.sleep(0.03)


def fill(store: DiskStore, n: int, prefix: str = "site s.test/") -> dict[str, bytes]:
    bodies = {}
    for i in range(n):
        key = f"{prefix}{i}"
        bodies[key] = body_for(key, (i * 7919) % 5000)
        store.put(key, f"head {i}".encode(), bodies[key], tags=(f"t{i % 3}", "all"),
                  uri=f"svc|s.test|/{i}" if i % 4 else f"kept uri {i}")
    return bodies


def describe(store: DiskStore) -> dict:
    """Everything the index says, to compare a load from the snapshot with a full scan."""
    entries = {k: (e.uri, e.tags, e.size, e.body_offset, e.object_id, e.verified)
               for k in store.keys() for e in [store.get(k)]}
    return {"entries": entries, "used": store.used, "by_uri": store.by_uri, "by_tag": store.by_tag}


def full_scan(root: Path) -> dict:
    """What load() finds without a snapshot (the snapshot is put back after)."""
    snap = root / disksnapshot.SNAPSHOT_NAME
    saved = snap.read_bytes() if snap.exists() else None
    snap.unlink(missing_ok=True)
    scanned = _reloaded(root)
    assert scanned.last_load.snapshot == "none"
    if saved is not None:
        snap.write_bytes(saved)
    return describe(scanned)


def opened_object_files(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spy on os.open: the object and temp files (under <root>/xx/) opened from now on."""
    opened: list[str] = []
    real_open = os.open
    inside = str(root) + os.sep

    def spy(path, *args, **kwargs):
        path = os.fspath(path)
        if path.startswith(inside) and os.sep in path[len(inside):]:
            opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return opened


def key_in_dir(directory: str, prefix: str = "new/") -> str:
    return next(k for i in itertools.count() if object_name(k := f"{prefix}{i}")[:2] == directory)


def test_snapshot_written_on_close_and_used_on_load(root: Path, settled,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = DiskStore(root, 64 * MiB, fsync="always")
    bodies = fill(store, 300)
    want = describe(store)
    settled()
    store.close()
    assert (root / disksnapshot.SNAPSHOT_NAME).exists()

    opened = opened_object_files(root, monkeypatch)
    monkeypatch.setattr(os, "scandir", lambda *a: pytest.fail("load() listed a directory"))
    again = DiskStore(root, 64 * MiB)
    assert again.load() == 300
    monkeypatch.undo()
    assert opened == []
    assert again.last_load.snapshot == "used" and again.last_load.scanned_dirs == 0
    assert again.last_load.from_snapshot == 300
    assert again.keys() == store.keys()  # the index's order survives
    unverified = {k: (*v[:-1], False) for k, v in want["entries"].items()}
    assert describe(again) == {**want, "entries": unverified} == full_scan(root)
    for key in ("site s.test/7", "site s.test/8"):  # rebuilt and kept URIs
        assert read(again, key) == (f"head {key.rsplit('/', 1)[1]}".encode(), bodies[key])
        assert again.get(key).verified


def test_changed_directories_are_rescanned_exactly(root: Path, settled) -> None:
    store = DiskStore(root, 64 * MiB, fsync="never")
    fill(store, 300)
    settled()
    store.close()
    victims = [f"site s.test/{i}" for i in (3, 4, 5)]
    # after the snapshot (another process, or this one before a crash): add, replace, remove
    other = DiskStore(root, 64 * MiB, fsync="never")
    added = key_in_dir(object_name(victims[0])[:2])
    other.put(added, b"added", b"new body", tags=("t1",), uri="svc|s.test|/added")
    other.put(victims[1], b"replaced", b"other body", tags=("t9",), uri="svc|s.test|/4")
    other.remove(victims[2])
    changed = {object_name(k)[:2] for k in victims}

    again = _reloaded(root)
    report = again.last_load
    assert report.snapshot == "used" and report.scanned_dirs == len(changed)
    assert report.from_snapshot == 300 - sum(object_name(k)[:2] in changed for k in store.keys())
    assert describe(again) == full_scan(root)  # before the reads below verify entries
    assert len(again) == 300 and victims[2] not in again
    assert read(again, added) == (b"added", b"new body")
    assert read(again, victims[1]) == (b"replaced", b"other body")
    assert again.keys_for_tag("t9") == {victims[1]} and victims[1] not in again.keys_for_tag("t1")
    assert again.keys()[-2:] == [added, victims[1]]  # files the snapshot did not know: last


def test_directories_changed_just_before_the_snapshot_are_rescanned(root: Path) -> None:
    store = DiskStore(root, 64 * MiB, fsync="never")
    fill(store, 50)
    store.close()  # within RACY_NS (2 s) of the writes: a change in the same clock tick
    again = _reloaded(root)  # could leave the times as recorded (disksnapshot.py rule 2)
    assert again.last_load.snapshot == "used" and again.last_load.from_snapshot == 0
    assert again.last_load.scanned_dirs == 256 and describe(again) == full_scan(root)


def test_objects_the_index_did_not_know_keep_their_directory_scanned(root: Path, settled) -> None:
    a = DiskStore(root, 64 * MiB, fsync="never")
    b = DiskStore(root, 64 * MiB, fsync="never")  # another process sharing the root
    fill(a, 100)
    b_key = key_in_dir(object_name("site s.test/1")[:2], "b/")
    b.put(b_key, b"b", b"written by b")
    gone = "site s.test/2"
    b.remove(gone)  # behind a's back
    settled()
    a.close()  # a's index lacks b_key and still holds `gone`
    again = _reloaded(root)
    assert again.last_load.scanned_dirs == len({object_name(k)[:2] for k in (b_key, gone)})
    assert describe(again) == full_scan(root)
    assert read(again, b_key) == (b"b", b"written by b") and gone not in again


def test_entries_from_the_snapshot_are_verified_on_first_open(root: Path, settled) -> None:
    store = DiskStore(root, 64 * MiB, fsync="never")
    entry = store.put("victim", b"head", body_for("victim", 20000))
    store.put("bystander", b"head", b"fine")
    settled()
    store.close()
    _flip(entry.path, entry.body_offset + 100)  # in place: no directory changes
    again = _reloaded(root)
    assert again.last_load.from_snapshot == 2
    with pytest.raises(CorruptObject):
        again.open(again.get("victim"))
    assert "victim" not in again and not os.path.exists(entry.path)
    assert read(again, "bystander") == (b"head", b"fine")


def _rewrite_with_crc(path: Path, edit) -> None:
    """Change the snapshot and fix its checksum, so that only the other checks can tell."""
    data = bytearray(path.read_bytes()[:-4])
    edit(data)
    path.write_bytes(bytes(data) + zlib.crc32(data).to_bytes(4, "little"))


SNAPSHOT_DAMAGE = {
    "flipped magic byte": lambda p: _flip(p, 2),
    "flipped dir byte": lambda p: _flip(p, p.stat().st_size // 8),
    "flipped entry byte": lambda p: _flip(p, p.stat().st_size // 2),
    "flipped name byte": lambda p: _flip(p, p.stat().st_size - 10),
    "flipped checksum byte": lambda p: _flip(p, p.stat().st_size - 1),
    "truncated": lambda p: os.truncate(p, p.stat().st_size - 1),
    "truncated to a header": lambda p: os.truncate(p, 20),
    "empty": lambda p: os.truncate(p, 0),
    "garbage": lambda p: p.write_bytes(os.urandom(p.stat().st_size)),
    "newer format version": lambda p: _rewrite_with_crc(p, lambda d: d.__setitem__(8, 99)),
    "other object format": lambda p: _rewrite_with_crc(p, lambda d: d.__setitem__(10, 99)),
    "lengths that do not add up": lambda p: _rewrite_with_crc(p, lambda d: d.__setitem__(12, 99)),
}


@pytest.mark.parametrize("damage", SNAPSHOT_DAMAGE)
def test_unusable_snapshot_is_ignored_and_removed(root: Path, settled, damage: str) -> None:
    store = DiskStore(root, 64 * MiB, fsync="never")
    fill(store, 100)
    settled()
    store.close()
    want = full_scan(root)
    snap = root / disksnapshot.SNAPSHOT_NAME
    SNAPSHOT_DAMAGE[damage](snap)
    again = _reloaded(root)
    assert again.last_load.snapshot.startswith("ignored") and again.last_load.scanned_dirs == 256
    assert describe(again) == want and not snap.exists()


def test_snapshot_of_another_root_is_ignored(tmp_path: Path, settled) -> None:
    a = DiskStore(tmp_path / "a", 64 * MiB, fsync="never")
    fill(a, 50)
    b = DiskStore(tmp_path / "b", 64 * MiB, fsync="never")
    fill(b, 20, "other/")
    settled()
    a.close()
    os.replace(tmp_path / "a" / disksnapshot.SNAPSHOT_NAME, tmp_path / "b" / disksnapshot.SNAPSHOT_NAME)
    again = _reloaded(tmp_path / "b")
    assert again.last_load.snapshot == "ignored: written for another root"
    assert sorted(again.keys()) == sorted(b.keys())


def test_save_snapshot_while_running_and_temp_leftovers(root: Path, settled) -> None:
    store = DiskStore(root, 64 * MiB, fsync="batch")
    fill(store, 40)
    settled()
    assert store.save_snapshot() == 256  # every directory described exactly
    leftover = root / f"{disksnapshot.SNAPSHOT_NAME}.tmp-1-abcd"
    leftover.write_bytes(b"half a snapshot")
    os.utime(leftover, (time.time() - 7200,) * 2)
    store.put("later", b"", b"after the snapshot")  # then a crash: no close()
    again = _reloaded(root)
    assert again.last_load.from_snapshot == 40 - sum(
        object_name(k)[:2] == object_name("later")[:2] for k in store.keys() if k != "later")
    assert describe(again) == full_scan(root) and not leftover.exists()
    store.close()
