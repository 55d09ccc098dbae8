"""Large stored bodies, kept outside the Python heap.

A body of `FILE_THRESHOLD` bytes or more is written chunk by chunk into an anonymous
memory file (memfd) instead of being joined into one bytes object: no second copy
while storing, and responses and ranges are memoryviews of its mapping, written to the
socket without copying in Python. The file closes when the last object or response
that uses it is gone.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable

FILE_THRESHOLD = 64 * 1024


class BodyFile:
    """A body in a memory file; `base` is where the body starts in `fd` (0 here)."""

    __slots__ = ("fd", "size", "view", "_map", "__weakref__")
    base = 0
    on_disk = False

    def __init__(self, chunks: Iterable[bytes], size: int) -> None:
        self.fd = os.memfd_create("owncdn-object", os.MFD_CLOEXEC)
        self.size = size
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self.fd, view):]
            self._map = mmap.mmap(self.fd, size, prot=mmap.PROT_READ) if size else None
        except BaseException:
            os.close(self.fd)
            raise
        self.view = memoryview(self._map) if self._map is not None else memoryview(b"")

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: slice) -> memoryview:
        return self.view[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bytes, bytearray, memoryview)):
            return self.view == other
        return self is other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<BodyFile fd={self.fd} size={self.size}>"

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except (OSError, AttributeError):
            pass


class DiskBody(BodyFile):
    """A body inside a file (a disk-tier object file, a blob pack): bytes [base, base +
    size) of `fd`, mapped read-only from the page they start in; sent with sendfile.
    Owns `fd` (closed with the last reference)."""

    __slots__ = ("base",)
    on_disk = True

    def __init__(self, fd: int, base: int, size: int) -> None:  # noqa: super().__init__ not wanted
        self.fd = fd
        self.base = base
        self.size = size
        skip = base % mmap.ALLOCATIONGRANULARITY  # mapped from the page the body starts in
        try:
            self._map = mmap.mmap(fd, skip + size, prot=mmap.PROT_READ, offset=base - skip) if size else None
        except BaseException:
            os.close(fd)
            raise
        self.view = memoryview(self._map)[skip:skip + size] if self._map is not None else memoryview(b"")

    def __repr__(self) -> str:
        return f"<DiskBody fd={self.fd} base={self.base} size={self.size}>"


class FileSlice:
    """Bytes [offset, offset + count) of a BodyFile, as something to send."""

    __slots__ = ("file", "offset", "count")

    def __init__(self, file: BodyFile, offset: int, count: int) -> None:
        self.file = file
        self.offset = offset
        self.count = count

    def __len__(self) -> int:
        return self.count


def make_body(chunks: list[bytes], size: int) -> bytes | BodyFile:
    """Small bodies as one bytes object, large ones in a memory file."""
    if size >= FILE_THRESHOLD:
        return BodyFile(chunks, size)
    return b"".join(chunks)


def whole(body: bytes | BodyFile) -> bytes | FileSlice:
    return FileSlice(body, 0, body.size) if isinstance(body, BodyFile) else body


def part(body: bytes | BodyFile, start: int, stop: int) -> memoryview | FileSlice:
    if isinstance(body, BodyFile):
        return FileSlice(body, start, stop - start)
    return memoryview(body)[start:stop]
