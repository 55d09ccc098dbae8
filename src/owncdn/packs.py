"""Blob packs: the blobs of one bundle in one file, with an index (the edges' release
stores and the control plane's directory blob store).

Layout (edge: ``<state>/push/packs``; control plane: ``<blob dir>/packs``):

    <n>.pack    blob bytes back to back, as a bundle brought them (written straight
                from the receive buffer); in a headed pack (the control plane's) each
                blob right after its bundle record header, the upload's bytes as they came
    <n>.idx     ``core/content/packindex.py`` records: which ranges are verified blobs

Rules:
1. A blob's bytes are written to its pack before its record is appended to the index,
   so a record always names bytes that are in the file (in the page cache at least:
   a killed process keeps them). Where the store flushes in the background (the
   edge: ``edge/releases.py`` rule 6) the record is appended as soon as the blob is
   verified; elsewhere (``durable``) the records are kept in memory until the writer
   commits: pack fsynced, records appended, index fsynced, directory fsynced, and only
   then are the blobs held. A durable writer begins the writeback of every
   ``WRITEBACK_STEP`` bytes as it writes them (``durable.start_writeback``), so the
   commit's fsync waits only for the last ones. A blob that hashed wrong, or one cut
   off midway, is cut off the pack's end again (``ftruncate``), with the ``lead``
   written before it (``begin(lead)``: a headed pack's record header, Rule 6): dead
   bytes are never left at the end.
2. One writer per pack; a pack being written is neither compacted nor deleted.
   A pack with no record when its writer ends is deleted with its index.
3. At start the indexes are read (``packindex.decode``, records past the pack's
   length skipped), never the blob bytes; a pack without a valid record is deleted,
   and an index without its pack too. Pack numbers go on from the highest found.
   ``Pack.made`` is when its records were written (the index's mtime; now, for a
   pack written in this process).
4. ``Pack.live`` is the pack's blobs the store holds; a blob the store drops is
   removed from it (``forget``). ``sweep`` deletes packs with no live blob and names
   those whose live bytes are under half of their length (``packindex.compactable``)
   for the store to copy out, and with them the small packs to merge into one
   (``packindex.small_to_merge``: 16 or more under 1 MiB). Open descriptors of a deleted pack stay readable (POSIX).
5. ``compact(packs, swap)`` copies the live blobs of ``packs`` into one new pack, made
   durable (a store may already have promised them durable), with ``made`` the latest
   of theirs (the index's mtime set to it), headed when the store's packs are;
   ``swap(moved)`` (the store, under its own lock) points the blobs it still holds
   at their new slots and returns those it took; the others are forgotten, and the
   old packs deleted. If the copy fails, the new pack is deleted and the old ones
   stay.
6. ``Packs(directory, headed=True)`` (the control plane's store) writes headed packs
   (``packindex`` Rule 1: a first record named ``headed`` says so, ``Pack.headed``):
   a run of blobs written one after another is sent to an edge as bundle records with
   one ``sendfile`` (``control/dirblobs.py`` Rule 6). Packs loaded keep what their
   index says, so packs written before are read as they were, and an owncdn before
   headed packs reads these as packs of blobs with gaps between them.
7. ``PackWriter.reserve(count)`` allocates disk space for the bytes a writer expects
   next (a bundle's length, ``durable.reserve``: the file's length unchanged; at most
   ``RESERVE_MAX``, as the length is the sender's word), so its
   writes find their blocks allocated; ``close`` (and ``cut``) frees what was not
   filled, and at start a pack holding more than ``TRIM_SLACK`` past its end (a writer
   that died) is truncated to its length.
8. ``queue(data)`` is ``write`` later: the bytes of many blobs (views of one receive
   buffer) go out in one ``writev`` at ``flush()``, which the caller calls before the
   views go stale (before its buffer is read into again); every other call that writes
   or commits flushes first, ``cut`` drops the current blob's queued bytes, ``close``
   drops what was never flushed. ``ended()`` is the current blob's slot, to ``keep_all``
   after the flush (the records appended in one write, Rule 1 kept). The Python docs'
   1,065 blobs (67 MB) written to a new file: 20 ms of CPU one ``write`` each, 13 ms
   in ``writev``s of about 1 MiB (a write ending mid-page made the next one begin
   that page again).
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
import time
from pathlib import Path

from owncdn.core.content.bundle import header
from owncdn.core.content.packindex import HEADED, MAGIC, compactable, decode, encode, headed, small_to_merge
from owncdn.durable import fsync_dir, reserve, start_writeback

__all__ = ["Pack", "PackWriter", "Packs", "Slot"]

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
WRITEBACK_STEP = 1 << 20  # Rule 1
TRIM_SLACK = 1 << 20  # Rule 7: space past a pack's end trimmed at start beyond this
RESERVE_MAX = 64 << 20  # Rule 7: the most a writer reserves ahead (a length is the sender's word)


class Slot:
    """Where a packed blob is: its pack, offset and size (and, for a store that keeps
    it, when a claim last wanted it: ``control/dirblobs.py`` Rule 5)."""

    __slots__ = ("pack", "offset", "size", "claimed")

    def __init__(self, pack: "Pack", offset: int, size: int) -> None:
        self.pack, self.offset, self.size = pack, offset, size
        self.claimed = 0.0

    def __repr__(self) -> str:
        return f"<Slot {self.pack.number}.pack+{self.offset} size={self.size}>"


class Pack:
    __slots__ = ("number", "path", "index", "size", "live", "writing", "made", "headed")

    def __init__(self, directory: Path, number: int, headed: bool = False) -> None:
        self.number = number
        self.path = f"{directory}/{number}.pack"
        self.index = f"{directory}/{number}.idx"
        self.size = 0  # the pack file's length
        self.live: dict[str, Slot] = {}  # Rule 4
        self.writing = False  # Rule 2
        self.made = 0.0  # Rule 3
        self.headed = headed  # Rule 6

    def live_bytes(self) -> int:
        """The bytes its live blobs take (with their headers in a headed pack)."""
        if self.headed:
            return sum(len(header(sha, slot.size)) + slot.size for sha, slot in list(self.live.items()))
        return sum(slot.size for slot in list(self.live.values()))

    def __repr__(self) -> str:
        return f"<Pack {self.number} size={self.size} live={len(self.live)}{' writing' if self.writing else ''}>"


_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16


class PackWriter:
    """Writes one new pack (any one thread): ``begin``, ``write``..., ``keep`` or
    ``cut`` per blob, then ``close`` (Rule 1)."""

    def __init__(self, packs: "Packs", pack: Pack, durable: bool) -> None:
        self.packs, self.pack, self.durable = packs, pack, durable
        self.fd = os.open(pack.path, _CREATE, 0o644)
        self.index_fd: int | None = None
        self.end = 0  # bytes written
        self.start = 0  # where the current blob's lead began (a cut cuts to here)
        self.at = 0  # where the current blob's bytes begin
        self.lead = b""  # the current blob's lead, until written with its first bytes
        self.records: list[tuple[str, Slot, bytes]] = []  # durable: kept until commit
        self.kept = 0
        self.written_back = 0  # durable: where the writeback was begun up to (Rule 1)
        self.reserved = 0  # where the disk space allocated ahead ends (Rule 7)
        self.pending: list = []  # bytes queued (Rule 8), the last ``queued`` of ``end``
        self.queued = 0
        self.mark = 0  # where the current blob's items begin in ``pending``

    def __repr__(self) -> str:
        return f"<PackWriter {self.pack!r} end={self.end}>"

    def begin(self, lead: bytes = b"") -> int:
        """A new blob, after ``lead`` (Rule 1), which goes out with the blob's first
        bytes (one system call); where the blob's bytes begin."""
        self.start = self.end
        self.lead = lead
        self.at = self.end + len(lead)
        self.mark = len(self.pending)
        return self.at

    def reserve(self, count: int) -> None:
        """Rule 7: disk space for the next ``count`` bytes (at most ``RESERVE_MAX``), allocated now."""
        count = min(count, RESERVE_MAX)
        if self.end + count > self.reserved and reserve(self.fd, self.end, count):
            self.reserved = self.end + count

    def queue(self, data) -> None:
        """Rule 8: ``data`` written at the next ``flush()``; it must stay valid until then."""
        if self.lead:
            lead, self.lead = self.lead, b""
            self.pending.append(lead)
            self.end += len(lead)
            self.queued += len(lead)
        self.pending.append(data)
        self.end += len(data)
        self.queued += len(data)

    def flush(self) -> None:
        """Rule 8: the queued bytes written, in ``writev``s of at most ``IOV_MAX`` pieces."""
        if not self.pending:
            return
        pending, self.pending, self.queued, self.mark = self.pending, [], 0, 0
        fd = self.fd
        for first in range(0, len(pending), _IOV_MAX):
            batch = pending[first:first + _IOV_MAX]
            n = os.writev(fd, batch)
            want = sum(map(len, batch))
            if n < want:  # a short write (a full disk says so on the next): the rest one by one
                rest = memoryview(b"".join(batch))[n:]
                while rest:
                    rest = rest[os.write(fd, rest):]
        self._written()

    def ended(self) -> Slot:
        """Rule 8: the slot of the blob just queued (its lead queued if it had no bytes)."""
        if self.lead:
            self.queue(b"")
        return Slot(self.pack, self.at, self.end - self.at)

    def write(self, data: memoryview) -> None:
        self.flush()
        fd = self.fd
        if self.lead:
            lead, self.lead = self.lead, b""
            n = os.writev(fd, [lead, data])
            self.end += n
            if n < len(lead):
                self.write(memoryview(lead)[n:])
                n = len(lead)
            data = data[n - len(lead):]
        while data:
            n = os.write(fd, data)
            data = data[n:]
            self.end += n
        self._written()

    def _written(self) -> None:
        if self.durable and self.end - self.written_back >= WRITEBACK_STEP:
            start_writeback(self.fd, self.written_back, self.end - self.written_back)
            self.written_back = self.end

    def cut(self) -> None:
        """The current blob is dropped, with its lead: the pack ends where it began."""
        self.lead = b""
        if self.end - self.queued <= self.start:  # Rule 8: its bytes are all still queued
            del self.pending[self.mark:]
            self.queued -= self.end - self.start
            self.end = self.start
            return
        self.flush()
        if self.end != self.start:
            os.ftruncate(self.fd, self.start)  # also frees the space reserved (Rule 7)
            self.reserved = 0
            os.lseek(self.fd, self.start, os.SEEK_SET)  # the next blob goes where this one began
            self.end = self.start
            self.written_back = min(self.written_back, self.start)

    def keep(self, sha: str) -> Slot | None:
        """The current blob is verified: its record is appended (or kept for ``commit``
        when durable); its slot, to hold at once, or None when durable."""
        slot = self.ended()
        record = encode(sha, slot.offset, slot.size)
        self.kept += 1
        if self.durable:
            self.records.append((sha, slot, record))
            return None
        self.flush()
        self._append(record)
        self.pack.size = self.end
        self.pack.made = time.time()
        self.pack.live[sha] = slot
        return slot

    def keep_all(self, ended: list[tuple[str, Slot]]) -> None:
        """Rule 8: the blobs of ``ended`` (name, ``ended()`` slot) are verified: kept
        for ``commit`` when durable, else the queued bytes flushed, then their records
        appended in one write."""
        self.flush()
        if not ended:
            return
        if self.durable:
            self.records += [(sha, slot, encode(sha, slot.offset, slot.size)) for sha, slot in ended]
            self.kept += len(ended)
            return
        self._append(b"".join(encode(sha, slot.offset, slot.size) for sha, slot in ended))
        self.kept += len(ended)
        self.pack.size = self.end
        self.pack.made = time.time()
        for sha, slot in ended:
            self.pack.live[sha] = slot

    def _append(self, record: bytes) -> None:
        if self.index_fd is None:
            self.index_fd = os.open(self.pack.index, _APPEND, 0o644)
            record = MAGIC + (HEADED if self.pack.headed else b"") + record
        os.write(self.index_fd, record)

    def commit(self) -> list[tuple[str, Slot]]:
        """Durable writers: pack fsynced, records appended, index fsynced, directory
        fsynced; the blobs to hold now (Rule 1)."""
        self.flush()
        records, self.records = self.records, []
        if not records:
            return []
        os.fsync(self.fd)
        self._append(b"".join(record for _, _, record in records))
        os.fsync(self.index_fd)
        fsync_dir(self.packs.dir)
        self.pack.size = self.end
        self.pack.made = time.time()
        for sha, slot, _ in records:
            self.pack.live[sha] = slot
        return [(sha, slot) for sha, slot, _ in records]

    def close(self) -> None:
        """Rule 2: the pack is done; one with no record is deleted."""
        self.records = []
        if self.pending:  # Rule 8: never flushed (views that may be stale now): dropped
            self.end -= self.queued
            self.pending, self.queued = [], 0
        if self.fd is not None and self.reserved > self.end:
            self._trim()
        for fd in (self.fd, self.index_fd):
            if fd is not None:
                os.close(fd)
        self.fd = self.index_fd = None
        self.pack.writing = False
        if not self.pack.live:
            self.packs.delete(self.pack)


    def _trim(self) -> None:
        """Rule 7: the space reserved past the pack's end freed (the length unchanged)."""
        try:
            os.ftruncate(self.fd, self.end)
        except OSError:
            pass  # the space stays reserved; the next start trims it
        self.reserved = 0


class Packs:
    """The packs of one release store (Rules 2-4)."""

    def __init__(self, directory: Path, headed: bool = False) -> None:
        self.dir = Path(directory)
        self.headed = headed  # Rule 6
        self.dir.mkdir(parents=True, exist_ok=True)
        self.packs: dict[int, Pack] = {}
        self.lock = threading.Lock()  # guards ``packs``
        self._numbers = itertools.count(1)

    def __repr__(self) -> str:
        return f"<Packs {self.dir} packs={len(self.packs)}>"

    def load(self) -> dict[str, Slot]:
        """Rule 3: every indexed blob -> its slot."""
        found: dict[int, set[str]] = {}
        for entry in os.scandir(self.dir):
            number, dot, kind = entry.name.partition(".")
            if dot and number.isdigit() and kind in ("pack", "idx"):
                found.setdefault(int(number), set()).add(kind)
        held: dict[str, Slot] = {}
        for number in sorted(found):
            pack = Pack(self.dir, number)
            try:
                st = os.stat(pack.path)
                pack.size = st.st_size
                if st.st_blocks * 512 > pack.size + TRIM_SLACK:  # Rule 7: a writer died with space reserved
                    os.truncate(pack.path, pack.size)
                with open(pack.index, "rb") as f:
                    data = f.read()
                    pack.made = os.fstat(f.fileno()).st_mtime
                records = decode(data, pack.size)
                pack.headed = headed(data)
            except FileNotFoundError:
                records = {}
            for sha, (offset, size) in records.items():
                if sha not in held:
                    held[sha] = pack.live[sha] = Slot(pack, offset, size)
            if pack.live:
                self.packs[number] = pack
            else:
                self.delete(pack)
        self._numbers = itertools.count(max(found, default=0) + 1)
        return held

    def writer(self, durable: bool) -> PackWriter:
        with self.lock:
            pack = Pack(self.dir, next(self._numbers), self.headed)
            pack.writing = True
            self.packs[pack.number] = pack
        try:
            return PackWriter(self, pack, durable)
        except BaseException:
            with self.lock:
                self.packs.pop(pack.number, None)
            raise

    def delete(self, pack: Pack) -> None:
        with self.lock:
            self.packs.pop(pack.number, None)
        for path in (pack.index, pack.path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    @staticmethod
    def forget(sha: str, slot: Slot) -> None:
        """Rule 4: the store no longer holds this blob from this pack."""
        if slot.pack.live.get(sha) is slot:
            del slot.pack.live[sha]

    def sweep(self) -> tuple[int, list[Pack]]:
        """Rule 4: packs with no live blob deleted (how many bytes they took), and the
        packs to compact."""
        freed = 0
        compact = []
        with self.lock:
            done = [pack for pack in self.packs.values() if not pack.writing]
        alive = {}
        for pack in done:
            if not pack.live:
                freed += pack.size
                self.delete(pack)
            elif compactable(pack.live_bytes(), pack.size):
                compact.append(pack)
            else:
                alive[pack.number] = pack
        compact += [alive[number] for number in small_to_merge({n: p.size for n, p in alive.items()})]
        return freed, compact

    def compact(self, packs: list[Pack], swap) -> int:
        """Rule 5: ``swap(moved)`` gets ``[(sha, old slot, new slot), ...]`` and returns
        the names it now holds at their new slots; the bytes freed."""
        writer = self.writer(durable=True)
        moved: list[tuple[str, Slot]] = []
        try:
            for pack in packs:
                for sha, slot in list(pack.live.items()):
                    writer.begin(header(sha, slot.size) if self.headed else b"")
                    _copy(slot, writer)
                    writer.keep(sha)
                    moved.append((sha, slot))
            writer.commit()
            if moved:
                made = max(pack.made for pack in packs)
                os.utime(writer.pack.index, (made, made))
                writer.pack.made = made
        except BaseException:
            writer.records = []
            writer.pack.live.clear()
            writer.close()  # nothing kept: the new pack is deleted, the old ones stay
            raise
        new = writer.pack.live
        taken = swap([(sha, old, new[sha]) for sha, old in moved if sha in new])
        for sha in list(new.keys() - set(taken)):
            del new[sha]  # dropped meanwhile
        writer.close()
        for pack in packs:
            self.delete(pack)
        return sum(pack.size for pack in packs) - (writer.pack.size if new else 0)

    @staticmethod
    def read(slot: Slot) -> bytes:
        fd = os.open(slot.pack.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, slot.size, slot.offset)
        finally:
            os.close(fd)
        if len(data) != slot.size:
            raise OSError(errno.EIO, "the pack ends inside the blob", slot.pack.path)
        return data

    @staticmethod
    def open(slot: Slot) -> int:
        return os.open(slot.pack.path, os.O_RDONLY | os.O_CLOEXEC)

    @staticmethod
    def chunks(slot: Slot, step: int = WRITEBACK_STEP):
        """The blob's bytes, ``step`` at a time; ``OSError`` if the pack ends inside it."""
        fd = Packs.open(slot)
        try:
            at, end = slot.offset, slot.offset + slot.size
            while at < end:
                data = os.pread(fd, min(step, end - at), at)
                if not data:
                    raise OSError(errno.EIO, "the pack ends inside the blob", slot.pack.path)
                yield data
                at += len(data)
        finally:
            os.close(fd)


def _copy(slot: Slot, writer: PackWriter) -> None:
    """A packed blob's bytes written to ``writer``, a MiB at a time."""
    for data in Packs.chunks(slot):
        writer.write(memoryview(data))
