"""The disk tier: cached objects as files that survive a restart or a crash.

Rules:
1. One file per key, at <root>/<h[:2]>/<h>, h = blake2b(key, 16 bytes) in hex: a
   checksummed header, the key, URI and tags, the meta blob and the body. The layout,
   the checksums and the header checks are diskformat.py's rules.
2. A write goes to a temp file in the object's own directory (".tmp-<pid>-<n>-<rand>",
   unique per process), the header is completed last, and the file is renamed into
   place: readers see the old object or the new one, never a part. An existing
   object with the same key is replaced by the rename.
3. Durability (`fsync`): "always", "batch" (default: fsync at least every second) or
   "never"; what each loses on a power loss is in disksync.py's rules. Under every
   policy a corrupt object is never served (rule 5).
4. `load()` reads each file's first 4 KiB (header, key, URI, tags) and its size, never
   the body; it removes temp files left by dead processes, files whose header is
   invalid, whose name is not the hash of their key, or whose size is not what the
   header says. `close()` and `save_snapshot()` write the index to
   <root>/index.snapshot; `load()` then takes each directory unchanged since (same
   inode, mtime and ctime) from it and reads no file there, and scans only the others.
   A stale snapshot is harmless, so nothing removes it when writing starts; a corrupt
   one is removed. The reasoning is in disksnapshot.py's rules.
5. Lookups (`get`, `__contains__`, the URI and tag indexes) read memory only. `open()`
   reads the header and meta; the first open of an entry in a process (entries from
   `load()` or `refresh()`) also reads the body once and checks the checksum; the
   entry is then marked `verified`. Objects this process wrote start verified. A
   checksum, length or header mismatch raises CorruptObject and removes the file and
   the entry; a file that is gone raises ObjectGone; an I/O error raises
   ObjectUnavailable (the file stays). All three are ObjectUnavailable: a miss.
   Opening a verified entry costs open + one 4 KiB pread + fstat, no body read.
6. Several processes may share a root. Files are shared, the index is per process:
   writes are atomic renames of per-process temp names, so concurrent put / remove of
   one key leave one whole object or none. Another process's writes are found by
   `refresh(key)` (one open + 4 KiB read; the caller does it on a miss before going to
   the origin, since `get` never touches the disk), or by a new `load()`. `open()`
   notices a file replaced by another process (object id differs) and re-reads its
   header. `used` counts only the objects this process's index knows.
7. Eviction is the caller's: `put` refuses (ObjectTooLarge) an object bigger than the
   whole budget, and otherwise lets `used` go over `budget` for the caller to `remove`.
8. Thread-safe: file I/O runs outside the lock, index changes under it, so writes can
   run in a thread pool.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import secrets
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from owncdn.edge import disksnapshot
from owncdn.edge.diskformat import (FIXED, FORMAT_VERSION, MAGIC, MAX_META, MAX_NAMES,
                                    READ_AHEAD, BadHeader, Head, checked_head, content_crc,
                                    encode_names, object_name, pack_head)
from owncdn.edge.diskindex import DiskEntry, DiskIndex, entry_type
from owncdn.edge.disksnapshot import Snapshot, SnapshotInvalid
from owncdn.edge.disksync import FSYNC_POLICIES, Syncer

__all__ = ["CorruptObject", "DiskEntry", "DiskError", "DiskStore", "DiskWriter",
           "ObjectGone", "ObjectTooLarge", "ObjectUnavailable", "OpenObject"]
# moved to diskformat.py and disksync.py, still importable from here
__all__ += ["FORMAT_VERSION", "FSYNC_POLICIES", "MAGIC", "MAX_META", "MAX_NAMES",
            "READ_AHEAD", "object_name"]

MARKER = "owncdn-disk-store"
TMP_PREFIX = ".tmp-"
STALE_TEMP_AGE = 3600.0  # a temp file untouched this long is a leftover, whoever made it
log = logging.getLogger(__name__)
_WRITE_BUFFER = 256 * 1024


class DiskError(Exception):
    """Something about the disk store that the caller can act on."""


class ObjectTooLarge(DiskError, ValueError):
    """The object is bigger than the store's whole budget."""


class ObjectUnavailable(DiskError):
    """An indexed object cannot be served: treat it as a miss."""


class CorruptObject(ObjectUnavailable):
    """The file failed its checks; it has been removed."""


class ObjectGone(ObjectUnavailable):
    """The file no longer exists (removed by another process); the entry is dropped."""


def _write_all(fd: int, parts: list) -> None:
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        n = os.writev(fd, views[:1024])
        while n:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0] = views[0][n:]
                n = 0


def _unlink_if_same(path: str, fd: int) -> None:
    """Remove `path` if it is still the file `fd` has open (not a newer one renamed over it)."""
    try:
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OpenObject:
    """An open, checked object: send `size` bytes of `fd` from `body_offset` (sendfile).

    Owns the file descriptor: keep this object alive while `fd` is in use, then close it.
    """

    __slots__ = ("fd", "body_offset", "size", "meta", "entry")

    def __init__(self, fd: int, entry: DiskEntry, meta: bytes) -> None:
        self.fd = fd
        self.body_offset = entry.body_offset
        self.size = entry.size
        self.meta = meta
        self.entry = entry

    def read(self, offset: int = 0, count: int | None = None) -> bytes:
        """Body bytes [offset, offset + count), for small objects and tests."""
        count = self.size - offset if count is None else min(count, self.size - offset)
        return os.pread(self.fd, max(count, 0), self.body_offset + offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OpenObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, AttributeError):
            pass

    def __repr__(self) -> str:
        return f"<OpenObject {self.entry.key!r} fd={self.fd} size={self.size}>"


class DiskWriter:
    """One object being written (rule 2): `write` chunks, then `commit` or `abort`.

    Holds at most about 256 KiB of body in memory; the checksum runs as chunks arrive.
    """

    def __init__(self, store: DiskStore, key: str, meta: bytes, tags: tuple[str, ...],
                 uri: str) -> None:
        self.store = store
        self.key = key
        self._names = encode_names(key, uri, tuple(tags))
        self._uri, self._tags = uri, tuple(tags)
        self._meta = bytes(meta)
        self._prelude = FIXED.size + sum(map(len, self._names)) + len(self._meta)
        self.size = 0
        self._crc = zlib.crc32(self._meta)
        name = object_name(key)
        self.directory = os.path.join(store.root, name[:2])
        self.path = os.path.join(self.directory, name)
        self.tmp_path = os.path.join(
            self.directory, f"{TMP_PREFIX}{os.getpid()}-{next(store._counter)}-{secrets.token_hex(4)}")
        self._buffer: list = []
        self._buffered = 0
        self._started = False  # the prelude has been written to the file
        self._check(0)
        self.fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        store._active_temps.add(self.tmp_path)

    def __repr__(self) -> str:
        state = "open" if self.fd >= 0 else "done"
        return f"<DiskWriter {self.key!r} {state} written={self.size}>"

    def _check(self, more: int) -> None:
        if self._prelude + self.size + more > self.store.budget:
            raise ObjectTooLarge(
                f"object {self.key!r} is over the disk budget of {self.store.budget} bytes")

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self.fd < 0:
            raise DiskError(f"write to a finished writer for {self.key!r}")
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        try:
            self._check(len(chunk))
        except ObjectTooLarge:
            self.abort()
            raise
        self._crc = zlib.crc32(chunk, self._crc)
        self.size += len(chunk)
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= _WRITE_BUFFER:
            self._drain()

    def _head(self, body_crc: int = 0) -> list:
        fixed = pack_head(self._names, len(self._meta), self.size, self._object_id,
                           self._stored_at, body_crc)
        return [fixed, self._meta]

    def _drain(self) -> None:
        if not self._started:
            self._object_id = secrets.randbits(64)
            self._stored_at = time.time()
            self._buffer[:0] = self._head()
            self._started = True
        _write_all(self.fd, self._buffer)
        self._buffer.clear()
        self._buffered = 0

    def commit(self) -> DiskEntry:
        """Complete the header, rename into place (atomic), index and return the entry."""
        if self.fd < 0:
            raise DiskError(f"commit of a finished writer for {self.key!r}")
        try:
            crc = self._crc
            if not self._started:  # small object: one write for everything
                self._object_id = secrets.randbits(64)
                self._stored_at = time.time()
                _write_all(self.fd, self._head(crc) + self._buffer)
            else:
                _write_all(self.fd, self._buffer)
                fixed = self._head(crc)[0]
                if os.pwrite(self.fd, fixed, 0) != len(fixed):
                    raise OSError("short header write")
            self._buffer.clear()
            self.store._sync.before_rename(self.fd)
            os.replace(self.tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        fd, self.fd = self.fd, -1
        self.store._active_temps.discard(self.tmp_path)
        self.store._sync.after_rename(fd, self.directory)
        entry = self.store.Entry(self.key, self._uri, self._tags, self.size,
                                 self._prelude, self._object_id, True)
        self.store._indexed(entry)
        return entry

    def abort(self) -> None:
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        self._buffer.clear()
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
        self.store._active_temps.discard(self.tmp_path)

    def __enter__(self) -> DiskWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def __del__(self) -> None:
        try:
            self.abort()
        except (OSError, AttributeError):
            pass


@dataclass
class LoadReport:
    objects: int = 0
    removed_temp: int = 0
    removed_invalid: int = 0
    seconds: float = 0.0
    snapshot: str = "none"  # "used", "none", or why it was ignored
    from_snapshot: int = 0  # entries taken from the snapshot
    scanned_dirs: int = 0  # directories read file by file


class DiskStore:
    def __init__(self, root: str | Path, budget: int, *, fsync: str = "batch",
                 batch_interval: float = 1.0, batch_objects: int = 64) -> None:
        self.root = os.fspath(root)
        self.Entry = entry_type(self.root)
        self.budget = budget
        self._sync = Syncer(fsync, batch_interval, batch_objects)
        self._index = DiskIndex()
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._active_temps: set[str] = set()
        self.last_load = LoadReport()
        self._prepare_root()

    def _prepare_root(self) -> None:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        marker = os.path.join(self.root, MARKER)
        if not os.path.exists(marker):
            if os.listdir(self.root):
                raise DiskError(f"{self.root} is not empty and holds no {MARKER} file: "
                                "refusing to use it as a disk store")
            with open(marker, "w") as f:
                f.write(f"owncdn disk store, format {FORMAT_VERSION}\n")
        self._subdirs = [os.path.join(self.root, f"{i:02x}") for i in range(256)]
        for sub in self._subdirs:
            os.makedirs(sub, mode=0o700, exist_ok=True)

    def __repr__(self) -> str:
        return (f"<DiskStore {self.root} objects={len(self._index.entries)} "
                f"used={self._index.used}/{self.budget} fsync={self.fsync}>")

    # -- the index (memory only) -------------------------------------------------

    @property
    def fsync(self) -> str:
        return self._sync.policy

    @property
    def used(self) -> int:
        return self._index.used

    @property
    def by_uri(self) -> dict[str, set[str]]:
        """URI -> keys, a copy built on demand (O(n): for tests and path-prefix purges)."""
        with self._lock:
            return self._index.by_uri

    @property
    def by_tag(self) -> dict[str, set[str]]:
        with self._lock:
            return self._index.by_tag

    def __len__(self) -> int:
        return len(self._index.entries)

    def __contains__(self, key: object) -> bool:
        return key in self._index.entries

    def get(self, key: str) -> DiskEntry | None:
        return self._index.entries.get(key)

    def keys(self) -> list[str]:
        return list(self._index.entries)

    def keys_for_uri(self, uri: str) -> set[str]:
        with self._lock:
            return self._index.keys_for_uri(uri)

    def keys_with_uri_prefix(self, prefix: str) -> set[str]:
        with self._lock:
            return self._index.keys_with_uri_prefix(prefix)

    keys_for_uri_prefix = keys_with_uri_prefix  # the MemoryStore name, for purge.py

    def keys_for_tag(self, tag: str) -> set[str]:
        with self._lock:
            return self._index.keys_for_tag(tag)

    def _indexed(self, entry: DiskEntry) -> None:
        with self._lock:
            self._index.add(entry)

    def _forget(self, entry: DiskEntry) -> None:
        with self._lock:
            self._index.discard(entry.key, only=entry)

    # -- writing -----------------------------------------------------------------

    def _path(self, key: str) -> tuple[str, str]:
        name = object_name(key)
        directory = os.path.join(self.root, name[:2])
        return directory, os.path.join(directory, name)

    def writer(self, key: str, meta: bytes, *, tags: Iterable[str] = (), uri: str = "") -> DiskWriter:
        return DiskWriter(self, key, meta, tuple(tags), uri)

    def put(self, key: str, meta: bytes, body_chunks: Iterable[bytes] | bytes, *,
            tags: Iterable[str] = (), uri: str = "") -> DiskEntry:
        """Store an object atomically, replacing any object with the same key."""
        with self.writer(key, meta, tags=tags, uri=uri) as w:
            if isinstance(body_chunks, (bytes, bytearray, memoryview)):
                w.write(body_chunks)
            else:
                for chunk in body_chunks:
                    w.write(chunk)
            return w.commit()

    def remove(self, key: str) -> bool:
        """Delete the object's file (even one only another process indexed) and entry."""
        with self._lock:
            entry = self._index.discard(key)
        directory, path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return entry is not None
        self._sync.removed(directory)
        return True

    def flush(self) -> None:
        """fsync what the batch policy has pending (call about once a second)."""
        self._sync.flush()

    def close(self) -> None:
        """Flush, stop the batch flusher thread and save a snapshot of the index.

        The store can still be used after. A snapshot that cannot be written is
        logged, not raised: the next `load()` only takes longer.
        """
        self._sync.close()
        try:
            self.save_snapshot()
        except OSError as exc:
            log.warning("disk store: could not save the index snapshot in %s: %s", self.root, exc)

    def save_snapshot(self) -> int:
        """Write the index to <root>/index.snapshot (disksnapshot.py); returns how many
        directories it describes exactly. Costs a listing of every directory and about
        0.5 s per 100,000 entries, outside the lock but for copying the entry list; the
        edge's sweeper may call it every few minutes so that a crash too leaves a
        recent snapshot."""
        self._sync.flush()  # the snapshot must describe no rename a power loss can undo
        started = time.time_ns()
        with self._lock:
            entries = list(self._index.entries.values())
        return disksnapshot.save(self.root, self._subdirs, entries, started, FORMAT_VERSION,
                                 durable=self.fsync != "never")

    # -- reading -----------------------------------------------------------------

    def open(self, entry: DiskEntry) -> OpenObject:
        """Open and check the object (rule 5); raises ObjectUnavailable for a miss."""
        path = entry.path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._forget(entry)
            raise ObjectGone(f"{path}: object {entry.key!r} is gone") from None
        try:
            # the header is read on every open: body offset, sizes and checksum come from it
            head, buf = checked_head(fd, path, None, entry.key, max(READ_AHEAD, entry.body_offset))
            if head.object_id != entry.object_id:  # replaced by another process or thread
                fresh = head.entry(self)
                with self._lock:
                    if self._index.entries.get(entry.key) is entry:
                        self._index.add(fresh)
                entry = fresh
            meta_at = head.body_offset - head.meta_size
            meta = (buf[meta_at:head.body_offset] if len(buf) >= head.body_offset
                    else os.pread(fd, head.meta_size, meta_at))
            if not entry.verified:
                if content_crc(fd, head.body_offset, head.size, zlib.crc32(meta)) != head.body_crc:
                    raise BadHeader("body checksum mismatch")
                entry.verified = True
        except BadHeader as exc:
            try:
                _unlink_if_same(path, fd)
            finally:
                os.close(fd)
                self._forget(entry)
            raise CorruptObject(f"{path}: object {entry.key!r}: {exc}; removed") from None
        except OSError as exc:  # an I/O error: a miss, but the file stays
            os.close(fd)
            raise ObjectUnavailable(f"{path}: object {entry.key!r}: {exc}") from exc
        except BaseException:
            os.close(fd)
            raise
        return OpenObject(fd, entry, meta)

    def refresh(self, key: str) -> DiskEntry | None:
        """Look on disk for `key` (another process may have written or removed it)."""
        directory, path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            with self._lock:
                self._index.discard(key)
            return None
        try:
            head = checked_head(fd, path, None, key)[0]
        except BadHeader:
            _unlink_if_same(path, fd)
            with self._lock:
                self._index.discard(key)
            return None
        finally:
            os.close(fd)
        with self._lock:
            current = self._index.entries.get(key)
            if current is not None and current.object_id == head.object_id:
                return current
            entry = head.entry(self)
            self._index.add(entry)
            return entry

    # -- start-up ----------------------------------------------------------------

    def load(self) -> int:
        """Rebuild the index from the snapshot and the files' headers (rule 4); returns
        the object count.

        Entries are indexed oldest first, so `keys()` lists them in that order until the
        next write: those the snapshot knows in its order (the index's when it was
        written), then the others by the time stored in their headers.
        """
        started = time.perf_counter()
        report = LoadReport()
        index = DiskIndex()
        gc_was_on = gc.isenabled()
        gc.disable()  # 100k new entries would otherwise run the collector many times
        try:
            self._scan(index, report, self._read_snapshot(report))
        finally:
            if gc_was_on:
                gc.enable()
        with self._lock:
            self._index = index
        report.objects = len(index.entries)
        report.seconds = time.perf_counter() - started
        self.last_load = report
        return report.objects

    def _read_snapshot(self, report: LoadReport) -> Snapshot | None:
        try:
            snapshot = disksnapshot.read(self.root, FORMAT_VERSION)
        except SnapshotInvalid as exc:
            log.warning("disk store: removing the unusable index snapshot in %s: %s", self.root, exc)
            disksnapshot.remove(self.root)
            report.snapshot = f"ignored: {exc}"
            return None
        except OSError as exc:
            log.warning("disk store: cannot read the index snapshot in %s: %s", self.root, exc)
            report.snapshot = f"ignored: {exc}"
            return None
        report.snapshot = "none" if snapshot is None else "used"
        return snapshot

    def _scan(self, index: DiskIndex, report: LoadReport, snapshot: Snapshot | None) -> None:
        trusted = disksnapshot.unchanged_dirs(snapshot, self._subdirs)
        heads: dict[str, Head] = {}
        for sub, skip in zip(self._subdirs, trusted):
            if not skip:
                report.scanned_dirs += 1
                self._scan_dir(sub, heads, report)
        for r in snapshot.records if snapshot is not None else ():
            if trusted[r.directory]:
                index.add(self.Entry(r.key, r.uri, tuple(r.tags.split("\0")) if r.tags else (),
                                     r.size, r.body_offset, r.object_id))
                report.from_snapshot += 1
            elif (head := heads.get(r.key)) is not None and head.object_id == r.object_id:
                index.add(heads.pop(r.key).entry(self))  # unchanged, in a changed directory
        for head in sorted(heads.values(), key=lambda head: head.stored_at):
            index.add(head.entry(self))

    def _scan_dir(self, sub: str, heads: dict[str, Head], report: LoadReport) -> None:
        with os.scandir(sub) as it:
            for de in it:
                if de.name.startswith(TMP_PREFIX):
                    report.removed_temp += self._clean_temp(de.path, de.name)
                    continue
                head = self._load_one(de.path, de.name)
                if head is None:
                    report.removed_invalid += 1
                else:
                    heads[head.key] = head

    def _load_one(self, path: str, name: str) -> Head | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # removed by another process meanwhile
            return None
        try:
            return checked_head(fd, path, name, None)[0]
        except BadHeader:
            _unlink_if_same(path, fd)
            return None
        except OSError as exc:  # a directory, an I/O error: not ours to delete
            log.warning("disk store: skipping %s: %s", path, exc)
            return None
        finally:
            os.close(fd)

    def _clean_temp(self, path: str, name: str) -> int:
        """Remove a temp file left by an interrupted write; spare live writers' files."""
        pid_text = name[len(TMP_PREFIX):].split("-", 1)[0]
        pid = int(pid_text) if pid_text.isdigit() else 0
        try:
            age = time.time() - os.stat(path).st_mtime
        except FileNotFoundError:
            return 0
        live = (path in self._active_temps if pid == os.getpid()
                else pid > 0 and _pid_alive(pid))
        if live and age < STALE_TEMP_AGE:
            return 0
        try:
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return 1
