"""The blobs an edge holds for its pushed releases, on disk: loose files and packs.

Layout under the release store (``<state>/push``; ``releases.py`` keeps its releases
next to them):

    packs/<n>.pack, <n>.idx   the blobs one bundle brought, back to back, and the
                              index of those verified (``owncdn/packs.py``)
    blobs/ab/abcdef...-b3     one file per blob that came otherwise (a single GET, a
                              release event, ``put_blob``), or fetched by an older
                              edge, named by a digest of its bytes: BLAKE3
                              (``-b3``), or SHA-256 for blobs pushed before BLAKE3
                              (no suffix; ``core/content/digest.py``)
    partial/<sha>.part        a blob being fetched (kept across restarts for resuming)
    partial/<sha>.<n>.part    a blob being written whole (renamed into place once
                              verified; one left by a crash is removed at start)

A ``BlobHold`` knows which blobs are held and where, not which releases name them:
the release store (``releases.py``) is a ``BlobHold`` and says which blobs to keep
(its rule 4) and which to hash again after a reboot (its rule 6).

Rules:
1. A blob is held (``held``: name -> ``None`` for a file under ``blobs/``, or its
   ``packs.Slot``) only complete and verified: a blob's name is its content. A loose
   file is written as ``partial/<sha>.part`` and renamed into place; a packed blob's
   bytes are in its pack before its index record is (``packs.py`` rule 1). Either is
   fsynced first, and the directories renamed into before a switch (``sync_dirs``),
   only where the store cannot flush in the background (``boot`` None: no boot id,
   not Linux; ``releases.py`` rule 6). A blob is read wherever it is with
   ``read_blob`` / ``open_blob`` (a descriptor and the offset of the blob in it).
2. At start ``held`` is rebuilt from the names under ``blobs/`` and the pack indexes
   (``packs.py`` rule 3; a blob found in both is held loose), without reading blob
   bytes; a bundle cut off midway, or a process killed during one, thus keeps the
   blobs whose records were written.
3. ``collect(keep)`` drops the blobs and partial files not in ``keep``. The blobs are
   known without listing ``blobs/`` (``held``: read at start, kept up to date since),
   so a collection lists only ``partial/``. A loose blob is deleted; a packed one
   leaves its pack's live set, a pack with no live blob is deleted with its index, and
   one whose live bytes are under half of its length is compacted: its live blobs
   copied into a new pack, made durable with its records (always: a release marked
   flushed, ``releases.py`` rule 6, may name them), ``held`` pointed there, then the
   old pack deleted. Bodies open on a deleted pack stay readable (``releases.py``
   rule 5).
4. ``reverify(trusted, check)`` (at start in another boot, ``releases.py`` rule 6):
   every held blob in ``check`` and not in ``trusted`` is hashed again (with the hash
   its name says; a packed one read from its pack) and dropped unless it matches;
   every other blob not in ``trusted``, and every partial file, is dropped (packs left
   with no live blob are deleted).
5. ``held`` shrinks only where a blob is dropped (Rules 3 and 4), and every drop is
   counted and its name logged (``drops``, ``dropped_since``; the last ``DROP_LOG``
   names at least), so a caller that knew which blobs were not held at some count
   knows which may not be held now: those, and the ones dropped since
   (``releases.py`` rule 9).
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from pathlib import Path

from owncdn.core.content.digest import NEW, digest, hasher, is_blob_name, name_of
from owncdn.durable import fsync_dir, sync_many
from owncdn.packs import Packs, PackWriter, Slot

__all__ = ["BlobHold"]

_PART_IDS = itertools.count(1)  # one name per written partial file, whatever thread writes it
VERIFY_CHUNK = 1 << 20
DROP_LOG = 1 << 16  # Rule 5: names of dropped blobs kept at least (twice that at most)


class BlobHold:
    """The blobs held under ``root`` and where each is (Rules 1-4). ``boot``: the
    machine's boot id where blobs are flushed in the background, None where each is
    fsynced first."""

    def __init__(self, root: Path, boot: str | None) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.partial = self.root / "partial"
        self._partial_dir = str(self.partial)
        for d in (self.blobs, self.partial):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in self.partial.glob("*.*.part"):  # a writer's <sha>.<n>.part cut off by a crash:
            leftover.unlink(missing_ok=True)           # never resumed (its blob comes again whole)
        self.boot = boot  # releases.py rule 6: the machine's boot id; None: fsync everything (Rule 1)
        self.packs = Packs(self.root / "packs")
        self.held: dict[str, Slot | None] = self._scan_blobs()  # Rule 1: what has_blob answers from
        for sha, slot in self.packs.load().items():  # Rule 2
            if sha in self.held:
                Packs.forget(sha, slot)  # a loose copy is there already
            else:
                self.held[sha] = slot
        self.unsynced_dirs: set[Path] = set()  # blob directories with renames not yet fsynced
        self.made_dirs: set[Path] = set()  # blob directories known to exist (collect() never removes them)
        self._make_blob_dirs()
        self.fetched_bytes = 0  # blob bytes received from the control plane (releasesync.py)
        self.fetched_blobs = 0
        self._counting = threading.Lock()  # fetches count from the loop and from bundle threads
        self.reverified = 0  # blobs hashed again at start after the machine rebooted (Rule 4)
        self._dropped: list[str] = []  # Rule 5: the names of the last blobs dropped, oldest first
        self._dropped_before = 0  # blobs dropped before the first of _dropped
        self._dropping = threading.Lock()  # drops happen in collect()'s thread, reads on the loop

    def __repr__(self) -> str:
        return f"<BlobHold {self.root} held={len(self.held)}>"

    @property
    def lazy(self) -> bool:
        """Blobs are flushed in the background (``releases.py`` rule 6), not fsynced
        before a switch (Rule 1)."""
        return self.boot is not None

    # -- blobs (Rule 1) ----------------------------------------------------------------
    def blob_path(self, sha: str) -> Path:
        return self.blobs / sha[:2] / sha

    def part_path(self, sha: str) -> Path:
        return self.partial / f"{sha}.part"

    def part_name(self, sha: str) -> str:
        """A new partial file's name for a blob written whole or from a bundle,
        ``partial/<sha>.<n>.part``, never resumed (one left by a crash is removed at start)."""
        return f"{self._partial_dir}/{sha}.{next(_PART_IDS)}.part"

    def _make_blob_dirs(self) -> None:
        """The 256 ``blobs/ab`` directories, made at start rather than while a release is
        fetched (a new directory costs an inode allocation, which a file system busy
        freeing inodes makes slow)."""
        have = {entry.name for entry in os.scandir(self.blobs) if entry.is_dir()}
        made = False
        for i in range(256):
            name = f"{i:02x}"
            if name not in have:
                (self.blobs / name).mkdir(exist_ok=True)
                made = True
            self.made_dirs.add(self.blobs / name)
        if made:
            fsync_dir(self.blobs)

    def _scan_blobs(self) -> dict[str, Slot | None]:
        held: dict[str, Slot | None] = {}
        for sub in os.scandir(self.blobs):
            if sub.is_dir():
                held.update((entry.name, None) for entry in os.scandir(sub.path) if is_blob_name(entry.name))
        return held

    def count_fetched(self, blobs: int, size: int) -> None:
        """Blobs verified and bytes received (``releasesync.py``; any thread)."""
        with self._counting:
            self.fetched_blobs += blobs
            self.fetched_bytes += size

    def has_blob(self, sha: str) -> bool:
        return sha in self.held

    def keep_part(self, sha: str) -> Path:
        """A verified partial file: fsynced (unless ``lazy``), then moved into place
        (Rule 1)."""
        if not self.lazy:
            fd = os.open(self.part_path(sha), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return self.adopt_part(sha)

    def adopt_part(self, sha: str, part: Path | None = None) -> Path:
        """Move a verified and fsynced partial file into place."""
        dest = self.blob_path(sha)
        if dest.parent not in self.made_dirs:
            dest.parent.mkdir(exist_ok=True)
            self.made_dirs.add(dest.parent)
        os.replace(part or self.part_path(sha), dest)
        self.unsynced_dirs.add(dest.parent)
        self.held[sha] = None
        return dest

    # -- packs (Rule 1; bundlefetch.py) ---------------------------------------------------
    def pack_writer(self) -> PackWriter:
        """A new pack for the blobs of one bundle (``packs.py``; any thread)."""
        return self.packs.writer(durable=not self.lazy)

    def keep_packed(self, writer: PackWriter, sha: str) -> None:
        """The blob just written by ``writer`` is verified: held at once where
        ``lazy``, else when the writer is committed (``end_pack``)."""
        slot = writer.keep(sha)
        if slot is not None:
            self.held[sha] = slot

    def keep_packed_all(self, writer: PackWriter, ended: list[tuple[str, Slot]]) -> None:
        """``keep_packed`` for blobs written and verified one after another, each with
        the slot ``writer.ended()`` gave at its end (``packs`` Rule 8: one flush, one
        index write)."""
        writer.keep_all(ended)
        if not writer.durable:
            for sha, slot in ended:
                self.held[sha] = slot

    def end_pack(self, writer: PackWriter) -> list[str]:
        """The bundle ended, however it ended: unless ``lazy``, its verified
        blobs are made durable and held now (``PackWriter.commit``); the writer is
        closed either way (a pack with no blob is deleted). The blobs held now; OSError
        (none held) when the commit failed."""
        try:
            kept = writer.commit() if writer.durable else []
            for sha, slot in kept:
                self.held[sha] = slot
            return [sha for sha, _ in kept]
        finally:
            writer.close()

    def read_blob(self, sha: str) -> bytes:
        """A held blob's bytes, wherever it is (OSError if it is not held)."""
        for _ in range(2):
            slot = self._where(sha)
            try:
                if slot is None:
                    with open(self.blob_path(sha), "rb") as f:
                        return f.read()
                return Packs.read(slot)
            except FileNotFoundError:
                if self.held.get(sha, False) is slot:  # not moved by a compaction meanwhile
                    raise
        raise FileNotFoundError(errno.ENOENT, "the blob moved twice while read", sha)

    def open_blob(self, sha: str) -> tuple[int, int]:
        """A new read-only descriptor holding the blob, and the offset of its bytes in
        it (0 for a loose file); the caller closes it."""
        for _ in range(2):
            slot = self._where(sha)
            try:
                if slot is None:
                    return os.open(self.blob_path(sha), os.O_RDONLY | os.O_CLOEXEC), 0
                return Packs.open(slot), slot.offset
            except FileNotFoundError:
                if self.held.get(sha, False) is slot:
                    raise
        raise FileNotFoundError(errno.ENOENT, "the blob moved twice while opened", sha)

    def _where(self, sha: str) -> Slot | None:
        try:
            return self.held[sha]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "the blob is not held here", sha) from None

    def keep_inline(self, sha: str, size: int, data: bytes) -> bool:
        """A blob that came inside a release event (``releasesync.py`` Rule 8), kept as a
        fetched one is (Rule 1): only if it has ``size`` bytes and hashes to ``sha``,
        written as a partial file (fsynced unless ``lazy``), then named. False, and
        nothing kept, when it does not match."""
        if len(data) != size or not _names(sha, data):
            return False
        if not self.has_blob(sha):
            self._write_blob(sha, data)
        return True

    def put_blob(self, data: bytes, algo: str = NEW) -> str:
        """Store bytes as a blob named with ``algo`` (tests, and tools that install
        releases directly); its name."""
        sha = digest(data, algo)
        if not self.has_blob(sha):
            self._write_blob(sha, data)
        return sha

    def _write_blob(self, sha: str, data: bytes) -> None:
        """Verified bytes written as a new partial file (fsynced unless ``lazy``), then named."""
        part = self.part_name(sha)
        with open(part, "wb") as f:
            f.write(data)
            if not self.lazy:
                f.flush()
                os.fsync(f.fileno())
        self.adopt_part(sha, Path(part))

    def sync_dirs(self) -> None:
        """Make the names of new blobs durable before a release that needs them is: the
        directories renamed into and ``blobs/`` itself, all at once
        (``owncdn.durable.sync_many``); where ``lazy``, the flush does it later."""
        dirs, self.unsynced_dirs = self.unsynced_dirs, set()
        if self.lazy:
            return
        todo = [*sorted(dirs), self.blobs]
        for start in range(0, len(todo), 256):
            fds = [os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in todo[start:start + 256]]
            try:
                sync_many(fds)
            finally:
                for fd in fds:
                    os.close(fd)

    # -- garbage (Rule 3) -------------------------------------------------------------
    def collect(self, keep: set[str]) -> tuple[int, int]:
        """Drop blobs and partial files not in ``keep`` (computed on the event loop's
        thread when this runs in another), delete packs with no live blob and compact
        those mostly dead (Rule 3); (blobs and partial files dropped, their bytes)."""
        files = size = 0
        for sha in self.held.keys() - keep:  # a copy: fetches add to held meanwhile
            slot = self.held.get(sha, False)
            if slot is False:
                continue
            if slot is None:
                try:
                    n = self.blob_path(sha).stat().st_size
                except FileNotFoundError:
                    n = 0
            else:
                n = slot.size
            self._drop_blob(sha)
            files += 1
            size += n
        for path in self.partial.glob("*.part"):
            sha = path.name.removesuffix(".part").split(".")[0]  # <sha>.part, or a writer's <sha>.<n>.part
            if sha in keep and is_blob_name(sha):
                continue
            try:
                n = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            files += 1
            size += n
        _, compact = self.packs.sweep()
        if compact:
            self._compact(compact)
        return files, size

    @property
    def drops(self) -> int:
        """Rule 5: how many blobs were dropped so far."""
        with self._dropping:
            return self._dropped_before + len(self._dropped)

    def dropped_since(self, count: int) -> list[str] | None:
        """Rule 5: the names of the blobs dropped since ``drops`` was ``count`` (the
        drops of blobs not held then too), or None when the log no longer goes back
        that far."""
        with self._dropping:
            start = count - self._dropped_before
            return self._dropped[start:] if start >= 0 else None

    def _drop_blob(self, sha: str) -> None:
        """Rule 3: ``sha`` is no longer held; a loose file is deleted."""
        slot = self.held.pop(sha, None)
        with self._dropping:  # Rule 5: logged once gone (a reader counts, then looks in held)
            self._dropped.append(sha)
            if len(self._dropped) > 2 * DROP_LOG:
                del self._dropped[:DROP_LOG]
                self._dropped_before += DROP_LOG
        if slot is not None:
            Packs.forget(sha, slot)
            return
        try:
            os.unlink(self.blob_path(sha))
        except FileNotFoundError:
            pass

    def _compact(self, packs: list) -> None:
        """Rule 3: the live blobs of ``packs`` copied into one new pack, made durable
        (also where ``lazy``: a release marked flushed, ``releases.py`` rule 6, may
        name them), ``held`` pointed there, then the packs deleted (``packs`` Rule 5)."""
        self.packs.compact(packs, self._moved)

    def _moved(self, moved: list[tuple[str, Slot, Slot]]) -> list[str]:
        """``Packs.compact``'s swap: the blobs still held so pointed at their new slots."""
        held, taken = self.held, []
        for sha, old, new in moved:
            if held.get(sha) is old:
                held[sha] = new
                taken.append(sha)
        return taken

    # -- after a reboot (Rule 4) ----------------------------------------------------------
    def reverify(self, trusted: set[str], check: set[str]) -> None:
        """Rule 4: blobs in ``check`` hashed again, kept if they match; every other blob
        not in ``trusted``, and every partial file, dropped."""
        for sha in sorted(self.held.keys() - trusted):
            slot = self.held[sha]
            if sha in check:
                self.reverified += 1
                if _hashes_to(self.blob_path(sha) if slot is None else slot, sha):
                    continue
                print(f"owncdn edge: blob {sha[:12]} does not match its name after a reboot: fetching it again",
                      flush=True)
            self._drop_blob(sha)
        self.packs.sweep()
        for part in self.partial.glob("*.part"):
            part.unlink(missing_ok=True)


def _names(sha: str, data: bytes) -> bool:
    """True when ``data`` hashes to ``sha`` (with the hash its name says)."""
    try:
        h = hasher(sha)
    except ValueError:
        return False
    h.update(data)
    return name_of(h) == sha


def _hashes_to(where: Path | Slot, sha: str) -> bool:
    """True when the loose file or packed blob ``where`` hashes to ``sha``."""
    h = hasher(sha)
    try:
        if isinstance(where, Slot):
            for chunk in Packs.chunks(where, VERIFY_CHUNK):
                h.update(chunk)
        else:
            with open(where, "rb") as f:
                while chunk := f.read(VERIFY_CHUNK):
                    h.update(chunk)
    except OSError:
        return False
    return name_of(h) == sha
