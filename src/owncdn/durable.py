"""Making many written files durable at once (the blob stores of the control plane and
the edges).

    sync_many(fds)        # every file written through these descriptors is on disk
    sync_many(dir_fds)    # ... and so are these directories' entries
    write_all([(path, data), ...], exclusive=True)   # new files, written and made durable
    write_all([(path, data), ...], sync=False)       # ... written; sync_paths later
    sync_paths([path, ...])   # files written (and closed) earlier, made durable
    sync_filesystem(path)     # everything written on path's file system, made durable
    boot_id()                 # this boot of the machine (Linux), to tell a crash of the
                              # OS (page cache lost) from one of a process (kept)
    start_writeback(fd, offset, count)  # begin writing a range back, without waiting

Each ``fsync`` ends in a journal commit and a disk flush of its own: a push of 1,000
small files paid about 0.3 ms a file for it on the machine measured, in every process
that stores the blobs. One ``syncfs`` writes back the whole file system with one
commit, which made the same files durable in about 1 ms.

Rules:
1. ``sync_many(fds)`` returns once the data and metadata written through every
   descriptor (files or directories) are durable, or raises ``OSError``.
2. ``SYNCFS_MIN`` or more descriptors on one file system take one ``syncfs(2)``
   (Linux; errors of the writeback are reported since Linux 5.8); fewer, other
   systems, and a ``syncfs`` that fails take one ``fsync`` each. ``syncfs`` also
   writes back whatever else is dirty on that file system (measured: 0.1 s after
   another program wrote 200 MB there), so its cost follows the file system's dirty
   data, not the number of files: it is kept for batches, where one fsync per file
   costs more, and a push of a few files never waits for other programs' writes.
3. ``write_all`` writes each file (created, or with ``exclusive`` refused if it
   exists), makes them all durable with ``sync_many`` (not with ``sync=False``: the
   caller makes them durable later, with ``sync_paths``), and on any failure removes
   every file it created before raising: the caller renames them into place after.
4. ``sync_paths(paths)`` makes files that were written and closed earlier durable,
   by Rule 2: ``SYNCFS_MIN`` or more on one file system take one ``syncfs``, fewer are
   opened again and fsynced one by one. An edge writes the blobs of a whole bundle
   this way: written as they arrive, made durable once at the bundle's end (for the
   1,065 files of the push benchmark, about 30 ``syncfs`` and 300 ``fsync`` calls per
   edge, one flush per group of 32 / 1 MiB, became 4 ``syncfs``).
5. ``sync_filesystem(path)`` is one ``syncfs`` of the file system holding ``path``
   (``os.sync`` where there is none): an edge flushes its blobs so, in the background
   (``edge/releases.py`` rule 6).
6. ``boot_id()`` is ``/proc/sys/kernel/random/boot_id`` (a new value at every boot of
   Linux), or None elsewhere. A process that is killed leaves what it wrote in the page
   cache, where every later reader finds it; only a crash of the operating system (or
   a power cut) loses data not yet written back, and after one the boot id differs.
7. ``SyncGroup(path).sync_paths(paths)`` is ``sync_paths`` for files on ``path``'s file
   system (not checked) where writers that finish at
   about the same time share one ``syncfs`` (group commit; the control plane's blob
   store, whose concurrent bundle uploads each ended in a ``syncfs`` of their own).
   A caller returns only after a ``syncfs`` that *began after it called* has ended: it
   joins the one in flight only if that one began after the caller's writes were
   done, else it waits for the next one, which it (or another waiter) begins once the
   one in flight has ended; the waiters that came meanwhile share that next one. A
   ``syncfs`` that failed makes its waiters fsync their own files one by one, as
   Rule 4; fewer than ``SYNCFS_MIN`` files never wait for a group.
8. ``ticket = group.ticket()`` after some writes, and later ``group.covered(ticket)``
   is True once a ``syncfs`` of the group begun after that ``ticket()`` call ended
   without error: those writes are durable with no flush of their own. The control
   plane's blob store so skips the directories its renames went into when a later
   upload's ``syncfs`` already wrote them back (``control/dirblobs.py`` Rule 1).
   ``group.wait(ticket)`` returns once a sync begun after that ticket ended (beginning
   one if none runs), and whether one such ended without error.
9. ``group.soon()`` begins a ``syncfs`` covering the writes done before the call in a
   background thread (one at a time per group, gone once caught up), without waiting:
   a bundle upload's renames start being written back as soon as they are done, so a
   release created right after waits only for the rest of that ``syncfs``
   (``wait(ticket)``), and on one machine the writeback of whatever else is dirty
   (measured: the 3 edges of ``bench/push.py``) is spread over the upload rather than
   all paid once it ended.
10. ``start_writeback(fd, offset, count)`` begins writing back those bytes of the file
   and returns without waiting for the disk (``sync_file_range(2)`` with
   ``SYNC_FILE_RANGE_WRITE``, Linux; nothing elsewhere or when it fails). It makes
   nothing durable: a writer that calls it as it goes makes its later ``fsync`` of the
   file wait only for the last bytes (the control plane's blob packs: 63 MB written
   with the writeback begun every MiB, then fsynced, waited 1-2 ms for the fsync
   against 36-42 ms without, with 3 other writers' 190 MB dirty on the same disk).
   Unlike ``syncfs`` it never writes back other files.
11. ``reserve(fd, offset, count)`` allocates those bytes of the file's disk space
   ahead of the writes that fill them, without changing its length
   (``fallocate(2)`` with ``FALLOC_FL_KEEP_SIZE``, Linux; nothing elsewhere or when it
   fails): the writes then find their blocks allocated instead of reserving each
   4 KiB block as it comes (ext4: 67 MB written in 64 KiB pieces, its writeback begun
   every MiB, fsynced, 8 runs each: 20-22 ms of the machine's CPU against 26-31 ms).
   Space reserved past what was written stays allocated until the file is truncated:
   ``os.ftruncate(fd, written)`` frees it.
"""

from __future__ import annotations

import os
import sys
import threading

__all__ = ["SYNCFS_MIN", "SyncGroup", "boot_id", "fsync_dir", "reserve", "sync_filesystem", "start_writeback", "sync_many",
           "sync_paths", "write_all"]

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"

SYNCFS_MIN = 16

_syncfs = None
_sync_file_range = None
_fallocate = None
_SYNC_FILE_RANGE_WRITE = 2
_FALLOC_FL_KEEP_SIZE = 1


def _libc(name: str, *argtypes: str):
    """The C library's ``name`` with these argument types (``ctypes`` names), or False
    where there is none (not Linux, or an older C library)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return False
    fn.argtypes = [getattr(ctypes, t) for t in argtypes]
    fn.restype = ctypes.c_int
    return fn


def _load_syncfs():
    global _syncfs
    if _syncfs is None:
        _syncfs = _libc("syncfs", "c_int")
    return _syncfs


def sync_many(fds: list[int]) -> None:
    """Rules 1-2."""
    if not fds:
        return
    if len(fds) >= SYNCFS_MIN:
        syncfs = _load_syncfs()
        if syncfs and len({os.fstat(fd).st_dev for fd in fds}) == 1:
            if syncfs(fds[0]) == 0:
                return
    for fd in fds:
        os.fsync(fd)


def write_all(files, exclusive: bool = False, sync: bool = True) -> None:
    """Rule 3: ``files`` is an iterable of (path, bytes)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fds: list[int] = []
    made: list = []
    try:
        for path, data in files:
            fds.append(os.open(path, flags, 0o644))
            made.append(path)
            view = memoryview(data)
            while view:
                view = view[os.write(fds[-1], view):]
        if sync:
            sync_many(fds)
    except BaseException:
        for path in made:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        raise
    finally:
        for fd in fds:
            os.close(fd)


def sync_paths(paths) -> None:
    """Rule 4: ``paths`` is an iterable of files already written and closed."""
    paths = list(paths)
    if not paths:
        return
    if len(paths) >= SYNCFS_MIN:
        syncfs = _load_syncfs()
        if syncfs and len({os.stat(path).st_dev for path in paths}) == 1:
            fd = os.open(paths[0], os.O_RDONLY)
            try:
                if syncfs(fd) == 0:
                    return
            finally:
                os.close(fd)
    _fsync_each(paths)


def _fsync_each(paths) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SyncGroup:
    """Rule 7: one ``syncfs`` of ``path``'s file system for the writers that wait at once."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.begun = 0  # syncs begun; one runs at a time, so they end in this order
        self.ended = 0  # ... and the number of the last one that ended
        self.running = False
        self.waiting = 0  # callers waiting for a sync to end
        self.failed: set[int] = set()  # numbers of syncs that failed (recent ones)
        self.last_ok = 0  # the number of the last sync that ended without error
        self.wanted = 0  # the number of a sync soon() asked for
        self.flushing = False  # soon()'s thread runs
        self.cond = threading.Condition()

    def __repr__(self) -> str:
        return (f"<SyncGroup {self.path} begun={self.begun} ended={self.ended} waiting={self.waiting}"
                f"{' running' if self.running else ''}>")

    def sync_paths(self, paths) -> None:
        """``sync_paths(paths)``, the ``syncfs`` shared (Rule 7)."""
        paths = list(paths)
        if len(paths) < SYNCFS_MIN or not _load_syncfs():
            sync_paths(paths)
        elif not self.wait():
            _fsync_each(paths)

    def wait(self, ticket: int | None = None) -> bool:
        """Return once a ``syncfs`` begun after this call (or after ``ticket()`` gave
        ``ticket``, Rule 8) has ended; whether one such worked."""
        with self.cond:
            mine = (self.begun if ticket is None else ticket) + 1  # the first sync to begin from now on covers it
            while self.ended < mine:
                if self.running:
                    self.waiting += 1
                    self.cond.wait()
                    self.waiting -= 1
                    continue
                self.running = True
                self.begun += 1
                number = self.begun
                ok = False
                self.cond.release()
                try:
                    ok = self._syncfs()
                finally:
                    self.cond.acquire()
                    self.running = False
                    self.ended = number
                    if ok:
                        self.last_ok = number
                    else:
                        self.failed = {n for n in self.failed if n > number - 64} | {number}
                    self.cond.notify_all()
            return self.last_ok >= mine

    def soon(self) -> None:
        """Rule 9: a ``syncfs`` covering the writes done so far, begun in the background."""
        if not _load_syncfs():
            return
        with self.cond:
            self.wanted = max(self.wanted, self.begun + 1)
            if self.flushing:
                return
            self.flushing = True
        threading.Thread(target=self._flush, name="syncfs-soon", daemon=True).start()

    def _flush(self) -> None:
        try:
            while True:
                with self.cond:
                    target = self.wanted
                    if self.ended >= target:
                        self.flushing = False
                        return
                self.wait(target - 1)
        except BaseException:
            with self.cond:
                self.flushing = False
            raise

    def ticket(self) -> int:
        """Rule 8: a ticket for the writes done before this call."""
        with self.cond:
            return self.begun  # every sync numbered above it begins after this call

    def covered(self, ticket: int) -> bool:
        """Rule 8: whether a sync begun after ``ticket()`` returned it ended without error."""
        return self.last_ok > ticket  # syncs end in the order they begin

    def _syncfs(self) -> bool:
        syncfs = _load_syncfs()
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            return bool(syncfs) and syncfs(fd) == 0
        finally:
            os.close(fd)


def start_writeback(fd: int, offset: int, count: int) -> None:
    """Rule 10."""
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = _libc("sync_file_range", "c_int", "c_int64", "c_int64", "c_uint")
    if _sync_file_range:
        _sync_file_range(fd, offset, count, _SYNC_FILE_RANGE_WRITE)  # a failure: the fsync does it all


def reserve(fd: int, offset: int, count: int) -> bool:
    """Rule 11: whether the space was allocated."""
    global _fallocate
    if _fallocate is None:
        _fallocate = _libc("fallocate", "c_int", "c_int", "c_int64", "c_int64")
    return bool(_fallocate) and count > 0 and _fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, count) == 0


def fsync_dir(path) -> None:
    """Make a directory's entries (names created, renamed, removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path) -> None:
    """Rule 5."""
    syncfs = _load_syncfs()
    if syncfs:
        fd = os.open(path, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    os.sync()


def boot_id() -> str | None:
    """Rule 6."""
    try:
        with open(BOOT_ID_FILE) as f:
            return f.read().strip() or None
    except OSError:
        return None
