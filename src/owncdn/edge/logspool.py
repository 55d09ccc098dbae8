"""A spool of access-log lines on disk: numbered segment files, oldest shipped first.

    <spool>/<ms since epoch, 13 digits>-<seq, 6 digits>.jsonl

Rules:
1. `append(data)` writes a batch of whole lines to the open segment and fsyncs it
   before returning, so a batch that was appended survives `kill -9` and a crash of
   the machine. A new segment's directory entry is fsynced once.
2. The open segment is sealed by `seal()` (the shipper does that just before it
   sends) or when it reaches `segment_bytes`. Only sealed segments are read and
   removed; segments found at start are sealed (an edge restarting after a crash
   ships what the last run spooled).
3. A segment is removed only when its destination acknowledged it (`remove`). Names
   are unique across restarts (start time in ms, then a counter), so a destination
   that names its objects after them (S3) overwrites, never duplicates, on a resend.
4. Bounded: when a batch would take the spool past `max_bytes`, the oldest sealed
   segments are dropped first, then the open one; each drop is counted
   (`dropped_segments`, `dropped_lines`) and warned about on stderr. Serving never
   waits for a sink, so this is where back-pressure ends (docs/logs.md).
5. `read` returns whole lines only: a torn last line (a crash mid-write of an
   earlier version, or a full disk) is cut off and counted in `torn_lines`.
6. What this process appends is also kept in memory (at most one segment's worth
   while it is open) and handed to `read` from there, so a segment sent at once is
   never read back from disk; `forget` drops those copies (the shipper does when a
   send fails), so a spool waiting for its destination holds its lines on disk only.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SEGMENT_BYTES = 4 << 20


@dataclass
class Segment:
    path: Path
    size: int
    lines: int
    data: bytes | None = None  # Rule 6: the bytes written by this process, until sent or forgotten

    @property
    def name(self) -> str:
        return self.path.stem


class LogSpool:
    def __init__(self, root: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.sealed: list[Segment] = []
        for path in sorted(self.root.glob("*.jsonl")):  # Rule 2: left by an earlier run
            data = path.read_bytes()
            self.sealed.append(Segment(path, len(data), data.count(b"\n")))
        self.current: Segment | None = None
        self._chunks: list[bytes] | None = []  # Rule 6: what the open segment holds
        self._fd = -1
        # Rule 3: later than every segment already here, even within the same millisecond
        newest = max((int(seg.name.split("-")[0]) for seg in self.sealed if seg.name.split("-")[0].isdigit()), default=0)
        self._epoch = max(int(time.time() * 1000), newest + 1)
        self._seq = 0
        self.dropped_segments = 0
        self.dropped_lines = 0
        self.torn_lines = 0
        self.appended_lines = 0

    def __repr__(self) -> str:
        return (f"<LogSpool {self.root} sealed={len(self.sealed)} bytes={self.bytes}"
                f" dropped={self.dropped_lines}>")

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self.sealed) + (self.current.size if self.current else 0)

    @property
    def lines(self) -> int:
        return sum(s.lines for s in self.sealed) + (self.current.lines if self.current else 0)

    def append(self, data: bytes, lines: int | None = None) -> None:
        """Write whole lines and fsync them (Rule 1); ``lines``: how many, when the
        caller knows (else they are counted)."""
        if not data:
            return
        self._make_room(len(data))
        if self.current is None:
            self._open()
        chunks, self._chunks = self._chunks, None  # Rule 6: no copy of a segment a write failed in
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fdatasync(self._fd)
        if chunks is not None:
            chunks.append(data)
            self._chunks = chunks
        if lines is None:
            lines = data.count(b"\n")
        self.current.size += len(data)
        self.current.lines += lines
        self.appended_lines += lines
        if self.current.size >= self.segment_bytes:
            self.seal()

    def seal(self) -> None:
        """Close the open segment, if it holds anything, for shipping (Rule 2)."""
        if self.current is None:
            return
        os.close(self._fd)
        self._fd = -1
        self.current.data = b"".join(self._chunks) if self._chunks is not None else None  # Rule 6
        self._chunks = []
        self.sealed.append(self.current)
        self.current = None

    def forget(self) -> None:
        """Drop the in-memory copies of sealed segments (Rule 6): the destination is
        away, so they may wait long; they are read from disk when their turn comes."""
        for segment in self.sealed:
            segment.data = None

    def oldest(self) -> Segment | None:
        return self.sealed[0] if self.sealed else None

    def read(self, segment: Segment) -> bytes:
        """The segment's whole lines (Rule 5), from memory when this process wrote them (Rule 6)."""
        if segment.data is not None:
            return segment.data
        data = segment.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.torn_lines += 1
            _warn(f"{segment.path}: cut off a torn last line ({len(data) - end} bytes)")
        return data[:end]

    def remove(self, segment: Segment) -> None:
        """The destination has it (Rule 3)."""
        try:
            self.sealed.remove(segment)
        except ValueError:
            return  # dropped meanwhile (Rule 4)
        segment.data = None
        segment.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.current is not None:
            self.sealed.append(self.current)
            self.current = None
        self._chunks = []

    # -- inside ----------------------------------------------------------------------
    def _open(self) -> None:
        self._seq += 1
        path = self.root / f"{self._epoch:013d}-{self._seq:06d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        self.current = Segment(path, 0, 0)
        self._chunks = []
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _make_room(self, size: int) -> None:
        """Rule 4: drop the oldest segments until `size` more bytes fit."""
        while self.bytes + size > self.max_bytes:
            if self.sealed:
                victim = self.sealed.pop(0)
            elif self.current is not None:
                self.seal()
                victim = self.sealed.pop(0)
            else:
                return  # one batch larger than the spool: kept, the next batch drops it
            victim.data = None
            victim.path.unlink(missing_ok=True)
            self.dropped_segments += 1
            self.dropped_lines += victim.lines
            _warn(f"log spool {self.root} is full ({self.max_bytes} bytes): dropped {victim.lines} lines"
                  f" of {victim.name} ({self.dropped_lines} dropped so far)")


def _warn(message: str) -> None:
    print(f"owncdn edge: {message}", file=sys.stderr, flush=True)
