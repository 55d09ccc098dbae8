"""The content-addressed blob store of pushed releases: a directory, or S3.

A blob is the bytes of one pushed file, named by a digest of them: ``<hex>-b3``
(BLAKE3) or, for blobs pushed before BLAKE3, ``<hex>`` (SHA-256); the name says which
(``owncdn.core.content.digest``). ``open_blob_store(spec)`` gives a ``DirBlobStore`` for a path and an
``S3BlobStore`` for ``s3://bucket/prefix`` (endpoint and credentials from the
standard AWS environment: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``).

Rules:
1. A blob is stored only under the hash of its bytes: ``writer(sha).write(...)``
   hashes while receiving (with the hash its name says), and ``commit()`` raises ``BlobMismatch`` (storing nothing)
   when the bytes hash to anything else. So whatever is stored is right, and storing
   the same blob twice is harmless (idempotent).
2. Directory store: a bundle upload's blobs go to one pack (Rule 8); other bytes go to
   a temp file in ``<root>/tmp`` (small blobs: in the
   writing thread's own directory there, ``tmp/w<pid>.<n>``, so threads creating
   files at once do not queue on one directory's lock), are fsynced and
   renamed to ``<root>/<sha[:2]>/<sha>``, so a crash leaves a whole blob or none;
   leftover temp files and directories are removed at start, where the 256 directories are made if
   missing (``put_many`` writes a batch of small
   blobs first and makes them durable at once before renaming any; ``write_many``
   and ``commit_many`` are its two halves, so a bundle upload makes all its small
   blobs durable with one flush at its end; ``part(sha, size)`` writes one blob
   piece by piece for ``commit_many``, the way an upload read raw stores its blobs;
   ``commit_many`` shares its ``syncfs`` with the uploads ending at the same time,
   ``durable.SyncGroup``). The renames are made durable by
   ``sync(hashes)`` (one fsync per directory renamed into since the last sync, one
   that failed left to the next; every directory after a start; not those a group ``syncfs`` begun after their last rename
   wrote back already, ``durable.SyncGroup`` Rule 8; a ``commit_many`` of
   ``SYNCFS_MIN`` blobs or more asks for one in the background once renamed, Rule 9,
   and ``sync`` waits for that one, if running, rather than fsync or begin its own), which the control plane calls before it stores a release
   naming those blobs: a blob lost to a crash before that is reported missing and
   uploaded again, and a stored release never names a lost one.
3. S3 store: bytes are spooled (memory up to 8 MiB, then a temp file), checked, then
   uploaded as ``<prefix>/<sha>`` (boto3 switches to multipart for large blobs). An
   object appears whole or not at all, as S3 guarantees.
4. ``read(sha, start)`` yields the bytes from offset ``start`` (so a fetch that broke
   resumes where it stopped); ``BlobNotFound`` when there is no such blob. A
   directory store also gives ``read_into`` (a small blob into a buffer) and
   ``open_blob`` (a descriptor and the blob's offset in it, for ``sendfile``).
   Directory store: blobs verified and waiting for their flush are ``offer``-ed
   (``(sha, temp file)`` from ``write_many`` or ``part``, or the slots of a
   ``BundlePack``), and these three read an offered blob from its temp file or pack
   until ``commit_many`` renamed it or its pack was committed (or ``discard`` removed
   it: then ``BlobNotFound``), so the edges waiting for a blob get it while its
   upload's flush runs (``api/blobs.py`` Rule 4b). ``size``, ``sizes``, ``missing``
   and ``claim`` never see an offered blob: it is not stored until durable.
5. Blobs larger than ``max_bytes`` (5 GiB by default) are refused (``BlobTooLarge``).
   Credentials never appear in reprs, logs or messages.
6. Collection (``owncdn.control.blobgc``): ``stored()`` lists every blob with its
   size and age (directory: mtime; S3: LastModified); ``claim(hashes)`` is
   ``missing`` that also marks the present blobs as wanted now (directory: their
   mtime is refreshed when older than ``CLAIM_REFRESH`` seconds; S3: nothing, its
   objects keep their upload time), so a push that found them present is inside the
   grace period; ``delete_older(sha, cutoff)`` deletes a blob only if it is still
   older than ``cutoff`` when deleted. Directory store: the blob is first renamed
   into ``tmp`` (``gc.<sha>``), its age looked at again there and, if a claim made it
   young meanwhile, renamed back; so a claim either lands before (the blob stays) or
   finds it missing (the release is refused with 409 ``missing_blobs``). A
   ``gc.`` file a crash left is renamed back at start.
7. Directory store: a blob a claim found present is remembered (in this process) for
   ``CLAIM_REFRESH`` seconds with the mtime its directory had just before, and a claim
   meanwhile takes it as present without looking at it while that directory's mtime
   is the same (one ``stat`` per directory, at most 256, rather than one per blob: a
   one-file push of 1,065 files made 1,065, about 3 ms of the control plane's CPU,
   for blobs its previous push had claimed). A blob deleted since (by a collection,
   or by hand) changed its directory's mtime, so it is looked at again; a directory
   changed within ``QUIET_SECONDS`` before a claim looked at it is not trusted so (its
   coarse timestamp could hide a change right after). The blob's mtime was made at
   most ``CLAIM_REFRESH`` old by that claim, so it stays within ``2 * CLAIM_REFRESH``
   of now while remembered, well inside any grace period (``retention.MIN_GRACE``): no
   collection deletes it, and ``delete_older`` never deletes a blob remembered so
   (even one whose mtime was set back by hand). ``forget_claims()`` forgets them all
   (tests that age blobs by hand: the time they skip forgets them too). A claim given
   ``now`` looks at every blob, as before.
8. Directory store, packs (``owncdn/packs.py`` under ``<root>/packs``): a bundle
   upload (``bundle()``, ``BundlePack``) writes its blobs back to back into one new
   pack, each hashed as it arrives and cut off again when it hashes wrong; at the
   end the pack is fsynced (its writeback begun every MiB as it was written,
   ``durable.start_writeback``), the index records appended and fsynced, the
   directory fsynced, and only then are the blobs stored. No rename, no directory
   of blobs, and no ``syncfs``: the flush waits for this pack's last bytes only,
   never for other files dirty on the file system (in ``bench/push.py`` the edges'
   200 MB on the same disk). At start the indexes are read, not the blobs; a pack
   whose writer died has no index and is deleted. A packed blob is found (``size``,
   ``claim``, reads) in memory, before any file is looked at. Its age for collection
   is the later of its pack's writing (the index's mtime) and the last claim that
   found it (``Slot.claimed``, kept in memory: set when older than
   ``CLAIM_REFRESH``); a claim and ``delete_older`` take one lock, so a claim lands
   before a deletion or finds the blob gone. ``delete_older`` forgets it (and a
   file of it, if the blob is also stored as one); after a collection ``compact()``
   deletes packs with nothing left and copies the rest of those less than half
   alive into a new durable pack (``packs`` Rules 4, 5), keeping their age. A
   blob deleted from a pack that is kept comes back after a restart, as old as
   before, and is deleted by the next collection. The packs' index lives in this
   process's memory: a directory store belongs to one control-plane process
   (replicas share an S3 store).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from owncdn.core.content.digest import hasher, is_blob_name, name_of
from owncdn.core.content.retention import BlobInfo
from owncdn.durable import SYNCFS_MIN, SyncGroup, sync_many, write_all
from owncdn.packs import Packs, Slot

__all__ = [
    "BlobError", "BlobMismatch", "BlobNotFound", "BlobPart", "BlobStore", "BlobTooLarge", "BlobWriter", "BundlePack",
    "DirBlobStore", "S3BlobStore", "open_blob_store",
]

CHUNK = 256 * 1024
MAX_BLOB_BYTES = 5 << 30
SPOOL_BYTES = 8 << 20
HEAD_THREADS = 16
CLAIM_REFRESH = 60.0
CLAIMS_KEPT = 1 << 18  # blobs a directory store remembers as claimed (Rule 7)
GC_PREFIX = "gc."
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC
_NEVER = float("-inf")
_UNSURE = object()  # a directory mtime equal to no other (Rule 7)
QUIET_SECONDS = 1.0


class BlobError(Exception):
    """Base of the blob store's errors."""


class BlobMismatch(BlobError, ValueError):
    """The bytes received do not hash to the name they were sent under."""


class BlobTooLarge(BlobError, ValueError):
    """A blob larger than the store accepts."""


class BlobNotFound(BlobError, LookupError):
    """No blob has this hash."""


class BlobWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self) -> int: ...
    def abort(self) -> None: ...


class BlobStore(Protocol):
    def missing(self, hashes: Iterable[str]) -> list[str]: ...
    def size(self, sha: str) -> int | None: ...
    def sizes(self, hashes: Iterable[str]) -> dict[str, int | None]: ...
    def writer(self, sha: str) -> BlobWriter: ...
    def read(self, sha: str, start: int = 0) -> Iterator[bytes]: ...
    def sync(self, hashes: Iterable[str]) -> None: ...
    def claim(self, hashes: Iterable[str]) -> list[str]: ...
    def stored(self) -> Iterator[tuple[str, BlobInfo]]: ...
    def delete_older(self, sha: str, cutoff: float) -> int | None: ...


def _check_name(sha: str) -> None:
    if not is_blob_name(sha):
        raise ValueError(f"blob name {sha[:80]!r}: expected 64 lowercase hex digits, then -b3 (BLAKE3) "
                         "or nothing (SHA-256)")


class _Hashing:
    """Hash and count what is written, refusing more than ``limit`` bytes (Rules 1, 5)."""

    def __init__(self, sha: str, limit: int) -> None:
        _check_name(sha)
        self.sha, self.limit = sha, limit
        self.hash = hasher(sha)
        self.size = 0

    def _count(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise BlobTooLarge(f"blob {self.sha[:12]}: larger than the store's limit of {self.limit} bytes")
        self.hash.update(data)

    def write(self, data: bytes) -> None:
        """Count and hash ``data``, then hand it to ``self.out`` (the temp file or spool);
        too many bytes abort the write."""
        try:
            self._count(data)
        except BlobTooLarge:
            self.abort()
            raise
        self.out.write(data)

    def abort(self) -> None:
        raise NotImplementedError

    def _verify(self) -> None:
        got = name_of(self.hash)
        if got != self.sha:
            raise BlobMismatch(f"the {self.size} bytes sent as blob {self.sha} hash to {got}; nothing was stored")


# -- a directory ---------------------------------------------------------------------------

class DirBlobStore:
    """Blobs as files under ``root`` (Rule 2)."""

    def __init__(self, root: str | Path, max_bytes: int = MAX_BLOB_BYTES) -> None:
        self.root = Path(root)
        self._root = str(self.root)
        self.max_bytes = max_bytes
        self.tmp = self.root / "tmp"
        self._tmp = str(self.tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():
            if leftover.name.startswith(GC_PREFIX) and is_blob_name(leftover.name[len(GC_PREFIX):]):
                self._restore(leftover, leftover.name[len(GC_PREFIX):])  # fate unknown: back (Rule 6)
            elif leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)  # a writing thread's directory (Rule 2)
            else:
                leftover.unlink(missing_ok=True)
        # directories renamed into, each with the SyncGroup ticket of its last rename (Rule 2);
        # those found at start are unknown: synced once (ticket 0: a group sync from now on covers them)
        self._dirty: dict[Path, int] = {p: 0 for p in self.root.iterdir() if p.is_dir() and len(p.name) == 2}
        self._dirty_lock = threading.Lock()
        self._threads = threading.local()  # each writing thread's temp directory and counter
        self._tmp_dirs = 0
        self._dirs: dict[str, Path] = {}  # the 256 blob directories, by prefix
        self._make_dirs()
        self._group = SyncGroup(self._tmp)  # commit_many's syncfs, shared by uploads ending at once
        self._claimed: dict[str, tuple] = {}  # blob -> (when a claim found it, its directory's mtime) (Rule 7)
        self._offered: dict[str, str | Slot] = {}  # blob -> its verified temp file or slot, until stored or removed (Rule 4)
        self.packs = Packs(self.root / "packs")
        self._packed: dict[str, Slot] = self.packs.load()  # Rule 8
        self._pack_lock = threading.Lock()  # claims and deletions of packed blobs (Rule 8)

    def __repr__(self) -> str:
        return f"<DirBlobStore {self.root}>"

    def _make_dirs(self) -> None:
        """The 256 ``<sha[:2]>`` directories, made at start rather than during an upload
        (each costs an inode allocation, slow on a file system busy freeing inodes);
        their names are made durable at once."""
        have = {entry.name for entry in os.scandir(self._root) if entry.is_dir()}
        made = False
        for i in range(256):
            directory = self.root / f"{i:02x}"
            if directory.name not in have:
                directory.mkdir(exist_ok=True)
                made = True
            self._dirs[directory.name] = directory
        if made:
            fd = os.open(self._root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def path(self, sha: str) -> Path:
        _check_name(sha)
        return self.root / sha[:2] / sha

    def size(self, sha: str) -> int | None:
        _check_name(sha)
        slot = self._packed.get(sha)
        if slot is not None:
            return slot.size
        try:  # string paths: a release of 1,000 files asks 1,000 times, a Path each cost more than the stat
            return os.stat(f"{self._root}/{sha[:2]}/{sha}").st_size
        except FileNotFoundError:
            return None

    def sizes(self, hashes: Iterable[str]) -> dict[str, int | None]:
        """Each blob's size (None: missing), in the order asked, repeats dropped (one
        loop, not a call of ``size`` each: 1,065 blobs in 1.5 ms rather than 2.9)."""
        out: dict[str, int | None] = {}
        root, packed = self._root, self._packed
        for sha in dict.fromkeys(hashes):
            slot = packed.get(sha)
            if slot is not None:
                out[sha] = slot.size
                continue
            _check_name(sha)
            try:
                out[sha] = os.stat(f"{root}/{sha[:2]}/{sha}").st_size
            except FileNotFoundError:
                out[sha] = None
        return out

    def missing(self, hashes: Iterable[str]) -> list[str]:
        return [sha for sha, size in self.sizes(hashes).items() if size is None]

    def writer(self, sha: str) -> _DirWriter:
        return _DirWriter(self, sha)

    def claim(self, hashes: Iterable[str], now: float | None = None) -> list[str]:
        """``missing``, and the present blobs' mtimes refreshed when older than
        ``CLAIM_REFRESH`` seconds (Rule 6); those claimed lately are not looked at
        again (Rule 7)."""
        if now is not None:
            return self._claim(self._claim_packed(dict.fromkeys(hashes), now), now, None, {})
        at, wall = time.monotonic(), time.time()
        wanted = self._claim_packed(dict.fromkeys(hashes), wall)
        dirs = self._quiet_dirs({sha[:2] for sha in wanted}, wall)  # before any blob is looked at
        lately, since = self._claimed, at - CLAIM_REFRESH
        todo = []
        for sha in wanted:
            seen = lately.get(sha)
            if seen is None or seen[0] < since or seen[1] != dirs.get(sha[:2]):
                todo.append(sha)
        missing = self._claim(todo, wall, at, dirs) if todo else []
        if len(lately) > CLAIMS_KEPT:
            self._prune_claims(since)
        return missing

    def _claim(self, hashes: Iterable[str], now: float, at: float | None, dirs: dict) -> list[str]:
        """Rule 6 for ``hashes``; with ``at``, those present remembered as claimed then,
        with their directory's mtime in ``dirs`` (Rule 7)."""
        missing, old, root, lately = [], now - CLAIM_REFRESH, self._root, self._claimed
        for sha in hashes:
            _check_name(sha)
            path = f"{root}/{sha[:2]}/{sha}"  # not os.path.join: a third of the time for 1,065 blobs
            try:
                if os.stat(path).st_mtime < old:
                    os.utime(path, (now, now))
            except FileNotFoundError:
                missing.append(sha)
                continue
            if at is not None:
                lately[sha] = (at, dirs.get(sha[:2]) or _UNSURE)
        return missing

    def _claim_packed(self, hashes: dict[str, None], now: float) -> list[str] | dict[str, None]:
        """Rule 8: the packed blobs of ``hashes`` marked wanted at ``now`` (when a claim
        last did so more than ``CLAIM_REFRESH`` seconds before); the others, to look for
        as files. Under the lock ``delete_older`` takes: a claim lands before a deletion
        or finds the blob gone."""
        packed = self._packed
        if not packed:
            return hashes
        rest, old = [], now - CLAIM_REFRESH
        with self._pack_lock:
            for sha in hashes:
                slot = packed.get(sha)
                if slot is None:
                    rest.append(sha)
                elif slot.claimed < old:
                    slot.claimed = now
        return rest

    def _quiet_dirs(self, prefixes: Iterable[str], wall: float) -> dict[str, int | None]:
        """Rule 7: each blob directory's mtime (ns), None for one changed within the last
        ``QUIET_SECONDS`` (its timestamp may not tell a later change from an earlier one)."""
        out: dict[str, int | None] = {}
        recent = int((wall - QUIET_SECONDS) * 1e9)
        for prefix in prefixes:
            if prefix in self._dirs:
                try:
                    mtime = os.stat(f"{self._root}/{prefix}").st_mtime_ns
                except FileNotFoundError:
                    continue
                out[prefix] = mtime if mtime < recent else None
        return out

    def _claimed_lately(self, sha: str) -> bool:
        """Rule 7: a claim found ``sha`` within the last ``CLAIM_REFRESH`` seconds."""
        return self._claimed.get(sha, (_NEVER,))[0] >= time.monotonic() - CLAIM_REFRESH

    def _prune_claims(self, since: float) -> None:
        with self._dirty_lock:
            kept = {sha: seen for sha, seen in list(self._claimed.items()) if seen[0] >= since}
            self._claimed = kept if len(kept) <= CLAIMS_KEPT // 2 else {}

    def forget_claims(self) -> None:
        """Rule 7: the next claims look at every blob again."""
        self._claimed = {}

    def stored(self) -> Iterator[tuple[str, BlobInfo]]:
        """Every blob with its size and mtime (Rule 6; a packed blob: Rule 8)."""
        with self._pack_lock:
            packed = [(sha, BlobInfo(size=slot.size, mtime=max(slot.pack.made, slot.claimed)))
                      for sha, slot in self._packed.items()]
        yield from packed
        seen = self._packed
        for entry in os.scandir(self._root):
            if len(entry.name) != 2 or not entry.is_dir(follow_symlinks=False):
                continue
            for blob in os.scandir(entry.path):
                if blob.name.startswith(entry.name) and is_blob_name(blob.name) and blob.name not in seen:
                    try:
                        st = blob.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    yield blob.name, BlobInfo(size=st.st_size, mtime=st.st_mtime)

    def delete_older(self, sha: str, cutoff: float) -> int | None:
        """Delete the blob if its mtime is still before ``cutoff``; its size, or None
        when it is gone already or was claimed meanwhile (Rule 6; a packed blob: Rule 8)."""
        final = self.path(sha)
        if sha in self._packed:
            return self._drop_packed(sha, cutoff)
        if self._claimed_lately(sha):  # Rule 7
            return None
        trash = self.tmp / f"{GC_PREFIX}{sha}"
        try:
            os.replace(final, trash)
        except FileNotFoundError:
            return None
        st = trash.stat()
        if st.st_mtime >= cutoff or self._claimed_lately(sha):
            self._restore(trash, sha)
            return None
        self._claimed.pop(sha, None)
        trash.unlink()
        return st.st_size

    def _drop_packed(self, sha: str, cutoff: float) -> int | None:
        """Rule 8: forget a packed blob wanted last before ``cutoff`` (and a file of it)."""
        with self._pack_lock:
            slot = self._packed.get(sha)
            if slot is None or max(slot.pack.made, slot.claimed) >= cutoff:
                return None
            del self._packed[sha]
            Packs.forget(sha, slot)
        try:
            os.unlink(f"{self._root}/{sha[:2]}/{sha}")
        except FileNotFoundError:
            pass
        return slot.size

    def compact(self) -> int:
        """Rule 8, after a collection: packs with no blob left deleted, those mostly
        dead copied out; the bytes freed."""
        freed, todo = self.packs.sweep()
        if todo:
            freed += self.packs.compact(todo, self._moved)
        return freed

    def _moved(self, moved: list[tuple[str, Slot, Slot]]) -> list[str]:
        """``Packs.compact``'s swap: the blobs still held so pointed at their new slots."""
        taken = []
        with self._pack_lock:
            for sha, old, new in moved:
                if self._packed.get(sha) is old:
                    new.claimed = old.claimed
                    self._packed[sha] = new
                    taken.append(sha)
        return taken

    def _restore(self, trash: Path, sha: str) -> None:
        final = self.root / sha[:2] / sha
        final.parent.mkdir(exist_ok=True)
        if final.exists():  # uploaded again meanwhile: the same bytes (Rule 1)
            trash.unlink(missing_ok=True)
        else:
            os.replace(trash, final)

    def put(self, sha: str, data: bytes) -> int:
        """Store a whole small blob in one step (Rules 1, 2); its size."""
        sizes, error = self.put_many([(sha, data)])
        if error is not None:
            raise error
        return sizes[0]

    def put_many(self, items: list[tuple[str, bytes]]) -> tuple[list[int], BlobError | None]:
        """Store whole small blobs in one step (Rules 1, 2): ``write_many`` then
        ``commit_many``. The sizes of those stored, in order, up to the first that
        failed, and that failure (or None)."""
        written, sizes, error = self.write_many(items)
        self.commit_many(written)
        return sizes, error

    def write_many(self, items: list[tuple[str, bytes]]) -> tuple[list[tuple[str, str]], list[int], BlobError | None]:
        """Whole small blobs, each checked (Rule 1) and written to a temp file of its
        own in this thread's temp directory, not yet durable and not yet a blob:
        ``(sha, temp file)`` for ``commit_many``, the sizes, in order, up to the first
        that failed, and that failure (or None)."""
        good: list[tuple[str, bytes]] = []
        error: BlobError | None = None
        for sha, data in items:
            _check_name(sha)
            if len(data) > self.max_bytes:
                error = BlobTooLarge(f"blob {sha[:12]}: larger than the store's limit of {self.max_bytes} bytes")
                break
            h = hasher(sha)
            h.update(data)
            got = name_of(h)
            if got != sha:
                error = BlobMismatch(f"the {len(data)} bytes sent as blob {sha} hash to {got}; nothing was stored")
                break
            good.append((sha, data))
        directory, first = self._temp_names(len(good))
        tmps = [f"{directory}/{sha[:12]}.{first + i}" for i, (sha, _) in enumerate(good)]
        write_all(zip(tmps, (data for _, data in good)), exclusive=True, sync=False)
        return list(zip((sha for sha, _ in good), tmps)), [len(data) for _, data in good], error

    def _temp_names(self, count: int) -> tuple[str, int]:
        """This thread's temp directory (made on its first use) and the first of
        ``count`` numbers for names in it. A directory per thread: creating a file
        locks its directory, and threads creating files in one directory at once
        queue there, the kernel spinning for the lock (perf, the control plane
        receiving a first push of 1,065 files: 7-21% of its CPU, the more the slower
        a file's creation)."""
        local = self._threads
        directory = getattr(local, "directory", None)
        if directory is None:
            with self._dirty_lock:
                self._tmp_dirs += 1
                directory = f"{self._tmp}/w{os.getpid()}.{self._tmp_dirs}"
            os.makedirs(directory, exist_ok=True)
            local.directory, local.counter = directory, 0
        first = local.counter
        local.counter += count
        return directory, first

    def part(self, sha: str, size: int) -> BlobPart:
        """A blob of ``size`` bytes received piece by piece (Rules 1, 2, 5): a temp file
        in this thread's temp directory, hashed as written; ``finish()`` checks it and
        gives ``(sha, temp file)`` for ``commit_many``, ``abort()`` removes it."""
        return BlobPart(self, sha, size)

    def discard(self, written: list[tuple[str, str]]) -> None:
        """Temp files from ``write_many`` or ``part``, removed rather than committed."""
        for sha, tmp in written:
            _unlink(tmp)
            self._withdraw(sha, tmp)

    def offer(self, written: list[tuple[str, str]] | list[tuple[str, Slot]]) -> None:
        """Verified temp files from ``write_many`` or ``part`` (or slots of a
        ``BundlePack``), readable by their blob's name until ``commit_many`` or
        ``discard`` (Rule 4)."""
        self._offered.update(written)

    def bundle(self) -> BundlePack:
        """A new pack for the blobs of one bundle upload (Rule 8)."""
        return BundlePack(self)

    def _hold(self, kept: list[tuple[str, Slot]]) -> None:
        """Rule 8: blobs of a committed pack, stored now (one held already stays where it is)."""
        with self._pack_lock:
            packed = self._packed
            for sha, slot in kept:
                if sha in packed:
                    Packs.forget(sha, slot)
                else:
                    packed[sha] = slot
        for sha, slot in kept:
            self._withdraw(sha, slot)

    def _withdraw(self, sha: str, tmp: str | Slot) -> None:
        if self._offered.get(sha) == tmp:  # not another upload's offer of the same blob
            with self._dirty_lock:
                if self._offered.get(sha) == tmp:
                    del self._offered[sha]

    def commit_many(self, written: list[tuple[str, str]]) -> None:
        """Temp files from ``write_many`` or ``part`` (of one call or several): made
        durable at once (``owncdn.durable.SyncGroup``: one ``syncfs`` rather than an
        fsync each, shared with other uploads ending at the same time), then renamed
        (Rule 2). If that fails they are removed."""
        try:
            self._group.sync_paths([tmp for _, tmp in written])
        except BaseException:
            self.discard(written)
            raise
        prefixes = set()
        offered = self._offered
        for sha, tmp in written:
            os.replace(tmp, f"{self._root}/{sha[:2]}/{sha}")  # the directories exist since the start
            prefixes.add(sha[:2])
            if offered and sha in offered:
                self._withdraw(sha, tmp)  # after the rename: a reader missing both names cannot be (Rule 4)
        self._renamed_into(*(self._dirs[prefix] for prefix in prefixes))
        if len(written) >= SYNCFS_MIN:
            self._group.soon()  # the renames written back now, before the release asks (durable Rule 9)

    def sync(self, hashes: Iterable[str]) -> None:
        """Make the blobs' directory entries durable (Rule 2). Nothing to do, and no
        name looked at, when no directory was renamed into since the last sync (a
        release after its bundle's own sync: checking 1,065 names took 0.7 ms)."""
        if not self._dirty:
            return
        dirs = self._dirs  # the directories' Paths, made once (256 made here took about 1 ms)
        wanted = set()
        packed = self._packed  # durable since their pack's commit (Rule 8)
        for prefix, sha in {sha[:2]: sha for sha in hashes if sha not in packed}.items():
            directory = dirs.get(prefix)
            if directory is None:
                _check_name(sha)  # not a blob name: raises
            wanted.add(directory)
        covered = self._group.covered
        with self._dirty_lock:
            for directory in [d for d, mark in self._dirty.items() if covered(mark)]:
                del self._dirty[directory]  # durable already: the next syncs need not look (the fast path)
            todo = sorted(d for d in wanted if d in self._dirty)
            marks = {d: self._dirty[d] for d in todo}
            ticket = max(marks.values(), default=0)
            for directory in wanted:  # before the fsyncs: a rename from now on marks it again
                self._dirty.pop(directory, None)
        try:
            if todo and (len(todo) >= SYNCFS_MIN or self._group.flushing) and self._group.wait(ticket):
                return  # one group syncfs begun after their renames (often soon()'s, in flight)
            _sync_dirs(todo)
        except BaseException:  # still to be made durable, by the next sync
            with self._dirty_lock:
                for directory, mark in marks.items():
                    self._dirty[directory] = max(mark, self._dirty.get(directory, 0))
            raise

    def _renamed_into(self, *directories: Path) -> None:
        """Mark directories renamed into (after the renames): durable once a group
        ``syncfs`` begun from now on ended, or ``sync`` flushed them (Rule 2)."""
        ticket = self._group.ticket()
        with self._dirty_lock:
            for directory in directories:
                self._dirty[directory] = max(ticket, self._dirty.get(directory, 0))

    def open_blob(self, sha: str) -> tuple[int, int, int | None]:
        """``(fd, base, size)``: a read-only descriptor holding the blob from offset
        ``base``, for the caller to close, and its size (None: the file's length; a
        loose blob or a temp file) (``sendfile`` downloads, ``api/sendfile.py``);
        ``BlobNotFound`` when there is none (Rule 4: an offered blob from its temp file
        or pack; Rule 8: a packed blob from its pack, again from its new one when a
        compaction moved it meanwhile)."""
        _check_name(sha)
        offered = self._offered.get(sha)
        if offered is not None:
            try:
                return _open_at(offered)
            except FileNotFoundError:
                pass  # stored (or removed) meanwhile
        for _ in range(3):
            slot = self._packed.get(sha)
            if slot is None:
                break
            try:
                return _open_at(slot)
            except FileNotFoundError:
                continue  # compacted meanwhile
        try:
            return os.open(f"{self._root}/{sha[:2]}/{sha}", os.O_RDONLY | _CLOEXEC), 0, None
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {sha}") from None

    def read_into(self, sha: str, buffer: memoryview) -> None:
        """Fill ``buffer`` with the blob's first ``len(buffer)`` bytes: open, read, close
        (three system calls for a small blob, and no copy besides the kernel's); the
        bundle downloads read small blobs so (``api/blobs.py`` Rule 6)."""
        fd, base, _ = self.open_blob(sha)
        try:
            done = 0
            while done < len(buffer):
                got = os.preadv(fd, [buffer[done:]], base + done)
                if got == 0:
                    raise BlobError(f"blob {sha[:12]} ended after {done} of {len(buffer)} bytes")
                done += got
        finally:
            os.close(fd)

    def read(self, sha: str, start: int = 0) -> Iterator[bytes]:
        return _span_chunks(*self.open_blob(sha), start)


def _open_at(where: str | Slot) -> tuple[int, int, int | None]:
    """``open_blob``'s answer for a temp file's path or a packed blob's slot."""
    if isinstance(where, Slot):
        return Packs.open(where), where.offset, where.size
    return os.open(where, os.O_RDONLY | _CLOEXEC), 0, None


def _span_chunks(fd: int, base: int, size: int | None, start: int) -> Iterator[bytes]:
    """The blob's bytes from ``start``, in chunks; the descriptor closed at the end."""
    try:
        end = base + (os.fstat(fd).st_size if size is None else size)
        at = base + start
        while at < end and (chunk := os.pread(fd, min(CHUNK, end - at), at)):
            yield chunk
            at += len(chunk)
    finally:
        os.close(fd)


class _DirWriter(_Hashing):
    def __init__(self, store: DirBlobStore, sha: str) -> None:
        super().__init__(sha, store.max_bytes)
        self.store = store
        fd, name = tempfile.mkstemp(dir=store.tmp, prefix=sha[:12] + ".")
        self.file, self.tmp_path = os.fdopen(fd, "wb"), Path(name)
        self.out = self.file

    def commit(self) -> int:
        """Verify, then move into place (Rule 2); the blob's size."""
        try:
            self._verify()
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            final = self.store.path(self.sha)
            final.parent.mkdir(exist_ok=True)
            os.replace(self.tmp_path, final)  # durable once sync() ran (Rule 2)
            self.store._renamed_into(final.parent)
        except BaseException:
            self.abort()
            raise
        return self.size

    def abort(self) -> None:
        self.file.close()
        self.tmp_path.unlink(missing_ok=True)


class BlobPart(_Hashing):
    """One blob received piece by piece into a temp file (``DirBlobStore.part``)."""

    def __init__(self, store: DirBlobStore, sha: str, size: int) -> None:
        super().__init__(sha, store.max_bytes)
        if size > self.limit:
            raise BlobTooLarge(f"blob {sha[:12]}: {size} bytes, more than the store's limit of {self.limit} bytes")
        directory, number = store._temp_names(1)
        self.tmp = f"{directory}/{sha[:12]}.{number}"
        self.fd = os.open(self.tmp, _CREATE, 0o644)

    def __repr__(self) -> str:
        return f"<BlobPart {self.sha[:12]} {self.size} bytes{'' if self.fd >= 0 else ' closed'}>"

    def write(self, data) -> None:
        """Hash and write ``data`` (bytes or a view); ``BlobTooLarge`` past the limit."""
        self._count(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def finish(self) -> tuple[str, str]:
        """``(sha, temp file)`` once the bytes hash to ``sha``; else removed, ``BlobMismatch``."""
        os.close(self.fd)
        self.fd = -1
        try:
            self._verify()
        except BlobMismatch:
            _unlink(self.tmp)
            raise
        return self.sha, self.tmp

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        _unlink(self.tmp)


class BundlePack:
    """The blobs of one bundle upload, written back to back into one new pack (Rule 8,
    ``DirBlobStore.bundle``): per blob ``start(sha, size)``, ``write(data)``...,
    ``end()`` (verified: kept; else cut off again and ``BlobMismatch``); then
    ``offer()`` (readable before they are durable), ``commit()`` (durable and stored)
    or ``discard()``; ``close()`` in any case. One thread at a time."""

    def __init__(self, store: DirBlobStore) -> None:
        self.store = store
        self.writer = store.packs.writer(durable=True)
        self.blob: _Hashing | None = None
        self.offered: list[tuple[str, Slot]] = []

    def __repr__(self) -> str:
        return f"<BundlePack {self.writer.pack!r} {len(self.writer.records)} kept{' receiving' if self.blob else ''}>"

    def start(self, sha: str, size: int) -> None:
        blob = _Hashing(sha, self.store.max_bytes)
        if size > blob.limit:
            raise BlobTooLarge(f"blob {sha[:12]}: {size} bytes, more than the store's limit of {blob.limit} bytes")
        self.writer.begin()
        self.blob = blob

    def write(self, data) -> None:
        """Hash and write ``data`` (bytes or a view); ``BlobTooLarge`` past the limit."""
        self.blob._count(data)
        self.writer.write(memoryview(data))

    def end(self) -> int:
        """The blob's size once its bytes hash to its name; else it is cut off the pack
        and ``BlobMismatch`` raised."""
        blob, self.blob = self.blob, None
        try:
            blob._verify()
        except BlobMismatch:
            self.writer.cut()
            raise
        self.writer.keep(blob.sha)
        return blob.size

    def kept(self) -> list[tuple[str, Slot]]:
        return [(sha, slot) for sha, slot, _ in self.writer.records]

    def offer(self) -> None:
        """The verified blobs, readable from the pack before ``commit`` (Rule 4)."""
        self.offered = self.kept()
        self.store.offer(self.offered)

    def commit(self) -> None:
        """Pack, index and directory made durable (``packs`` Rule 1), then the blobs
        stored; if that fails they are dropped (the pack deleted at ``close``)."""
        try:
            kept = self.writer.commit()
        except BaseException:
            self.discard()
            raise
        self.store._hold(kept)
        self.offered = []

    def discard(self) -> None:
        self.writer.records = []
        for sha, slot in self.offered:
            self.store._withdraw(sha, slot)
        self.offered = []

    def close(self) -> None:
        """A blob cut off midway removed; the pack closed (deleted if nothing was stored)."""
        if self.blob is not None:
            self.blob = None
            self.writer.cut()
        if self.writer.records:
            self.discard()
        self.writer.close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _sync_dirs(dirs: list[Path]) -> None:
    """Make these directories' entries durable, all at once (``durable.sync_many``)."""
    for start in range(0, len(dirs), 256):
        fds = [os.open(directory, os.O_RDONLY) for directory in dirs[start:start + 256]]
        try:
            sync_many(fds)
        finally:
            for fd in fds:
                os.close(fd)


# -- S3-compatible object storage ------------------------------------------------------------

class S3BlobStore:
    """Blobs as objects ``<prefix>/<sha>`` in an S3 bucket (Rule 3)."""

    def __init__(self, bucket: str, prefix: str = "", *, client=None, max_bytes: int = MAX_BLOB_BYTES) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"<S3BlobStore s3://{self.bucket}/{self.prefix}>"

    def key(self, sha: str) -> str:
        _check_name(sha)
        return f"{self.prefix}/{sha}" if self.prefix else sha

    def size(self, sha: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(sha))["ContentLength"])
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise BlobError(f"{self!r}: cannot look up blob {sha[:12]}: {_reason(exc)}") from None

    def sizes(self, hashes: Iterable[str]) -> dict[str, int | None]:
        """Each blob's size (None: missing), asked ``HEAD_THREADS`` at a time."""
        wanted = list(dict.fromkeys(hashes))
        if len(wanted) <= 1:
            return {sha: self.size(sha) for sha in wanted}
        with ThreadPoolExecutor(HEAD_THREADS) as pool:
            return dict(zip(wanted, pool.map(self.size, wanted), strict=True))

    def missing(self, hashes: Iterable[str]) -> list[str]:
        return [sha for sha, size in self.sizes(hashes).items() if size is None]

    def writer(self, sha: str) -> _S3Writer:
        return _S3Writer(self, sha)

    def sync(self, hashes: Iterable[str]) -> None:
        """Nothing to do: an object S3 acknowledged is stored (Rule 3)."""

    def claim(self, hashes: Iterable[str], now: float | None = None) -> list[str]:
        """``missing``: objects keep their upload time (Rule 6)."""
        return self.missing(hashes)

    def stored(self) -> Iterator[tuple[str, BlobInfo]]:
        """Every blob under the prefix with its size and LastModified (Rule 6)."""
        from botocore.exceptions import BotoCoreError, ClientError

        start = f"{self.prefix}/" if self.prefix else ""
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
                for obj in page.get("Contents", ()):
                    name = obj["Key"][len(start):]
                    if is_blob_name(name):
                        yield name, BlobInfo(size=int(obj["Size"]), mtime=obj["LastModified"].timestamp())
        except (ClientError, BotoCoreError) as exc:
            raise BlobError(f"{self!r}: cannot list blobs: {_reason(exc)}") from None

    def delete_older(self, sha: str, cutoff: float) -> int | None:
        """Delete the blob if it was last modified before ``cutoff`` (Rule 6)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha))
            if head["LastModified"].timestamp() >= cutoff:
                return None
            self.client.delete_object(Bucket=self.bucket, Key=self.key(sha))
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise BlobError(f"{self!r}: cannot delete blob {sha[:12]}: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise BlobError(f"{self!r}: cannot delete blob {sha[:12]}: {_reason(exc)}") from None
        return int(head["ContentLength"])

    def read(self, sha: str, start: int = 0) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        kwargs = {"Range": f"bytes={start}-"} if start else {}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(sha), **kwargs)["Body"]
        except ClientError as exc:
            if _status(exc) == 404:
                raise BlobNotFound(f"no blob {sha}") from None
            if _status(exc) == 416:
                return iter(())
            raise BlobError(f"{self!r}: cannot read blob {sha[:12]}: {_reason(exc)}") from None
        return _body_chunks(body)


def _body_chunks(body) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


class _S3Writer(_Hashing):
    def __init__(self, store: S3BlobStore, sha: str) -> None:
        super().__init__(sha, store.max_bytes)
        self.store = store
        self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed in commit/abort
        self.out = self.spool

    def commit(self) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._verify()
            if self.store.size(self.sha) is None:
                self.spool.seek(0)
                self.store.client.upload_fileobj(self.spool, self.store.bucket, self.store.key(self.sha))
        except (ClientError, BotoCoreError) as exc:
            raise BlobError(f"{self.store!r}: cannot store blob {self.sha[:12]}: {_reason(exc)}") from None
        finally:
            self.spool.close()
        return self.size

    def abort(self) -> None:
        self.spool.close()


def _status(exc) -> int:
    meta = getattr(exc, "response", {}).get("ResponseMetadata", {})
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    if code in ("404", "NoSuchKey", "NotFound"):
        return 404
    if code in ("416", "InvalidRange"):
        return 416
    return int(meta.get("HTTPStatusCode", 0) or 0)


def _reason(exc) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".strip(": ") or type(exc).__name__


# -- choosing one --------------------------------------------------------------------------

def open_blob_store(spec: str | Path) -> DirBlobStore | S3BlobStore:
    """``s3://bucket/prefix`` -> ``S3BlobStore``; anything else is a directory."""
    text = str(spec)
    if text.startswith("s3://"):
        parts = urlsplit(text)
        if not parts.netloc:
            raise ValueError(f"blob store {text!r}: expected s3://bucket/prefix")
        return S3BlobStore(parts.netloc, parts.path)
    return DirBlobStore(text)
