"""The directory blob store: blobs as files under a root directory, or in packs.

``DirBlobStore`` keeps the rules every blob store keeps (``control/blobs.py``: names,
verification, reads, limits, collection) and these of its own. Bytes reach it through
the writers of ``dirwriters.py``: ``DirWriter`` (one blob), ``BlobPart`` (one blob,
piece by piece) and ``BundlePack`` (a bundle upload's blobs, into one pack); it is
read through the methods of ``dirreads.py`` (``open_blob``, ``open_run``,
``in_pack_order``, ``read_into``, ``read``).

Rules:
1. A bundle upload's blobs go to one pack (Rule 5); other bytes go to
   a temp file in ``<root>/tmp`` (small blobs: in the
   writing thread's own directory there, ``tmp/w<pid>.<n>``, so threads creating
   files at once do not queue on one directory's lock), are fsynced and
   renamed to ``<root>/<sha[:2]>/<sha>``, so a crash leaves a whole blob or none;
   leftover temp files and directories are removed at start, where the 256 directories are made if
   missing (``put_many`` writes a batch of small
   blobs first and makes them durable at once before renaming any; ``write_many``
   and ``commit_many`` are its two halves, so a batch is made durable with one
   flush; ``part(sha, size)`` writes one blob piece by piece for ``commit_many``,
   the way a ``PUT`` read raw stores its blob;
   ``commit_many`` shares its ``syncfs`` with the uploads ending at the same time,
   ``durable.SyncGroup``). The renames are made durable by
   ``sync(hashes)`` (one fsync per directory renamed into since the last sync, one
   that failed left to the next; every directory after a start; not those a group ``syncfs`` begun after their last rename
   wrote back already, ``durable.SyncGroup`` Rule 8; a ``commit_many`` of
   ``SYNCFS_MIN`` blobs or more asks for one in the background once renamed, ``durable`` Rule 9,
   and ``sync`` waits for that one, if running, rather than fsync or begin its own), which the control plane calls before it stores a release
   naming those blobs: a blob lost to a crash before that is reported missing and
   uploaded again, and a stored release never names a lost one.
2. Blobs verified and waiting for their flush are ``offer``-ed
   (``(sha, temp file)`` from ``write_many`` or ``part``, or the slots of a
   ``BundlePack``), and ``read``, ``read_into`` and ``open_blob`` (``blobs`` Rule 2)
   read an offered blob from its temp file or pack until ``commit_many`` renamed it
   or its pack was committed (or ``discard`` removed it: then ``BlobNotFound``), so
   the edges waiting for a blob get it while its upload's flush runs (``api/blobs.py``
   Rule 4b). ``size``, ``sizes``, ``missing`` and ``claim`` never see an offered
   blob: it is not stored until durable.
3. Collection (``blobs`` Rule 4): a blob's age is its mtime, which a claim refreshes
   when older than ``CLAIM_REFRESH`` seconds. ``delete_older`` first renames the blob
   into ``tmp`` (``gc.<sha>``), looks at its age again there and, if a claim made it
   young meanwhile, renames it back; so a claim either lands before (the blob stays) or
   finds it missing (the release is refused with 409 ``missing_blobs``). A
   ``gc.`` file a crash left is renamed back at start.
4. A blob a claim found present is remembered (in this process) for
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
5. Packs (``owncdn/packs.py`` under ``<root>/packs``): a bundle
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
6. Packs are headed (``packs`` Rule 6): each blob follows its bundle record header,
   so a pack holds a bundle upload's records as they came. ``open_run(parts, i)``
   opens the blob of ``parts[i]`` (``(header, name, offset, count)``, what
   ``api/sendfile.py`` sends) as ``open_blob`` does and counts how many of the parts
   after it lie right behind it in the same headed pack, each whole (offset 0, its
   size) with its header just before it: those go to an edge as one span of the
   pack, header bytes included (one ``sendfile`` rather than four system calls a
   blob). Lying right behind is proof enough: a pack's bytes are never rewritten,
   a cut blob takes its header with it, and a blob dropped between two others
   leaves more than one header's bytes between them. ``in_pack_order(items)`` puts
   the blobs of a download in the order they lie in the packs (by pack, then offset;
   the others after them, as they came), so what an edge asked for in its own order
   (a manifest's paths) still goes out in spans.
7. A store belongs to one process: it locks its root (``owncdn/dirlock.py``: ``flock``
   on ``<root>/lock``, which names the holder's pid) before it looks at anything, so
   a second control plane given the same directory fails at start with
   ``StoreInUse`` naming that pid, rather than deleting the first one's uploads in
   flight as leftovers (Rule 1) and its packs being written (Rule 5). Stores of one
   directory opened again in the same process (tests restarting one) share the lock.
8. The names of the blobs stored as files are kept in memory (``_loose``: listed at
   start, added as renames put blobs in place, dropped as collection deletes them),
   so ``size``, ``sizes``, ``missing`` and ``claim`` answer for a blob that is not
   there without a ``stat``; a file named there is still looked at (one lost by hand
   is missing). A first push asks about every blob it has before uploading it, and
   each edge fetching the release while it is uploaded asks again: about 4,000
   look-ups of absent files, 15-20 ms of the control plane's CPU, in the push of the
   Python docs. A file put there by hand is not known until a restart: it is reported
   missing, so the push uploads it again (Rule 7: no other process writes here).
9. Partial uploads (``partials.py``): a ``PUT`` cut off (the client gone, the
   connection broken or stalled, the control plane stopping) after at least
   ``PARTIAL_MIN`` bytes keeps its temp file as ``<root>/partials/<sha>``, in place of
   any earlier one (``keep()`` of ``DirWriter`` and ``BlobPart``); a refused one
   (wrong hash, too large) keeps nothing. ``partials.held(names)`` says how many bytes
   of each blob are kept (the missing answer, ``api/blobs.py`` Rule 7). ``part(sha,
   size, offset)`` resumes one (``commit()`` stores it when the body is read through
   ASGI, as a ``DirWriter`` would): the partial is moved to the part's temp file (so two uploads never resume the same one), cut to ``offset``,
   and its bytes read back and hashed, so the blob is checked whole at its end as any
   other (Rule 1: a partial spoilt by a crash, it is not fsynced, or by hand makes
   that check fail, and nothing is stored); ``PartialGone`` (the partial left as it
   was) when none holds ``offset`` bytes. A stored blob's partial is dropped by the
   upload that stored it; ``partials.drop_older(cutoff)`` removes those untouched
   since ``cutoff`` (blob collection: ``PARTIAL_KEEP``, ``blobgc`` Rule 6). Partials
   are found at start; they are not blobs: ``size``, ``missing``, ``claim`` and
   ``stored`` never see them.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path

from owncdn.control.blobs import MAX_BLOB_BYTES, BlobError, BlobMismatch, BlobTooLarge, StoreInUse, check_name
from owncdn.control.dirreads import DirReads
from owncdn.control.dirwriters import BlobPart, BundlePack, DirWriter, remove_temp
from owncdn.control.partials import Partials
from owncdn.core.content.digest import all_blake3_names, hasher, is_blob_name, name_of
from owncdn.core.content.retention import BlobInfo
from owncdn.dirlock import lock, unlock
from owncdn.durable import SYNCFS_MIN, SyncGroup, fsync_dir, sync_many, write_all
from owncdn.packs import Packs, Slot

__all__ = ["DirBlobStore"]

CLAIM_REFRESH = 60.0
CLAIMS_KEPT = 1 << 18  # blobs a directory store remembers as claimed (Rule 4)
GC_PREFIX = "gc."
_NEVER = float("-inf")
_UNSURE = object()  # a directory mtime equal to no other (Rule 4)
QUIET_SECONDS = 1.0
_IN_USE = "a directory blob store belongs to one control plane (replicas share an S3 store)"


class DirBlobStore(DirReads):
    """Blobs as files under ``root`` (Rule 1), or in packs (Rule 5)."""

    def __init__(self, root: str | Path, max_bytes: int = MAX_BLOB_BYTES) -> None:
        self.root = Path(root)
        self._root = str(self.root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        weakref.finalize(self, unlock, lock(self.root, StoreInUse, _IN_USE))  # Rule 7, before any clean-up
        self.tmp = self.root / "tmp"
        self._tmp = str(self.tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._loose: set[str] = set()  # Rule 8: listed below, once the directories are there
        for leftover in self.tmp.iterdir():
            if leftover.name.startswith(GC_PREFIX) and is_blob_name(leftover.name[len(GC_PREFIX):]):
                self._restore(leftover, leftover.name[len(GC_PREFIX):])  # fate unknown: back (Rule 3)
            elif leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)  # a writing thread's directory (Rule 1)
            else:
                leftover.unlink(missing_ok=True)
        # directories renamed into, each with the SyncGroup ticket of its last rename (Rule 1);
        # those found at start are unknown: synced once (ticket 0: a group sync from now on covers them)
        self._dirty: dict[Path, int] = {p: 0 for p in self.root.iterdir() if p.is_dir() and len(p.name) == 2}
        self._dirty_lock = threading.Lock()
        self._threads = threading.local()  # each writing thread's temp directory and counter
        self._tmp_dirs = 0
        self._dirs: dict[str, Path] = {}  # the 256 blob directories, by prefix
        self._make_dirs()
        self._loose.update(self._list_loose())
        self._group = SyncGroup(self._tmp)  # commit_many's syncfs, shared by uploads ending at once
        self._claimed: dict[str, tuple] = {}  # blob -> (when a claim found it, its directory's mtime) (Rule 4)
        self._offered: dict[str, str | Slot] = {}  # blob -> its verified temp file or slot, until stored or removed (Rule 2)
        self.packs = Packs(self.root / "packs", headed=True)
        self._packed: dict[str, Slot] = self.packs.load()  # Rule 5
        self._pack_lock = threading.Lock()  # claims and deletions of packed blobs (Rule 5)
        self.partials = Partials(self.root / "partials")  # Rule 9

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
            fsync_dir(self._root)

    def _list_loose(self) -> set[str]:
        """Rule 8: the blob files in the 256 directories."""
        loose: set[str] = set()
        for prefix, directory in self._dirs.items():
            loose.update(name for name in os.listdir(directory) if name.startswith(prefix) and is_blob_name(name))
        return loose

    def path(self, sha: str) -> Path:
        check_name(sha)
        return self.root / sha[:2] / sha

    def size(self, sha: str) -> int | None:
        check_name(sha)
        slot = self._packed.get(sha)
        if slot is not None:
            return slot.size
        if sha not in self._loose:  # Rule 8
            return None
        try:  # string paths: a release of 1,000 files asks 1,000 times, a Path each cost more than the stat
            return os.stat(f"{self._root}/{sha[:2]}/{sha}").st_size
        except FileNotFoundError:
            return None

    def sizes(self, hashes: Iterable[str]) -> dict[str, int | None]:
        """Each blob's size (None: missing), in the order asked, repeats dropped (one
        loop, not a call of ``size`` each: 1,065 blobs in 1.5 ms rather than 2.9)."""
        out: dict[str, int | None] = {}
        root, packed, loose = self._root, self._packed, self._loose
        wanted = _checked(dict.fromkeys(hashes))
        for sha in wanted:
            slot = packed.get(sha)
            if slot is not None:
                out[sha] = slot.size
                continue
            if sha not in loose:  # Rule 8
                out[sha] = None
                continue
            try:
                out[sha] = os.stat(f"{root}/{sha[:2]}/{sha}").st_size
            except FileNotFoundError:
                out[sha] = None
        return out

    def missing(self, hashes: Iterable[str]) -> list[str]:
        return [sha for sha, size in self.sizes(hashes).items() if size is None]

    def writer(self, sha: str) -> DirWriter:
        return DirWriter(self, sha)

    def claim(self, hashes: Iterable[str], now: float | None = None) -> list[str]:
        """``missing``, and the present blobs' mtimes refreshed when older than
        ``CLAIM_REFRESH`` seconds (Rule 3); those claimed lately are not looked at
        again (Rule 4)."""
        if now is not None:
            return self._claim(self._claim_packed(dict.fromkeys(hashes), now), now, None, {})
        at, wall = time.monotonic(), time.time()
        wanted = self._claim_packed(dict.fromkeys(hashes), wall)
        loose = self._loose
        dirs = self._quiet_dirs({sha[:2] for sha in wanted if sha in loose}, wall)  # before any blob is looked at
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
        """Rule 3 for ``hashes``; with ``at``, those present remembered as claimed then,
        with their directory's mtime in ``dirs`` (Rule 4)."""
        missing, old, root, lately, loose = [], now - CLAIM_REFRESH, self._root, self._claimed, self._loose
        for sha in _checked(hashes):
            if sha not in loose:  # Rule 8
                missing.append(sha)
                continue
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
        """Rule 5: the packed blobs of ``hashes`` marked wanted at ``now`` (when a claim
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
        """Rule 4: each blob directory's mtime (ns), None for one changed within the last
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
        """Rule 4: a claim found ``sha`` within the last ``CLAIM_REFRESH`` seconds."""
        return self._claimed.get(sha, (_NEVER,))[0] >= time.monotonic() - CLAIM_REFRESH

    def _prune_claims(self, since: float) -> None:
        with self._dirty_lock:
            kept = {sha: seen for sha, seen in list(self._claimed.items()) if seen[0] >= since}
            self._claimed = kept if len(kept) <= CLAIMS_KEPT // 2 else {}

    def forget_claims(self) -> None:
        """Rule 4: the next claims look at every blob again."""
        self._claimed = {}

    def stored(self) -> Iterator[tuple[str, BlobInfo]]:
        """Every blob with its size and mtime (Rule 3; a packed blob: Rule 5)."""
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
        when it is gone already or was claimed meanwhile (Rule 3; a packed blob: Rule 5)."""
        final = self.path(sha)
        if sha in self._packed:
            return self._drop_packed(sha, cutoff)
        if self._claimed_lately(sha):  # Rule 4
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
        self._loose.discard(sha)  # Rule 8
        trash.unlink()
        return st.st_size

    def _drop_packed(self, sha: str, cutoff: float) -> int | None:
        """Rule 5: forget a packed blob wanted last before ``cutoff`` (and a file of it)."""
        with self._pack_lock:
            slot = self._packed.get(sha)
            if slot is None or max(slot.pack.made, slot.claimed) >= cutoff:
                return None
            del self._packed[sha]
            Packs.forget(sha, slot)
        self._loose.discard(sha)  # Rule 8
        try:
            os.unlink(f"{self._root}/{sha[:2]}/{sha}")
        except FileNotFoundError:
            pass
        return slot.size

    def compact(self) -> int:
        """Rule 5, after a collection: packs with no blob left deleted, those mostly
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
        if final.exists():  # uploaded again meanwhile: the same bytes (blobs Rule 1)
            trash.unlink(missing_ok=True)
        else:
            os.replace(trash, final)
        self._loose.add(sha)  # Rule 8

    def put(self, sha: str, data: bytes) -> int:
        """Store a whole small blob in one step (``blobs`` Rule 1, Rule 1); its size."""
        sizes, error = self.put_many([(sha, data)])
        if error is not None:
            raise error
        return sizes[0]

    def put_many(self, items: list[tuple[str, bytes]]) -> tuple[list[int], BlobError | None]:
        """Store whole small blobs in one step (``blobs`` Rule 1, Rule 1): ``write_many`` then
        ``commit_many``. The sizes of those stored, in order, up to the first that
        failed, and that failure (or None)."""
        written, sizes, error = self.write_many(items)
        self.commit_many(written)
        return sizes, error

    def write_many(self, items: list[tuple[str, bytes]]) -> tuple[list[tuple[str, str]], list[int], BlobError | None]:
        """Whole small blobs, each checked (``blobs`` Rule 1) and written to a temp file of its
        own in this thread's temp directory, not yet durable and not yet a blob:
        ``(sha, temp file)`` for ``commit_many``, the sizes, in order, up to the first
        that failed, and that failure (or None)."""
        good: list[tuple[str, bytes]] = []
        error: BlobError | None = None
        for sha, data in items:
            check_name(sha)
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

    def part(self, sha: str, size: int, offset: int = 0) -> BlobPart:
        """A blob of ``size`` bytes received piece by piece (``blobs`` Rules 1, 3; Rule 1): a temp file
        in this thread's temp directory, hashed as written; ``finish()`` checks it and
        gives ``(sha, temp file)`` for ``commit_many``, ``abort()`` removes it, ``keep()``
        keeps it to resume from (Rule 9). From ``offset``: a resumed upload (Rule 9)."""
        return BlobPart(self, sha, size, offset)

    def discard(self, written: list[tuple[str, str]]) -> None:
        """Temp files from ``write_many`` or ``part``, removed rather than committed."""
        for sha, tmp in written:
            remove_temp(tmp)
            self._withdraw(sha, tmp)

    def offer(self, written: list[tuple[str, str]] | list[tuple[str, Slot]]) -> None:
        """Verified temp files from ``write_many`` or ``part`` (or slots of a
        ``BundlePack``), readable by their blob's name until ``commit_many`` or
        ``discard`` (Rule 2)."""
        self._offered.update(written)

    def bundle(self) -> BundlePack:
        """A new pack for the blobs of one bundle upload (Rule 5)."""
        return BundlePack(self)

    def _hold(self, kept: list[tuple[str, Slot]]) -> None:
        """Rule 5: blobs of a committed pack, stored now (one held already stays where it is)."""
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
        (Rule 1). If that fails they are removed."""
        try:
            self._group.sync_paths([tmp for _, tmp in written])
        except BaseException:
            self.discard(written)
            raise
        prefixes = set()
        offered, loose = self._offered, self._loose
        for sha, tmp in written:
            os.replace(tmp, f"{self._root}/{sha[:2]}/{sha}")  # the directories exist since the start
            loose.add(sha)  # Rule 8
            prefixes.add(sha[:2])
            if offered and sha in offered:
                self._withdraw(sha, tmp)  # after the rename: a reader missing both names cannot be (Rule 2)
        self._renamed_into(*(self._dirs[prefix] for prefix in prefixes))
        if len(written) >= SYNCFS_MIN:
            self._group.soon()  # the renames written back now, before the release asks (durable Rule 9)

    def sync(self, hashes: Iterable[str]) -> None:
        """Make the blobs' directory entries durable (Rule 1). Nothing to do, and no
        name looked at, when no directory was renamed into since the last sync (a
        release after its bundle's own sync: checking 1,065 names took 0.7 ms)."""
        if not self._dirty:
            return
        dirs = self._dirs  # the directories' Paths, made once (256 made here took about 1 ms)
        wanted = set()
        packed = self._packed  # durable since their pack's commit (Rule 5)
        for prefix, sha in {sha[:2]: sha for sha in hashes if sha not in packed}.items():
            directory = dirs.get(prefix)
            if directory is None:
                check_name(sha)  # not a blob name: raises
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
        ``syncfs`` begun from now on ended, or ``sync`` flushed them (Rule 1)."""
        ticket = self._group.ticket()
        with self._dirty_lock:
            for directory in directories:
                self._dirty[directory] = max(ticket, self._dirty.get(directory, 0))


def _checked(hashes: Iterable[str]) -> list[str]:
    """``hashes`` as a list, each a blob name (else ``ValueError``): BLAKE3 names all at
    once (``digest`` Rule 6; a first push asks about its 1,065 blobs 4 times or more)."""
    names = list(hashes)
    if not all_blake3_names(names):
        for sha in names:
            check_name(sha)
    return names


def _sync_dirs(dirs: list[Path]) -> None:
    """Make these directories' entries durable, all at once (``durable.sync_many``)."""
    for start in range(0, len(dirs), 256):
        fds = [os.open(directory, os.O_RDONLY) for directory in dirs[start:start + 256]]
        try:
            sync_many(fds)
        finally:
            for fd in fds:
                os.close(fd)
