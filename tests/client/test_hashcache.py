"""The push hash cache (client/hashcache.py) and its use by scan_site (sitedir rule 6)."""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import threading
import time
from pathlib import Path

import pytest

from owncdn.client import hashcache, sitedir
from owncdn.client.hashcache import FORMAT, HashCache
from owncdn.client.sitedir import scan_site
from owncdn.core.content.digest import digest


def read_entries(path: str) -> dict:
    form, files, _released = marshal.loads(Path(path).read_bytes())
    assert form == FORMAT
    return files


def write_entries(path: str, files: dict) -> None:
    Path(path).write_bytes(marshal.dumps((FORMAT, files)))


def counting_hash(monkeypatch) -> list:
    hashed = []
    real = sitedir._hash_files

    def spy(sources, sizes):
        hashed.extend(os.path.basename(source) for source in sources)
        return real(sources, sizes)

    monkeypatch.setattr(sitedir, "_hash_files", spy)
    return hashed


def test_unchanged_files_are_not_hashed_again(tmp_path, monkeypatch):
    monkeypatch.setattr(hashcache, "RACY_NS", -10**12)  # trust entries at once (no 2 s wait in a test)
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.html").write_bytes(b"a")
    (site / "b.html").write_bytes(b"b")
    hashed = counting_hash(monkeypatch)
    first = scan_site(site, cache=HashCache.for_root(site, tmp_path / "cache"))
    assert sorted(hashed) == ["a.html", "b.html"]

    hashed.clear()
    (site / "b.html").write_bytes(b"bb")  # changed: size and mtime differ
    second = scan_site(site, cache=HashCache.for_root(site, tmp_path / "cache"))
    assert hashed == ["b.html"]
    assert second.manifest.files["a.html"] == first.manifest.files["a.html"]
    assert second.manifest.files["b.html"].sha256 == digest(b"bb")


def test_racy_entries_are_hashed_again(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"x")
    st = os.stat(f)
    cache = HashCache(tmp_path / "c.json")
    cache.put("x", st, "0" * 64 + "-b3", hashed_at=time.time_ns())  # modified within 2 s of hashing: racy
    cache.save()
    assert HashCache(tmp_path / "c.json").get("x", st) is None
    cache.put("x", st, "0" * 64 + "-b3", hashed_at=max(st.st_mtime_ns, st.st_ctime_ns) + hashcache.RACY_NS + 1)
    cache.save()
    again = HashCache(tmp_path / "c.json")
    assert again.get("x", st) == "0" * 64 + "-b3" and again.hits == 1


def test_a_file_remembered_by_its_sha256_keeps_that_name_until_it_changes(tmp_path, monkeypatch):
    """Rule 4: after an upgrade, an unchanged file is not read again and keeps the name
    its blob is stored under; a changed one is named by BLAKE3."""
    monkeypatch.setattr(hashcache, "RACY_NS", -10**12)
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.html").write_bytes(b"a")
    cache = HashCache.for_root(site, tmp_path / "cache")
    scan_site(site, cache=cache)
    entries = read_entries(cache.path)
    assert entries["a.html"][5] == digest(b"a")
    entries["a.html"] = (*entries["a.html"][:5], hashlib.sha256(b"a").hexdigest(), entries["a.html"][6])  # as before BLAKE3
    write_entries(cache.path, entries)
    hashed = counting_hash(monkeypatch)
    again = scan_site(site, cache=HashCache.for_root(site, tmp_path / "cache"))
    assert hashed == [] and again.manifest.files["a.html"].sha256 == hashlib.sha256(b"a").hexdigest()
    (site / "a.html").write_bytes(b"aa")
    changed = scan_site(site, cache=HashCache.for_root(site, tmp_path / "cache"))
    assert hashed == ["a.html"] and changed.manifest.files["a.html"].sha256 == digest(b"aa")


@pytest.mark.parametrize("data", [
    b"", b"{not json", b'{"files": {}}', b"\xff" * 100, marshal.dumps(None), marshal.dumps((FORMAT,)),
    marshal.dumps(("owncdn-hashes-9", {})), marshal.dumps((FORMAT, [])), marshal.dumps((FORMAT, {}))[:-3],
    marshal.dumps([FORMAT, {"x": ()}]), b"[\xff\xff\xff\x7f", b"{" * 5000,  # a huge count; too deep
])
def test_a_broken_cache_file_is_ignored(tmp_path, data):
    (tmp_path / "c.hashes").write_bytes(data)
    f = tmp_path / "x"
    f.write_bytes(b"x")
    cache = HashCache(tmp_path / "c.hashes")
    assert cache.get("x", os.stat(f)) is None
    cache.save()  # rewritten whole
    assert HashCache(tmp_path / "c.hashes").old == {}


def entry(st: os.stat_result, sha: str, hashed_at: int) -> tuple:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, sha, hashed_at)


@pytest.mark.parametrize("damage", [
    lambda e: e[:6],                                  # too short
    lambda e: (*e, 0),                                # too long
    lambda e: list(e),                                # not a tuple
    lambda e: (e[0] + 1, *e[1:]),                     # another size
    lambda e: (*e[:3], e[3] + 1, *e[4:]),             # another inode
    lambda e: (*e[:5], "0" * 63 + "-b3", e[6]),       # not a blob name
    lambda e: (*e[:5], "A" * 64, e[6]),               # not lowercase
    lambda e: (*e[:5], None, e[6]),
    lambda e: (*e[:6], float(e[6])),                  # hashed_at not an int
    lambda e: (*e[:6], max(e[1], e[2]) + 1),          # racy
])
def test_an_entry_that_does_not_match_or_is_damaged_is_not_used(tmp_path, damage):
    f = tmp_path / "x"
    f.write_bytes(b"x")
    st = os.stat(f)
    good = entry(st, "0" * 64 + "-b3", max(st.st_mtime_ns, st.st_ctime_ns) + hashcache.RACY_NS + 1)
    write_entries(tmp_path / "c.hashes", {"x": good})
    assert HashCache(tmp_path / "c.hashes").get("x", st) == "0" * 64 + "-b3"
    write_entries(tmp_path / "c.hashes", {"x": damage(good)})
    assert HashCache(tmp_path / "c.hashes").get("x", st) is None


@pytest.mark.parametrize("other, used", [
    ("0" * 63 + "-b3", False),   # damaged: the names are checked one by one, this one is refused
    ("1" * 64, True),            # a SHA-256 name (Rule 4): one by one too, and used
])
def test_names_checked_one_by_one_when_not_all_are_blake3(tmp_path, other, used):
    """Rule 3 with ``digest`` Rule 6: the other entries are used either way."""
    site = tmp_path / "site"
    site.mkdir()
    entries, st = {}, {}
    for name, sha in (("a", "a" * 64 + "-b3"), ("b", other), ("c", "c" * 64 + "-b3")):
        (site / name).write_bytes(name.encode())
        st[name] = os.stat(site / name)
        entries[name] = entry(st[name], sha, max(st[name].st_mtime_ns, st[name].st_ctime_ns) + hashcache.RACY_NS + 1)
    write_entries(tmp_path / "c.hashes", entries)
    cache = HashCache(tmp_path / "c.hashes")
    assert cache.get("a", st["a"]) == "a" * 64 + "-b3" and cache.get("c", st["c"]) == "c" * 64 + "-b3"
    assert cache.get("b", st["b"]) == (other if used else None)


def test_the_json_file_of_an_older_owncdn_is_read_once_then_replaced(tmp_path, monkeypatch):
    """Rule 5: no full read of the directory after an upgrade."""
    monkeypatch.setattr(hashcache, "RACY_NS", -10**12)
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.html").write_bytes(b"a")
    (site / "b.html").write_bytes(b"b")
    st = {name: os.stat(site / name) for name in ("a.html", "b.html")}
    cache = HashCache.for_root(site, tmp_path / "cache")
    assert cache.path.endswith(".hashes") and cache.legacy == cache.path[:-len(".hashes")] + ".json"
    assert os.path.basename(cache.legacy) == hashlib.sha256(os.path.realpath(site).encode()).hexdigest()[:32] + ".json"
    os.makedirs(os.path.dirname(cache.legacy))
    files = {name: [[s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_dev], digest(name[:1].encode()), time.time_ns()]
             for name, s in st.items()}
    Path(cache.legacy).write_text(json.dumps({"files": files}, separators=(",", ":")))  # as owncdn 0ab3a07 wrote it
    hashed = counting_hash(monkeypatch)
    (site / "b.html").write_bytes(b"bb")
    cache = HashCache.for_root(site, tmp_path / "cache")
    scanned = scan_site(site, cache=cache)
    assert hashed == ["b.html"] and cache.hits == 1 and scanned.manifest.files["a.html"].sha256 == digest(b"a")
    assert not os.path.exists(cache.legacy) and set(read_entries(cache.path)) == {"a.html", "b.html"}
    hashed.clear()
    again = HashCache.for_root(site, tmp_path / "cache")
    scan_site(site, cache=again)
    assert hashed == [] and again.hits == 2


def test_a_file_read_again_only_because_it_was_racy_is_not_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(hashcache, "FINE_RACY_NS", hashcache.RACY_NS)  # 2 s everywhere: racy.html stays racy
    site = tmp_path / "site"
    site.mkdir()
    (site / "old.html").write_bytes(b"old")
    (site / "racy.html").write_bytes(b"same bytes")
    cache = HashCache.for_root(site, tmp_path / "cache")
    scan_site(site, cache=cache)
    entries = read_entries(cache.path)
    entries["old.html"] = (*entries["old.html"][:6], entries["old.html"][6] + 10**12)  # hashed long after: trusted
    write_entries(cache.path, entries)
    (site / "new.html").write_bytes(b"new")
    again = scan_site(site, cache=HashCache.for_root(site, tmp_path / "cache"))
    assert again.remembered == 1  # racy.html and new.html were read
    assert again.fresh == {digest(b"new")}  # racy.html's bytes were pushed before


def test_save_soon_writes_in_another_thread_and_join_waits_for_it(tmp_path, monkeypatch):
    cache = HashCache(tmp_path / "c.hashes")
    cache.put("x", os.stat(tmp_path), "0" * 64 + "-b3", hashed_at=0)
    gate, ran_in = threading.Event(), []
    real = cache.save

    def save():
        gate.wait()
        ran_in.append(threading.get_ident())
        real()

    monkeypatch.setattr(cache, "save", save)
    saving = cache.save_soon()
    assert "running" in repr(saving) and not (tmp_path / "c.hashes").exists()
    gate.set()
    saving.join()
    assert "done" in repr(saving) and ran_in != [threading.get_ident()]
    assert HashCache(tmp_path / "c.hashes").old == {"x": cache.new["x"]}


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
43 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
51 27 0:45 / /srv/site rw,relatime shared:7 master:2 - nfs4 server:/export rw,vers=4.2
60 27 8:17 / /media/stick rw,nosuid - vfat /dev/sdb1 rw,fmask=0022
61 27 0:50 / /dev/shm rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize("device, kind", [
    (os.makedev(254, 0), "ext4"),      # the first line naming it (a bind mount names it again)
    (os.makedev(0, 45), "nfs4"),       # optional fields (shared:7 master:2) before the "-"
    (os.makedev(8, 17), "vfat"),
    (os.makedev(0, 50), "tmpfs"),
    (os.makedev(0, 21), "proc"),
    (os.makedev(9, 9), None),          # not mounted here (a btrfs subvolume's own device, say)
])
def test_the_file_system_of_a_device_is_read_from_mountinfo(device, kind):
    assert hashcache.fs_type(MOUNTINFO, device) == kind


@pytest.mark.parametrize("kind, window", [
    ("ext4", hashcache.FINE_RACY_NS), ("xfs", hashcache.FINE_RACY_NS), ("btrfs", hashcache.FINE_RACY_NS),
    ("tmpfs", hashcache.FINE_RACY_NS), ("nfs4", hashcache.RACY_NS), ("vfat", hashcache.RACY_NS),
    ("cifs", hashcache.RACY_NS), ("fuse.sshfs", hashcache.RACY_NS), (None, hashcache.RACY_NS),
])
def test_the_racy_window_is_short_only_on_local_file_systems_with_fine_timestamps(tmp_path, monkeypatch, kind, window):
    """Rule 2: two clock ticks where the kernel stamps files from its clock, 2 s elsewhere."""
    monkeypatch.setattr(hashcache, "fs_type", lambda text, device: kind)
    assert HashCache(None).racy_window(os.stat(tmp_path).st_dev) == window


def test_without_mountinfo_the_window_is_2_s(tmp_path, monkeypatch):
    monkeypatch.setattr(hashcache, "MOUNTINFO", str(tmp_path / "no such file"))
    assert HashCache(None).racy_window(os.stat(tmp_path).st_dev) == hashcache.RACY_NS


def test_an_entry_hashed_past_its_file_systems_window_is_trusted(tmp_path, monkeypatch):
    (tmp_path / "x").write_bytes(b"x")
    st = os.stat(tmp_path / "x")
    changed = max(st.st_mtime_ns, st.st_ctime_ns)
    sha = "0" * 64 + "-b3"
    fine = hashcache.FINE_RACY_NS
    for kind, hashed_after, trusted in [("ext4", fine, True), ("ext4", fine - 1, False), ("ext4", fine // 2, False),
                                        ("nfs4", 150_000_000, False), ("nfs4", 2_100_000_000, True)]:
        monkeypatch.setattr(hashcache, "fs_type", lambda text, device: kind)
        cache = HashCache(None)
        cache.old = {"x": (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, sha, changed + hashed_after)}
        assert (cache.get("x", st) == sha) is trusted, (kind, hashed_after)


def test_the_release_a_push_created_is_remembered_for_the_same_place_only(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "a.html").write_text("a")
    cache = HashCache.for_root(root, tmp_path / "cache")
    scan_site(root, cache=cache)
    cache.released_as("http://cp production blog", "1" * 64)
    cache.save()
    again = HashCache.for_root(root, tmp_path / "cache")
    assert again.base_for("http://cp production blog") == "1" * 64
    assert again.base_for("http://cp staging blog") is None
    scan_site(root, cache=again)  # a push that created no release saves no base
    third = HashCache.for_root(root, tmp_path / "cache")
    assert third.base_for("http://cp production blog") is None
    assert {p: e[5] for p, e in third.old.items()} == {p: e[5] for p, e in again.old.items()}  # entries kept


@pytest.mark.parametrize("released", [None, ("only one",), ("where", 5), (1, "id"), "where id", ("a", "b", "c")])
def test_a_remembered_release_of_another_shape_is_not_used(tmp_path, released):
    cache = HashCache(tmp_path / "x.hashes")
    Path(cache.path).write_bytes(marshal.dumps((FORMAT, {"a": (1, 2, 3, 4, 5, "b" * 64, 6)}, released)))
    read = HashCache(tmp_path / "x.hashes")
    assert read.released is None and read.base_for("where") is None
    assert read.old == {"a": (1, 2, 3, 4, 5, "b" * 64, 6)}


def test_a_file_of_the_format_before_reads_without_a_release(tmp_path):
    write_entries(tmp_path / "x.hashes", {"a": (1, 2, 3, 4, 5, "b" * 64, 6)})
    read = HashCache(tmp_path / "x.hashes")
    assert read.released is None and read.old == {"a": (1, 2, 3, 4, 5, "b" * 64, 6)}


@pytest.mark.parametrize("tick, window", [
    (0.004, 10_000_000),   # HZ=250: two ticks are 8 ms, the floor is 10
    (0.01, 20_000_000),    # HZ=100
    (0.001, 10_000_000),   # HZ=1000
    (OSError(22, "Invalid argument"), 100_000_000),  # a kernel that cannot say
])
def test_the_fine_window_is_two_ticks_of_the_clock_files_are_stamped_with(monkeypatch, tick, window):
    def getres(clock):
        assert clock == hashcache.CLOCK_REALTIME_COARSE
        if isinstance(tick, Exception):
            raise tick
        return tick

    monkeypatch.setattr(hashcache.time, "clock_getres", getres)
    assert hashcache._fine_window() == window


def test_a_file_written_after_a_hash_began_is_stamped_within_the_window(tmp_path):
    """Rule 2's premise, on this machine's file system: a write's stamp is never older
    than the moment before it by as much as the window (then a file written again after
    its hash began always differs from an entry older than the window)."""
    path = tmp_path / "x"
    worst = 0
    for i in range(300):
        began = time.time_ns()
        path.write_bytes(b"%d" % i)
        st = os.stat(path)
        worst = max(worst, began - min(st.st_mtime_ns, st.st_ctime_ns))
    assert worst < hashcache.FINE_RACY_NS


# -- Rule 8: few changes are appended to a log ---------------------------------------------------
def _entry(n: int) -> tuple:
    return (n, n + 1, n + 2, n + 3, 7, digest(str(n).encode()), n + 4)


def _saved(path: Path, entries: dict, released=None, *, from_cache: HashCache | None = None) -> HashCache:
    """A push that ends with ``entries`` (path -> entry), over what ``path`` held: the
    entries it still holds kept as read (hits), the others new (hashed)."""
    cache = HashCache(path) if from_cache is None else from_cache
    cache.new = {rel: (cache.old[rel] if cache.old.get(rel) == entry else entry) for rel, entry in entries.items()}
    if released is not None:
        cache.released_as(*released)
    cache.save()
    return cache


def test_a_few_changes_are_appended_and_read_back(tmp_path):
    path = tmp_path / "x.hashes"
    entries = {f"p{n}.html": _entry(n) for n in range(1000)}
    _saved(path, entries)
    snapshot = path.read_bytes()
    entries["p1.html"] = _entry(5001)  # changed
    del entries["p2.html"]  # gone
    entries["new.html"] = _entry(6000)  # added
    _saved(path, entries, ("where", "1" * 64))
    assert path.read_bytes() == snapshot and (tmp_path / "x.hashes.log").exists()  # appended, not rewritten
    read = HashCache(path)
    assert read.old == entries and read.base_for("where") == "1" * 64
    _saved(path, entries)  # no release this time: the remembered one is dropped (Rule 6)
    assert HashCache(path).released is None and HashCache(path).old == entries


def test_many_changes_or_records_write_the_file_whole_and_drop_the_log(tmp_path, monkeypatch):
    path, log = tmp_path / "x.hashes", tmp_path / "x.hashes.log"
    entries = {f"p{n}.html": _entry(n) for n in range(3000)}
    _saved(path, entries)
    for n in range(max(hashcache.LOG_MIN, 3000 // hashcache.LOG_SHARE) + 1):  # past the log's share of 3,000 entries
        entries[f"p{n}.html"] = _entry(10_000 + n)
    _saved(path, entries)
    assert not log.exists() and HashCache(path).old == entries
    monkeypatch.setattr(hashcache, "LOG_RECORDS", 3)
    for n in range(3):
        entries["p0.html"] = _entry(20_000 + n)
        _saved(path, entries)
        assert log.exists()
    entries["p0.html"] = _entry(30_000)
    _saved(path, entries)  # the fourth record: written whole
    assert not log.exists() and HashCache(path).old == entries


def test_log_records_of_another_file_or_cut_off_are_ignored(tmp_path):
    path, log = tmp_path / "x.hashes", tmp_path / "x.hashes.log"
    entries = {f"p{n}.html": _entry(n) for n in range(100)}
    _saved(path, entries)
    before = dict(entries)
    entries["p1.html"] = _entry(1001)
    _saved(path, entries)
    entries["p2.html"] = _entry(1002)
    _saved(path, entries)
    data = log.read_bytes()
    log.write_bytes(data[:-5])  # the last record cut off (a push killed while appending)
    assert HashCache(path).old == dict(before, **{"p1.html": _entry(1001)})
    log.write_bytes(data)
    stale = HashCache(path)
    _saved(path, entries, from_cache=HashCache(path))  # nothing changed: an empty record
    path.write_bytes(path.read_bytes())  # the file written again (another inode or time): the log is not its own
    os.utime(path, ns=(1, 1))
    assert stale.old == entries and HashCache(path).old == before


def test_random_pushes_read_back_as_the_last_one_saved(tmp_path):
    import random

    rng = random.Random(6)
    path = tmp_path / "x.hashes"
    entries = {f"p{n}.html": _entry(n) for n in range(400)}
    _saved(path, entries)
    for round_ in range(40):
        for _ in range(rng.choice([0, 1, 3, 30, 120])):
            rel = f"p{rng.randrange(600)}.html"
            if rng.random() < 0.3:
                entries.pop(rel, None)
            else:
                entries[rel] = _entry(rng.randrange(10**6))
        released = ("where", f"{round_:064}") if rng.random() < 0.5 else None
        _saved(path, entries, released)
        read = HashCache(path)
        assert read.old == entries, round_
        assert read.base_for("where") == (released[1] if released else None)
