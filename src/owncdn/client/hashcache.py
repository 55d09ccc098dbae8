"""Remembering file hashes between pushes, so a second push does not read unchanged files.

    cache = HashCache.for_root("./public")             # ~/.cache/owncdn/hashes/<id>.hashes
    sha = cache.get("css/site.css", st)                 # None: hash it
    cache.put("css/site.css", st, sha); cache.save()

Rules:
1. An entry is keyed by the file's release path and its ``(size, mtime_ns, ctime_ns,
   inode, device)`` from ``stat``; any difference means the file is hashed again.
2. Racy entries are not trusted: a file whose mtime or ctime is less than the racy
   window before the moment it was hashed could have been written again within the
   same timestamp tick, so it is hashed again on the next push (as git does for its
   index). The window is ``RACY_NS`` (2 s: FAT's granularity, and network file
   systems' clocks), or ``FINE_RACY_NS`` on a local Linux file system that stamps
   files from the kernel's clock (``FINE_FS``, told by the file's device in
   ``/proc/self/mountinfo``: ``fs_type``): two ticks of the coarse real-time clock
   those stamps come from (``clock_getres(CLOCK_REALTIME_COARSE)``: 4 ms here), at
   least 10 ms. A stamp lags the time the hash began (read before any file is opened)
   by at most a tick, so a file written again after that gets a newer stamp than one
   older than the window. A site pushed within 2 s of being built or copied was read
   whole again by its next push (``bench/push.py``'s one-file push: 0.08 s instead of
   0.045); with a 100 ms window still when its last files were copied within 100 ms.
3. The cache lives in ``$XDG_CACHE_HOME/owncdn/hashes`` (``~/.cache/owncdn/hashes``),
   one file per pushed directory (named by the SHA-256 of its real path), written by
   temp file + rename (paths as strings: `owncdn push` starts without importing
   ``pathlib``). A cache that cannot be read or written is ignored: it only
   saves time, it never decides what is pushed when the file says otherwise (an
   entry whose hash is not a blob name, ``core/content/digest.py``, is not used).
4. A file remembered by its SHA-256 name (pushed before BLAKE3) keeps that name while
   it is unchanged: its blob is stored already, so upgrading owncdn uploads and
   fetches nothing again and changes no ETag; bytes hashed now are named by BLAKE3.
5. The file is ``marshal`` data: ``(FORMAT, {path: (size, mtime_ns, ctime_ns, inode,
   device, blob name, hashed at)}, released)``. ``marshal`` is built into the interpreter and
   reads 1,065 entries in about 0.25 ms (``json`` took 0.65 ms, and importing it,
   with ``re``, about 5 ms of a push that spends about 35 ms in the command). The
   file is this user's own, written whole by rename, and what it holds is checked
   entry by entry as with JSON before: data that is not that shape is ignored.
   A directory last pushed by an owncdn that wrote JSON (``<id>.json``) is read from
   that file once (the hashes stay valid: no full read of the directory after an
   upgrade); the first save replaces it.
6. ``released`` is ``(where, manifest id)``: the release the last push from the
   directory created (``where`` names the control plane, environment and service), so
   the next push there can send its manifest as the changes from that one
   (``client/push.py`` Rule 10). It is saved only by a push that created its release
   (``released_as``); any other save drops it. The entries are that manifest's files
   unless a file changed while it was hashed (it has no entry): the control plane checks
   that the changes give the new manifest's id, and the whole manifest goes otherwise.
   A file of the format before (a pair, without ``released``) is read as one without it.
7. ``remembered(files)`` answers ``get`` for a whole walk in one loop, each device's
   racy window looked up once: for 100,000 files 88 ms of calls to ``get`` became
   about 45 ms.
8. A save that changes few entries appends them to a log next to the file
   (``<id>.hashes.log``: records ``(LOG_FORMAT, snapshot, {path: entry or None},
   released)``, ``None`` for a file gone) instead of writing every entry again;
   ``snapshot`` is the ``(size, mtime_ns, inode)`` of the file the changes apply to, and
   a record of another one (the file was written whole since) is ignored, as is a
   record cut off at the end. Loading applies the records in order. The file is
   written whole again (and the log removed) when the log would hold more than
   ``LOG_SHARE`` of the entries or ``LOG_RECORDS`` records. A one-file push of 100,000
   files saved its cache in 56-95 ms (14 MB written and renamed), now in 25-30 ms (most
   of it finding what changed) and one small append. Older owncdns read the file alone:
   they hash again what changed since.
"""

from __future__ import annotations

import marshal
import os
import time
from _thread import allocate_lock, start_new_thread

from owncdn.core.content.digest import all_blake3_names, is_blob_name, sha256_hex

__all__ = ["FORMAT", "HashCache", "cache_dir", "fs_type"]

RACY_NS = 2_000_000_000
CLOCK_REALTIME_COARSE = 5  # Linux's clockid (the time module does not name it)
FINE_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs"})
MOUNTINFO = "/proc/self/mountinfo"
FORMAT = "owncdn-hashes-2"  # Rule 5: the first item of the file
LOG_FORMAT = "owncdn-hashes-log-1"  # Rule 8: the first item of each record of the log
LOG_SHARE = 8  # Rule 8: the log holds at most 1/LOG_SHARE of the entries (at least LOG_MIN)
LOG_MIN = 256
LOG_RECORDS = 64


def _fine_window() -> int:
    """Rule 2: two ticks of the clock Linux stamps files with, at least 10 ms (100 ms
    where its resolution cannot be read)."""
    try:
        tick = time.clock_getres(CLOCK_REALTIME_COARSE)
    except (OSError, AttributeError):  # not Linux
        return 100_000_000
    return max(10_000_000, int(2 * tick * 1e9))


FINE_RACY_NS = _fine_window()


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "owncdn", "hashes")


class HashCache:
    """``old``: path -> entry as read (Rule 5); ``new``: the entries of this push."""

    def __init__(self, path: str | os.PathLike | None, legacy: str | os.PathLike | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.legacy = os.fspath(legacy) if legacy is not None else None  # Rule 5: an older owncdn's file
        self.old: dict[str, tuple] = {}
        self.new: dict[str, tuple] = {}
        self.hits = 0
        self._windows: dict[int, int] = {}  # device -> racy window (Rule 2)
        self._read_legacy = False
        self.released: tuple[str, str] | None = None  # Rule 6: as read
        self._released_now: tuple[str, str] | None = None  # Rule 6: to save
        self._snapshot: tuple[int, int, int] | None = None  # the file read, for the log (Rule 8)
        self._logged = (0, 0)  # (records, entries) in the log read (Rule 8)
        if self.path is not None:
            self.old = self._load()
            if self._snapshot is not None:
                self._read_log()
        self._named = _names_checked(self.old)  # Rule 3: every remembered name is a blob name

    def __repr__(self) -> str:
        return f"<HashCache {self.path} entries={len(self.old)} hits={self.hits}>"

    @classmethod
    def for_root(cls, root: str | os.PathLike, directory: str | os.PathLike | None = None) -> "HashCache":
        real = os.path.realpath(root)
        name = os.path.join(directory or cache_dir(), sha256_hex(real.encode("utf-8", "surrogateescape"))[:32])
        return cls(name + ".hashes", name + ".json")

    def _load(self) -> dict[str, tuple]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except FileNotFoundError:
            return self._load_legacy()
        except OSError:
            return {}
        try:
            form, files, *rest = marshal.loads(data)
        except (ValueError, EOFError, TypeError, MemoryError):  # not marshal data (or a size it cannot hold), not a tuple
            return {}
        if form != FORMAT or type(files) is not dict:
            return {}
        self.released = _released(rest[0] if rest else None)
        self._snapshot = (st.st_size, st.st_mtime_ns, st.st_ino)
        return files

    def _read_log(self) -> None:
        """Rule 8: the records of the log that apply to the file read, applied in order."""
        try:
            with open(self.path + ".log", "rb") as f:
                data = f.read()
        except OSError:
            return
        from io import BytesIO

        log, files, records, entries = BytesIO(data), self.old, 0, 0
        while True:
            try:
                record = marshal.load(log)
            except (EOFError, ValueError, TypeError, MemoryError):  # the end, or a record cut off
                break
            if (type(record) is not tuple or len(record) != 4 or record[0] != LOG_FORMAT
                    or record[1] != self._snapshot or type(record[2]) is not dict):
                continue
            for rel, entry in record[2].items():
                if entry is None:
                    files.pop(rel, None)
                else:
                    files[rel] = entry
            self.released = _released(record[3])
            records, entries = records + 1, entries + len(record[2])
        self._logged = (records, entries)

    def _load_legacy(self) -> dict[str, tuple]:
        """Rule 5: the JSON file of an older owncdn, its entries as this one writes them."""
        if self.legacy is None:
            return {}
        try:
            with open(self.legacy, "rb") as f:
                data = f.read()
            import json

            files = json.loads(data)["files"]
            old = {rel: (*key, sha, hashed_at) for rel, (key, sha, hashed_at) in files.items()}
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            return {}
        self._read_legacy = True
        return old

    def get(self, rel: str, st: os.stat_result) -> str | None:
        """The remembered blob name of this file, if its stat is unchanged and not racy."""
        return self.remembered([(rel, None, st)])[0]

    def remembered(self, files: list[tuple[str, object, os.stat_result]]) -> list[str | None]:
        """``get`` of each ``(rel, file, stat)`` of ``files``, in one loop (Rule 7)."""
        old_get, new, named = self.old.get, self.new, self._named
        windows: dict[int, int] = {}
        out: list[str | None] = []
        append = out.append
        hits = 0
        for rel, _, st in files:
            entry = old_get(rel)
            if (type(entry) is not tuple or len(entry) != 7 or entry[0] != st.st_size or entry[1] != st.st_mtime_ns
                    or entry[2] != st.st_ctime_ns or entry[3] != st.st_ino or entry[4] != st.st_dev):
                append(None)
                continue
            sha, hashed_at, device = entry[5], entry[6], entry[4]
            window = windows.get(device)
            if window is None:
                window = windows[device] = self.racy_window(device)
            if (type(hashed_at) is not int or max(entry[1], entry[2]) > hashed_at - window
                    or not named and not is_blob_name(sha)):  # a damaged cache file: hashed again (Rule 3; either hash: Rule 4)
                append(None)
                continue
            hits += 1
            new[rel] = entry
            append(sha)
        self.hits += hits
        return out

    def racy_window(self, device: int) -> int:
        """Rule 2, in ns, for files on ``device``."""
        window = self._windows.get(device)
        if window is None:
            try:
                with open(MOUNTINFO) as f:
                    kind = fs_type(f.read(), device)
            except OSError:
                kind = None
            window = self._windows[device] = min(RACY_NS, FINE_RACY_NS) if kind in FINE_FS else RACY_NS
        return window

    def last(self, rel: str) -> str | None:
        """The hash this file had at the last push, whatever its stat says now."""
        entry = self.old.get(rel)
        return entry[5] if type(entry) is tuple and len(entry) == 7 else None

    def put(self, rel: str, st: os.stat_result, sha: str, hashed_at: int | None = None) -> None:
        """Remember ``sha`` for the file as ``st`` describes it, hashed at ``hashed_at``
        (ns since the epoch; taken before the file was opened)."""
        self.new[rel] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, sha,
                         time.time_ns() if hashed_at is None else hashed_at)

    def released_as(self, where: str, manifest_id: str) -> None:
        """Rule 6: this push created release manifest ``manifest_id`` at ``where``."""
        self._released_now = (where, manifest_id)

    def base_for(self, where: str) -> str | None:
        """Rule 6: the id of the manifest the last push from here released at ``where``."""
        released = self.released
        return released[1] if released is not None and released[0] == where else None

    def save_soon(self) -> Saving:
        """``save`` in a thread (started; ``join()`` it before the process ends), so a
        push writes its cache while it waits for the edges."""
        return Saving(self.save)

    def save(self) -> None:
        """Write the entries of this push (files gone since are dropped); errors ignored."""
        if self.path is None:
            return
        try:
            if self._append():
                return
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(marshal.dumps((FORMAT, self.new, self._released_now)))
            os.replace(tmp, self.path)
            self._logged = (0, 0)
            try:
                os.remove(self.path + ".log")  # Rule 8: its records were for the file replaced
            except FileNotFoundError:
                pass
            if self._read_legacy:  # Rule 5: replaced
                self._read_legacy = False
                os.remove(self.legacy)
        except OSError:
            pass

    def _append(self) -> bool:
        """Rule 8: the changes since the entries read, appended to the log when they are
        few; False when the file is to be written whole."""
        if self._snapshot is None or self._logged[0] >= LOG_RECORDS:
            return False
        new, old_get = self.new, self.old.get
        changes = {rel: entry for rel, entry in new.items() if old_get(rel) is not entry}  # a hit keeps the entry read
        changes.update(dict.fromkeys(self.old.keys() - new.keys()))  # files gone, or no longer remembered
        if self._logged[1] + len(changes) > max(LOG_MIN, len(new) // LOG_SHARE):
            return False
        with open(self.path + ".log", "ab") as f:
            f.write(marshal.dumps((LOG_FORMAT, self._snapshot, changes, self._released_now)))
        self._logged = (self._logged[0] + 1, self._logged[1] + len(changes))
        return True


def _released(value: object) -> tuple[str, str] | None:
    """Rule 6: a remembered release, or None when it has another shape."""
    if type(value) is tuple and len(value) == 2 and type(value[0]) is str and type(value[1]) is str:
        return value
    return None


def _names_checked(entries: dict) -> bool:
    """Whether every entry holds a BLAKE3 name, checked at once (``digest`` Rule 6);
    False leaves each name to be checked as it is used."""
    try:
        return all_blake3_names([entry[5] for entry in entries.values()])
    except (TypeError, IndexError, KeyError):  # an entry that is not a tuple of 7
        return False


def fs_type(mountinfo: str, device: int) -> str | None:
    """The type of the file system mounted from ``device`` (``major:minor``, the
    third field of a ``/proc/self/mountinfo`` line; the type follows the ``-``), or
    None when no line names it."""
    wanted = f"{os.major(device)}:{os.minor(device)}"
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 3 and fields[2] == wanted and "-" in fields[6:]:
            rest = fields[fields.index("-", 6) + 1:]
            return rest[0] if rest else None
    return None


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
