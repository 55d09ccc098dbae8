"""Reading a body in chunked transfer coding (RFC 9112 §7.1), sans-IO and without copies.

    decoder = ChunkedDecoder()
    pieces, used = decoder.feed(view)   # views of the data in ``view``; bytes of it consumed
    decoder.done                        # the last chunk and the trailer section were read

Rules:
1. ``feed`` takes a ``memoryview`` (or bytes) and returns the chunk data it holds as
   slices of it, in order, never copies: a caller that reuses its receive buffer must
   use them before it reads into the buffer again. A chunk, its size line and its CRLF
   may be split anywhere between two calls.
2. A size is hexadecimal digits (at most ``MAX_SIZE_DIGITS``), optionally followed by
   ``;`` extensions, which are ignored; a size line or a trailer line longer than
   ``MAX_LINE`` bytes, a bad size or chunk data not followed by CRLF raises
   ``ChunkedError``. Trailer fields are read and ignored.
3. Once ``done``, ``feed`` consumes nothing more: ``used`` tells where the body ended
   (bytes after it are not part of this message).
"""

from __future__ import annotations

__all__ = ["MAX_LINE", "ChunkedDecoder", "ChunkedError"]

MAX_LINE = 4096
MAX_SIZE_DIGITS = 15
_HEX = frozenset(b"0123456789abcdefABCDEF")

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedError(ValueError):
    """A body that does not follow the chunked coding."""


class ChunkedDecoder:
    """Rules 1-3."""

    __slots__ = ("_state", "_left", "_line")

    def __init__(self) -> None:
        self._state = _SIZE
        self._left = 0  # data bytes left in the current chunk
        self._line = bytearray()  # a line split between two feeds

    def __repr__(self) -> str:
        names = ("size line", "data", "data CRLF", "trailer", "done")
        return f"<ChunkedDecoder {names[self._state]} left={self._left}>"

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data) -> tuple[list[memoryview], int]:
        view = data if isinstance(data, memoryview) else memoryview(data)
        pieces: list[memoryview] = []
        at, end = 0, len(view)
        while at < end and self._state != _DONE:
            if self._state == _DATA:
                take = min(self._left, end - at)
                pieces.append(view[at:at + take])
                at += take
                self._left -= take
                if not self._left:
                    self._state = _DATA_END
                continue
            line, at = self._read_line(view, at, end)
            if line is None:
                break
            self._on_line(line)
        return pieces, at

    def _read_line(self, view: memoryview, at: int, end: int) -> tuple[bytes | None, int]:
        """A whole line (without its LF) once its LF arrived, and the position after it."""
        room = MAX_LINE + 1 - len(self._line)
        chunk = bytes(view[at:min(end, at + room)])
        newline = chunk.find(b"\n")
        if newline < 0:
            if len(chunk) >= room:
                raise ChunkedError(f"a line of the chunked body is longer than {MAX_LINE} bytes")
            self._line += chunk
            return None, end
        line = bytes(self._line) + chunk[:newline] if self._line else chunk[:newline]
        self._line.clear()
        return line, at + newline + 1

    def _on_line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if self._state == _DATA_END:
            if line:
                raise ChunkedError("chunk data is not followed by CRLF")
            self._state = _SIZE
        elif self._state == _SIZE:
            digits = line.split(b";", 1)[0].strip(b" \t")
            if not digits or len(digits) > MAX_SIZE_DIGITS or not _HEX.issuperset(digits):
                raise ChunkedError(f"bad chunk size line {line[:40]!r}")
            self._left = int(digits, 16)
            self._state = _DATA if self._left else _TRAILER
        elif not line:  # _TRAILER: the empty line ends the message
            self._state = _DONE
