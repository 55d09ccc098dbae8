"""Uploads stored from views of the received bytes, in the receiving thread.

    sink = BundleSink(store, first=None, landing=None)   # first: fn(sha, data) for a leading record
    await RawBody.attach(request).run(sink)  # feed(view) ..., end(), finish()
    sink.stored                              # the blobs stored, in bundle order
    size = await raw.run(BlobSink(store, sha, length))   # a PUT of one blob

The thread-side half of ``dirblobs.py`` Rules 1 and 2 for a body read raw (``rawbody.py``)
or fed in batches through ASGI (``asgibody.py``).

Rules:
1. The bytes are parsed as they arrive (``BundleReader`` with views); the blobs are
   written back to back into one new pack (``DirBlobStore.bundle``, ``dirblobs`` Rule 5),
   each hashed from the same views, so no blob is joined, copied or handed to another
   thread.
2. At a blob's end its hash is checked (``blobs`` Rule 1): a wrong one is cut off the
   pack and raises ``BlobMismatch``; nothing after it is stored. A blob larger than
   the store takes is refused at its header (``BlobTooLarge``).
3. ``finish()``, however the body ended, cuts off a blob cut off and makes the
   verified ones durable and stored together (``BundlePack.commit``: the pack fsynced,
   its writeback begun as it was written, then its index; no other file's writeback
   is waited for), so nothing half-written is ever a blob and what came before a
   refusal or a cut is kept. ``stored`` then lists them; if that
   fails, it is emptied. A release created from them next finds them durable.
   With ``landing``, the verified blobs are offered (``BundlePack.offer``: readable
   from the pack) and handed to ``landing([(sha, size), ...])`` just before that
   flush, once nothing can refuse them any more (after Rule 4's check), so the edges
   waiting for them fetch them meanwhile (``blobs`` Rule 4b, which lands them again
   once stored). A bundle without a leading record does not wait for its end: after
   each piece that brings the bytes fed to ``LAND_BYTES`` more than at the last
   landing, the blobs verified since are offered and landed. So a large bundle (fewer
   requests, packs and fsyncs for the control plane) reaches the edges as early as
   small ones did. Whatever happens to them after (a failed flush drops them), the
   bytes the edges got were the blobs' own.
4. With ``first``, the leading record is not stored but handed whole to
   ``first(sha, data)`` once it ended (at most ``first_limit`` bytes, else 413); what
   it raises ends the upload before any blob was written. It may instead return a
   ``concurrent.futures.Future`` (its check runs in another thread: ``releases`` Rule
   13): the blobs after it are received and written to temp files meanwhile, and
   ``finish()`` waits for it before storing any; if it raised, they are removed and
   its error raised, so nothing was stored.
5. ``BlobSink``: the body is one blob, written and hashed as in Rule 1, checked at
   the body's end, made durable (an fsync) and renamed by ``finish()``; refused, its
   temp file is removed (cut off: Rule 7). With ``growing`` (``arriving.py`` Rule 1) it
   tells the temp file once made, the bytes written after each piece, and the end
   (``verified`` once checked, ``failed`` if refused or cut off).
6. Given the body's ``length``, the pack reserves the disk space of what is left of
   the body when it is made (``packs`` Rule 7; what is not filled is freed when it
   is closed).
7. ``BlobSink`` keeps what a body cut off brought (``cut()``, told by ``RawBody``: the
   client gone or stalled, the server stopping) to resume from (``dirblobs`` Rule 9);
   a refused one keeps nothing. Given ``part`` (a resumed upload's, made by the caller
   in a worker thread: reading back and hashing the kept bytes holds no receiving
   thread's turn), it writes on from there, and the growing blob's temp file is that
   part's, its kept bytes written already.
"""

from __future__ import annotations

from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.dirwriters import BlobPart, BundlePack
from owncdn.core.content.bundle import BlobData, BlobEnd, BlobStart, BundleError, BundleReader

from .arriving import Growing
from .errors import ApiProblem
from .releaseschemas import BlobStored

__all__ = ["BlobSink", "BundleSink", "LAND_BYTES"]

LAND_BYTES = 4 << 20  # Rule 3: a plain bundle's verified blobs landed at least this often


class BundleSink:
    """Rules 1-4, for ``RawBody.run``."""

    def __init__(self, store: DirBlobStore, first=None, first_limit: int = 0, landing=None, length: int = 0) -> None:
        self.store = store
        self.length = length  # the body's, when known (Rule 6)
        self.fed = 0  # bytes fed before the piece being parsed
        self.first, self.first_limit = first, first_limit
        self.landing = landing
        self.head: bytearray | None = bytearray() if first is not None else None
        self.reader = BundleReader(views=True)
        self.pack: BundlePack | None = None  # made at the first blob
        self.receiving = False
        self.verified: list[tuple[str, int]] = []  # (sha, size), kept in the pack
        self.landed = 0  # of them, handed to ``landing`` (Rule 3)
        self.land_at = LAND_BYTES  # bytes fed that call for the next landing
        self.stored: list[BlobStored] = []
        self.pending = None  # Rule 4: the leading record's check, running elsewhere

    def __repr__(self) -> str:
        return f"<BundleSink {len(self.verified)} verified{' receiving' if self.receiving else ''} {self.reader!r}>"

    def feed(self, view: memoryview) -> None:
        fed, self.fed = self.fed, self.fed + len(view)
        try:
            for event in self.reader.feed(view):
                if isinstance(event, BlobData):
                    if self.receiving:
                        self.pack.write(event.data)
                    else:
                        self.head += event.data
                elif isinstance(event, BlobStart):
                    self._start(event, fed)
                else:
                    self._end(event)
        finally:
            if self.pack is not None:
                self.pack.flush()  # the piece's blobs in one writev, before ``view`` goes stale
        if self.fed >= self.land_at and self.landing is not None and self.first is None:
            self.land_at = self.fed + LAND_BYTES
            self._land(self.pack, self.verified)

    def _land(self, pack: BundlePack, verified: list[tuple[str, int]]) -> None:
        """Rule 3: the blobs verified since the last landing, offered and landed."""
        if len(verified) > self.landed:
            pack.offer()
            new, self.landed = verified[self.landed:], len(verified)
            self.landing(new)

    def _start(self, event: BlobStart, fed: int) -> None:
        if self.head is None:
            if self.pack is None:
                self.pack = self.store.bundle()
                self.pack.reserve(self.length - fed)  # Rule 6
            self.pack.start(event.sha256, event.size)
            self.receiving = True
        elif event.size > self.first_limit:
            raise ApiProblem(413, "too_large", f"the first record has {event.size} bytes, more than {self.first_limit}")

    def _end(self, event: BlobEnd) -> None:
        if self.head is not None:
            data, self.head = bytes(self.head), None
            self.pending = self.first(event.sha256, data)
            return
        self.receiving = False
        self.verified.append((event.sha256, self.pack.end()))

    def end(self) -> None:
        """The body ended: it must end between records, after the leading one."""
        self.reader.close()
        if self.head is not None:
            raise BundleError("the bundle is empty; its first record is required")

    def finish(self) -> list[BlobStored]:
        """Rule 3."""
        pack, self.pack = self.pack, None
        verified, self.verified = self.verified, []
        pending, self.pending = self.pending, None
        self.receiving = False
        try:
            if pending is not None:
                pending.result()  # Rule 4 (what it raises: the pack is closed unstored)
            if self.landing is not None:
                self._land(pack, verified)
            if verified:
                pack.commit()
                self.stored = [BlobStored(sha256=sha, size=size) for sha, size in verified]
        finally:
            if pack is not None:
                pack.close()
        return self.stored


class BlobSink:
    """Rule 5, for ``RawBody.run``: ``finish()`` gives the blob's size."""

    def __init__(self, store: DirBlobStore, sha: str, size: int, growing: Growing | None = None,
                 part: BlobPart | None = None) -> None:
        self.store, self.sha, self.size, self.growing = store, sha, size, growing
        self.part = part  # a resumed upload's, made already (Rule 7)
        self.written: list[tuple[str, str]] = []
        self.broken = False
        if part is not None and growing is not None:
            growing.path = part.tmp
            growing.advance(part.size)

    def __repr__(self) -> str:
        return f"<BlobSink {self.sha[:12]} {self.size} bytes{' checked' if self.written else ''}>"

    def feed(self, view: memoryview) -> None:
        growing = self.growing
        if self.part is None:
            self.part = self.store.part(self.sha, self.size)
            if growing is not None:
                growing.path = self.part.tmp
        self.part.write(view)
        if growing is not None:
            growing.advance(self.part.size)

    def end(self) -> None:
        part, self.part = self.part or self.store.part(self.sha, self.size), None
        try:
            self.written.append(part.finish())
        except BaseException:
            if self.growing is not None:
                self.growing.end("failed")
            raise
        if self.growing is not None:
            self.growing.end("verified")

    def cut(self) -> None:
        """``RawBody``: the body was cut off (Rule 7)."""
        self.broken = True

    def finish(self) -> int:
        if self.part is not None:
            if self.broken:
                self.part.keep()
            else:
                self.part.abort()
            self.part = None
            if self.growing is not None:
                self.growing.end("failed")
        if self.written:
            self.store.commit_many(self.written)
        return self.size
