"""How bytes reach a directory blob store (``dirblobs.py``): a writer per upload.

- ``DirWriter`` (``DirBlobStore.writer(sha)``, a PUT): one blob into a temp file of its
  own, fsynced and renamed into place at ``commit`` (``dirblobs`` Rule 1).
- ``BlobPart`` (``DirBlobStore.part(sha, size)``, an upload read raw): one blob piece by
  piece into a temp file in the writing thread's directory, for ``commit_many``
  (``dirblobs`` Rule 1); ``part(sha, size, offset)`` resumes a kept partial upload
  (``resume``, ``dirblobs`` Rule 9).
- ``BundlePack`` (``DirBlobStore.bundle()``, a bundle upload): the upload's
  records (header and blob) back to back in one new pack (``dirblobs`` Rules 5, 6).

``DirWriter`` and ``BlobPart`` ``keep()`` what an upload cut off brought, to resume from
(``dirblobs`` Rule 9).

Each hashes and counts what it receives (``blobs.Hashing``: ``blobs`` Rules 1, 3). They
are parts of the store, split off for size: they call its underscored methods
(``_temp_names``, ``_renamed_into``, ``_hold``, ``_withdraw``), and the store's
docstring holds their rules.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from owncdn.control.blobs import BlobMismatch, BlobTooLarge, Hashing
from owncdn.core.content.bundle import header
from owncdn.durable import start_writeback
from owncdn.packs import WRITEBACK_STEP, Slot

if TYPE_CHECKING:
    from owncdn.control.dirblobs import DirBlobStore

__all__ = ["BlobPart", "BundlePack", "DirWriter", "remove_temp", "resume"]

REHASH_CHUNK = 1 << 20  # a kept partial's bytes read back per step to hash them again
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class DirWriter(Hashing):
    """One blob into a temp file of its own, moved into place at ``commit``
    (``DirBlobStore.writer``)."""

    def __init__(self, store: DirBlobStore, sha: str) -> None:
        super().__init__(sha, store.max_bytes)
        self.store = store
        fd, name = tempfile.mkstemp(dir=store.tmp, prefix=sha[:12] + ".")
        self.file, self.tmp_path = os.fdopen(fd, "wb"), Path(name)
        self.out = self.file

    def commit(self) -> int:
        """Verify, then move into place (``dirblobs`` Rule 1); the blob's size."""
        try:
            self.verify()
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            final = self.store.path(self.sha)
            final.parent.mkdir(exist_ok=True)
            os.replace(self.tmp_path, final)  # durable once sync() ran (dirblobs Rule 1)
            self.store._loose.add(self.sha)  # dirblobs Rule 8
            self.store._renamed_into(final.parent)
        except BaseException:
            self.abort()
            raise
        return self.size

    def abort(self) -> None:
        self.file.close()
        self.tmp_path.unlink(missing_ok=True)

    def keep(self) -> None:
        """The upload was cut off: what came is kept to resume from (``dirblobs`` Rule 9)."""
        try:
            self.file.close()
        except OSError:
            self.tmp_path.unlink(missing_ok=True)
            return
        _keep(self.store, self.sha, str(self.tmp_path), self.size)


class BlobPart(Hashing):
    """One blob received piece by piece into a temp file (``DirBlobStore.part``)."""

    def __init__(self, store: DirBlobStore, sha: str, size: int, offset: int = 0) -> None:
        super().__init__(sha, store.max_bytes)
        if size > self.limit:
            raise BlobTooLarge(f"blob {sha[:12]}: {size} bytes, more than the store's limit of {self.limit} bytes")
        self.store = store
        directory, number = store._temp_names(1)
        self.tmp = f"{directory}/{sha[:12]}.{number}"
        self.fd = resume(self, store, offset, self.tmp) if offset else os.open(self.tmp, _CREATE, 0o644)
        self.written_back = 0

    def __repr__(self) -> str:
        return f"<BlobPart {self.sha[:12]} {self.size} bytes{'' if self.fd >= 0 else ' closed'}>"

    def write(self, data) -> None:
        """Hash and write ``data`` (bytes or a view); ``BlobTooLarge`` past the limit.
        The writeback of every ``WRITEBACK_STEP`` bytes is begun as they are written
        (as a pack's, ``packs`` Rule 1), so the flush of a large blob waits for its last
        bytes, not for all of them."""
        self.count(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        if self.size - self.written_back >= WRITEBACK_STEP:
            start_writeback(self.fd, self.written_back, self.size - self.written_back)
            self.written_back = self.size

    def finish(self) -> tuple[str, str]:
        """``(sha, temp file)`` once the bytes hash to ``sha``; else removed, ``BlobMismatch``."""
        os.close(self.fd)
        self.fd = -1
        try:
            self.verify()
        except BlobMismatch:
            remove_temp(self.tmp)
            raise
        return self.sha, self.tmp

    def commit(self) -> int:
        """As ``DirWriter.commit``, for a resumed upload read through ASGI: verified,
        made durable and stored; the blob's size."""
        self.store.commit_many([self.finish()])
        return self.size

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        remove_temp(self.tmp)

    def keep(self) -> None:
        """The upload was cut off: what came is kept to resume from (``dirblobs`` Rule 9)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        _keep(self.store, self.sha, self.tmp, self.size)


def _keep(store: DirBlobStore, sha: str, tmp: str, size: int) -> None:
    """A cut upload's closed temp file kept as the partial of ``sha``, unless another
    upload stored the blob meanwhile (``dirblobs`` Rule 9)."""
    if store.size(sha) is not None:
        remove_temp(tmp)
        return
    store.partials.keep(sha, tmp, size)


class BundlePack:
    """The records of one bundle upload, each blob after its header, written back to
    back into one new headed pack (``dirblobs`` Rules 5, 6, ``DirBlobStore.bundle``):
    per blob ``start(sha, size)``, ``write(data)``...,
    ``end()`` (verified: kept; else cut off again and ``BlobMismatch``), with ``flush()``
    before the data written goes stale; then
    ``offer()`` (readable before they are durable), ``commit()`` (durable and stored)
    or ``discard()``; ``close()`` in any case. One thread at a time."""

    def __init__(self, store: DirBlobStore) -> None:
        self.store = store
        self.writer = store.packs.writer(durable=True)
        self.blob: Hashing | None = None
        self.offered: list[tuple[str, Slot]] = []

    def __repr__(self) -> str:
        return f"<BundlePack {self.writer.pack!r} {len(self.writer.records)} kept{' receiving' if self.blob else ''}>"

    def start(self, sha: str, size: int) -> None:
        blob = Hashing(sha, self.store.max_bytes)
        if size > blob.limit:
            raise BlobTooLarge(f"blob {sha[:12]}: {size} bytes, more than the store's limit of {blob.limit} bytes")
        self.writer.begin(header(sha, size))
        self.blob = blob

    def reserve(self, count: int) -> None:
        """Disk space for the next ``count`` bytes of records (``packs`` Rule 7)."""
        self.writer.reserve(count)

    def write(self, data) -> None:
        """Hash ``data`` (bytes or a view) and queue it for the next ``flush()``, which
        must come before ``data`` goes stale (``packs`` Rule 8); ``BlobTooLarge`` past the limit."""
        self.blob.count(data)
        self.writer.queue(data)

    def flush(self) -> None:
        """The bytes ``write`` queued, written (one ``writev`` for many blobs)."""
        self.writer.flush()

    def end(self) -> int:
        """The blob's size once its bytes hash to its name; else it is cut off the pack
        and ``BlobMismatch`` raised."""
        blob, self.blob = self.blob, None
        try:
            blob.verify()
        except BlobMismatch:
            self.writer.cut()
            raise
        self.writer.keep(blob.sha)
        return blob.size

    def offer(self) -> None:
        """The verified blobs not offered yet, readable from the pack before ``commit``
        (``dirblobs`` Rule 2); called again as more are verified."""
        self.writer.flush()
        new = [(sha, slot) for sha, slot, _ in self.writer.records[len(self.offered):]]
        self.offered += new
        self.store.offer(new)

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


def resume(hashing: Hashing, store: DirBlobStore, offset: int, tmp: str) -> int:
    """The kept partial of ``hashing.sha`` moved to ``tmp`` and cut to ``offset`` bytes,
    which are hashed and counted again (``dirblobs`` Rule 9): a descriptor at
    ``offset``. ``PartialGone`` when there is none that long."""
    fd = store.partials.take(hashing.sha, offset, tmp)
    try:
        done = 0
        while done < offset:
            chunk = os.pread(fd, min(REHASH_CHUNK, offset - done), done)
            if not chunk:
                raise OSError(f"{tmp}: ended at byte {done} of {offset}")
            hashing.count(chunk)
            done += len(chunk)
        os.lseek(fd, offset, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        remove_temp(tmp)
        raise
    return fd


def remove_temp(path: str) -> None:
    """A temp file removed; one gone already is fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
