"""How a directory blob store is read (``dirblobs.py`` Rules 2, 5, 6): a mixin of
``DirBlobStore``, split off for size.

``open_blob`` and ``open_run`` give descriptors for ``sendfile`` downloads
(``api/sendfile.py``), ``in_pack_order`` the order a download goes in, ``read_into``
and ``read`` the bytes. A blob is found where the store keeps it: offered (a temp file,
or a slot of a pack being written), packed, or as a loose file. The store's docstring
holds the rules; these methods use its ``_offered``, ``_packed`` and ``_root``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

from owncdn.control.blobs import CHUNK, BlobError, BlobNotFound, check_name
from owncdn.core.content.bundle import header
from owncdn.packs import Packs, Slot

__all__ = ["DirReads"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_LAST = 1 << 62  # in_pack_order: after every pack number


class DirReads:
    """Reads of a ``DirBlobStore`` (its ``_offered``, ``_packed`` and ``_root``)."""

    _offered: dict[str, str | Slot]
    _packed: dict[str, Slot]
    _root: str

    def open_blob(self, sha: str) -> tuple[int, int, int | None]:
        """``(fd, base, size)``: a read-only descriptor holding the blob from offset
        ``base``, for the caller to close, and its size (None: the file's length; a
        loose blob or a temp file) (``sendfile`` downloads, ``api/sendfile.py``);
        ``BlobNotFound`` when there is none (``dirblobs`` Rule 2: an offered blob from
        its temp file or pack; Rule 5: a packed blob from its pack, again from its new
        one when a compaction moved it meanwhile)."""
        return self._open(sha)[:3]

    def _open(self, sha: str) -> tuple[int, int, int | None, str | Slot | None]:
        """``open_blob``'s answer and where it opened the blob: a temp file, a slot, or
        None (a loose blob)."""
        check_name(sha)
        offered = self._offered.get(sha)
        if offered is not None:
            try:
                return (*_open_at(offered), offered)
            except FileNotFoundError:
                pass  # stored (or removed) meanwhile
        for _ in range(3):
            slot = self._packed.get(sha)
            if slot is None:
                break
            try:
                return (*_open_at(slot), slot)
            except FileNotFoundError:
                continue  # compacted meanwhile
        try:
            return os.open(f"{self._root}/{sha[:2]}/{sha}", os.O_RDONLY | _CLOEXEC), 0, None, None
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {sha}") from None

    def open_run(self, parts: list[tuple[bytes, str, int, int]], i: int) -> tuple[int, int, int, int]:
        """``(fd, at, count, n)``: the blob of ``parts[i]`` opened (``open_blob``, the
        caller closes ``fd``), and the ``count`` bytes from ``at`` to send for it and
        the ``n - 1`` parts after it that lie right behind it in its headed pack
        (``dirblobs`` Rule 6). A part is ``(header, name, offset, count)``."""
        head, sha, offset, count = parts[i]
        fd, base, _, where = self._open(sha)
        n = 1
        if isinstance(where, Slot) and where.pack.headed and offset == 0 and count == where.size:
            pack, end = where.pack, where.offset + count
            for head, sha, offset, count in itertools.islice(parts, i + 1, None):
                slot = self._slot(sha)
                if (slot.__class__ is not Slot or slot.pack is not pack or offset or count != slot.size
                        or slot.offset != end + len(head) or head != header(sha, count)):
                    break
                end = slot.offset + count
                n += 1
            count = end - where.offset
        return fd, base + offset, count, n

    def in_pack_order(self, items: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """``(name, size)`` items sorted as their blobs lie in the packs (``dirblobs``
        Rule 6)."""

        def place(item: tuple[str, int]) -> tuple[int, int]:
            slot = self._slot(item[0])
            return (slot.pack.number, slot.offset) if slot.__class__ is Slot else (_LAST, 0)

        return sorted(items, key=place)

    def _slot(self, sha: str) -> str | Slot | None:
        """Where ``open_blob`` would look first, without opening anything: the offered
        temp file or slot, else the packed slot (None: neither)."""
        return self._offered.get(sha) or self._packed.get(sha)

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
