"""Remembering file hashes between pushes, so a second push does not read unchanged files.

    cache = HashCache.for_root("./public")             # ~/.cache/owncdn/hashes/<id>.json
    sha = cache.get("css/site.css", st)                 # None: hash it
    cache.put("css/site.css", st, sha); cache.save()

Rules:
1. An entry is keyed by the file's release path and its ``(size, mtime_ns, ctime_ns,
   inode, device)`` from ``stat``; any difference means the file is hashed again.
2. Racy entries are not trusted: a file whose mtime or ctime is less than
   ``RACY_NS`` before the moment it was hashed could have been written again within
   the same clock tick, so it is hashed again on the next push (as git does for its
   index).
3. The cache lives in ``$XDG_CACHE_HOME/owncdn/hashes`` (``~/.cache/owncdn/hashes``),
   one file per pushed directory (named by the SHA-256 of its real path), written by
   temp file + rename (paths as strings: `owncdn push` starts without importing
   ``pathlib``). A cache that cannot be read or written is ignored: it only
   saves time, it never decides what is pushed when the file says otherwise (an
   entry whose hash is not a blob name, ``core/content/digest.py``, is not used).
4. A file remembered by its SHA-256 name (pushed before BLAKE3) keeps that name while
   it is unchanged: its blob is stored already, so upgrading owncdn uploads and
   fetches nothing again and changes no ETag; bytes hashed now are named by BLAKE3.
"""

from __future__ import annotations

import hashlib
import json  # not orjson: its import pulls in dataclasses, uuid and datetime (~10 ms a push)
import os
import time
from _thread import allocate_lock, start_new_thread

from owncdn.core.content.digest import is_blob_name

__all__ = ["HashCache", "cache_dir"]

RACY_NS = 2_000_000_000


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "owncdn", "hashes")


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class HashCache:
    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.old: dict[str, list] = {}
        self.new: dict[str, list] = {}
        self.hits = 0
        if self.path is not None:
            try:
                with open(self.path, "rb") as f:
                    data = json.loads(f.read())
                self.old = data["files"] if isinstance(data.get("files"), dict) else {}
            except (OSError, ValueError, AttributeError, KeyError, TypeError):
                self.old = {}

    def __repr__(self) -> str:
        return f"<HashCache {self.path} entries={len(self.old)} hits={self.hits}>"

    @classmethod
    def for_root(cls, root: str | os.PathLike, directory: str | os.PathLike | None = None) -> "HashCache":
        real = os.path.realpath(root)
        name = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".json"
        return cls(os.path.join(directory or cache_dir(), name))

    def get(self, rel: str, st: os.stat_result) -> str | None:
        """The remembered blob name of this file, if its stat is unchanged and not racy."""
        entry = self.old.get(rel)
        if not isinstance(entry, list) or len(entry) != 3:
            return None
        key, sha, hashed_at = entry
        if key != _key(st) or not isinstance(hashed_at, int) or max(st.st_mtime_ns, st.st_ctime_ns) > hashed_at - RACY_NS:
            return None
        if not is_blob_name(sha):  # a damaged cache file: hashed again (Rule 3; either hash: Rule 4)
            return None
        self.hits += 1
        self.new[rel] = entry
        return sha

    def last(self, rel: str) -> str | None:
        """The hash this file had at the last push, whatever its stat says now."""
        entry = self.old.get(rel)
        return entry[1] if isinstance(entry, list) and len(entry) == 3 else None

    def put(self, rel: str, st: os.stat_result, sha: str, hashed_at: int | None = None) -> None:
        """Remember ``sha`` for the file as ``st`` describes it, hashed at ``hashed_at``
        (ns since the epoch; taken before the file was opened)."""
        self.new[rel] = [_key(st), sha, time.time_ns() if hashed_at is None else hashed_at]

    def save_soon(self) -> Saving:
        """``save`` in a thread (started; ``join()`` it before the process ends), so a
        push writes its cache while it waits for the edges."""
        return Saving(self.save)

    def save(self) -> None:
        """Write the entries of this push (files gone since are dropped); errors ignored."""
        if self.path is None:
            return
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(json.dumps({"files": self.new}, separators=(",", ":")))
            os.replace(tmp, self.path)
        except OSError:
            pass


class Saving:
    """``fn()`` running in a thread of ``_thread``'s (`owncdn push` starts without importing
    ``threading``, about 1 ms); ``join()`` waits for its end."""

    def __init__(self, fn) -> None:
        self._done = allocate_lock()
        self._done.acquire()
        start_new_thread(self._run, (fn,))

    def __repr__(self) -> str:
        return f"<Saving {'running' if self._done.locked() else 'done'}>"

    def _run(self, fn) -> None:
        try:
            fn()
        finally:
            self._done.release()

    def join(self) -> None:
        with self._done:
            pass
