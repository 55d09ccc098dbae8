"""Bundles: many blobs in one HTTP body, so small files do not cost a request each.

A bundle is the records of its blobs, one after another:

    <blob name> SP <size in decimal> LF <size bytes>

(a blob name is 64 lowercase hex digits, then ``-b3`` for BLAKE3: ``digest.py``).

Rules:
1. Nothing comes between records; a bundle may be empty. A header is at most
   ``MAX_HEADER`` bytes including the LF; a size has no sign, no leading zeros (but
   ``0``) and at most 19 digits.
2. ``BundleReader`` is sans-IO: ``feed(data)`` returns the events the bytes complete
   (``BlobStart(sha256, size)``, ``BlobData(bytes)``, ``BlobEnd(sha256)``), in order;
   a blob's data may arrive in any number of pieces. ``end()`` says whether the
   bundle ended cleanly; ``close()`` raises if it stopped inside a record.
   With ``BundleReader(views=True)`` a ``BlobData`` holds a read-only ``memoryview``
   of the bytes fed instead of a copy (the control plane and the edges, which feed
   immutable ``bytes`` and join or write the pieces once: one copy of every blob
   less).
3. A malformed header raises ``BundleError`` naming the offset; nothing after it is
   read. The reader never checks hashes: the blob store does (``owncdn.control.blobs``),
   as it does for single uploads.
4. ``re`` is imported by the first reader that reads a header: `owncdn push` writes
   bundles (``header``) and starts without it (with ``enum``, about 4 ms).
5. ``prepare()`` loads what reading the first bundle would: the header's pattern and
   the BLAKE3 module (about 1 ms each), for a server to call once it is up (``owncdn
   control``, ``owncdn edge``) rather than when a push's first bundle comes to it and
   to 3 edges at once.
"""

from __future__ import annotations

__all__ = ["MAX_HEADER", "BlobData", "BlobEnd", "BlobStart", "BundleError", "BundleReader", "header", "prepare"]

MAX_HEADER = 88  # 64 + 3 + 1 + 19 + 1
_HEADER = None  # the header's pattern, compiled on first use (Rule 4)


def _header_pattern():
    global _HEADER
    if _HEADER is None:
        import re

        _HEADER = re.compile(rb"([0-9a-f]{64}(?:-b3)?) (0|[1-9][0-9]{0,18})\n")
    return _HEADER


class BundleError(ValueError):
    """A bundle that does not follow the format."""


class _Event:
    """A reader event: a value compared by its fields (plain classes, not dataclasses:
    `owncdn push` starts faster without importing ``dataclasses``)."""

    __slots__ = ()

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.__class__.__name__, self._fields()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__name__}({inner})"


class BlobStart(_Event):
    __slots__ = ("sha256", "size")

    def __init__(self, sha256: str, size: int) -> None:
        self.sha256, self.size = sha256, size


class BlobData(_Event):
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class BlobEnd(_Event):
    __slots__ = ("sha256",)

    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256


def header(sha256: str, size: int) -> bytes:
    """The header of one record."""
    return f"{sha256} {size}\n".encode("ascii")


class BundleReader:
    """Rule 2: bytes in, events out."""

    def __init__(self, views: bool = False) -> None:
        self.views = views
        self._head = bytearray()
        self._sha: str | None = None
        self._left = 0
        self.offset = 0  # bytes consumed so far

    def __repr__(self) -> str:
        inside = f"in {self._sha[:12]} ({self._left} left)" if self._sha else "between records"
        return f"<BundleReader {inside} at {self.offset}>"

    def feed(self, data: bytes) -> list[BlobStart | BlobData | BlobEnd]:
        events: list[BlobStart | BlobData | BlobEnd] = []
        view = memoryview(data).toreadonly()
        while view:
            if self._sha is None:
                view = self._read_header(view, events)
            else:
                take = min(self._left, len(view))
                events.append(BlobData(view[:take] if self.views else bytes(view[:take])))
                view = view[take:]
                self._left -= take
                self.offset += take
                self._finish(events)
        return events

    def end(self) -> bool:
        """True when the bytes so far are whole records (Rule 2)."""
        return self._sha is None and not self._head

    def close(self) -> None:
        if not self.end():
            raise BundleError(f"the bundle ends inside a record at byte {self.offset}")

    def _read_header(self, view: memoryview, events: list) -> memoryview:
        room = MAX_HEADER - len(self._head)
        chunk = bytes(view[:room])
        newline = chunk.find(b"\n")
        if newline < 0:
            if len(chunk) >= room:
                raise BundleError(f"no record header at byte {self.offset}: expected '<blob name> <size>\\n' "
                                  f"within {MAX_HEADER} bytes")
            self._head += chunk
            return view[len(view):]
        self._head += chunk[:newline + 1]
        match = (_HEADER or _header_pattern()).fullmatch(bytes(self._head))
        if match is None:
            raise BundleError(f"bad record header at byte {self.offset}: expected '<blob name> <size>\\n', "
                              f"got {bytes(self._head[:MAX_HEADER])!r}")
        self.offset += len(self._head)
        self._head.clear()
        self._sha, self._left = match.group(1).decode(), int(match.group(2))
        events.append(BlobStart(self._sha, self._left))
        self._finish(events)
        return view[newline + 1:]

    def _finish(self, events: list) -> None:
        if self._sha is not None and self._left == 0:
            events.append(BlobEnd(self._sha))
            self._sha = None


def prepare() -> None:
    """Rule 5."""
    from .digest import new_hasher

    _header_pattern()
    new_hasher()
