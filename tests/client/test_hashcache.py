"""The push hash cache (client/hashcache.py) and its use by scan_site (sitedir rule 6)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from owncdn.client import hashcache, sitedir
from owncdn.client.hashcache import HashCache
from owncdn.client.sitedir import scan_site
from owncdn.core.content.digest import digest


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
    entries = json.loads(Path(cache.path).read_text())["files"]
    assert entries["a.html"][1] == digest(b"a")
    entries["a.html"][1] = hashlib.sha256(b"a").hexdigest()  # as an older owncdn wrote it
    Path(cache.path).write_text(json.dumps({"files": entries}))
    hashed = counting_hash(monkeypatch)
    again = scan_site(site, cache=HashCache.for_root(site, tmp_path / "cache"))
    assert hashed == [] and again.manifest.files["a.html"].sha256 == hashlib.sha256(b"a").hexdigest()
    (site / "a.html").write_bytes(b"aa")
    changed = scan_site(site, cache=HashCache.for_root(site, tmp_path / "cache"))
    assert hashed == ["a.html"] and changed.manifest.files["a.html"].sha256 == digest(b"aa")


def test_a_broken_cache_file_is_ignored(tmp_path):
    (tmp_path / "c.json").write_bytes(b"{not json")
    f = tmp_path / "x"
    f.write_bytes(b"x")
    cache = HashCache(tmp_path / "c.json")
    assert cache.get("x", os.stat(f)) is None
    cache.save()  # rewritten whole
    assert HashCache(tmp_path / "c.json").old == {}


def test_a_file_read_again_only_because_it_was_racy_is_not_fresh(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "old.html").write_bytes(b"old")
    (site / "racy.html").write_bytes(b"same bytes")
    cache = HashCache.for_root(site, tmp_path / "cache")
    scan_site(site, cache=cache)
    entries = json.loads(Path(cache.path).read_text())["files"]
    entries["old.html"][2] += 10**12  # hashed long after its last change: trusted
    Path(cache.path).write_text(json.dumps({"files": entries}))
    (site / "new.html").write_bytes(b"new")
    again = scan_site(site, cache=HashCache.for_root(site, tmp_path / "cache"))
    assert again.remembered == 1  # racy.html and new.html were read
    assert again.fresh == {digest(b"new")}  # racy.html's bytes were pushed before


def test_save_soon_writes_in_another_thread_and_join_waits_for_it(tmp_path, monkeypatch):
    cache = HashCache(tmp_path / "c.json")
    cache.put("x", os.stat(tmp_path), "0" * 64 + "-b3", hashed_at=0)
    gate, ran_in = threading.Event(), []
    real = cache.save

    def save():
        gate.wait()
        ran_in.append(threading.get_ident())
        real()

    monkeypatch.setattr(cache, "save", save)
    saving = cache.save_soon()
    assert "running" in repr(saving) and not (tmp_path / "c.json").exists()
    gate.set()
    saving.join()
    assert "done" in repr(saving) and ran_in != [threading.get_ident()]
    assert HashCache(tmp_path / "c.json").old == {"x": cache.new["x"]}
