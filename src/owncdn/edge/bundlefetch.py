"""Receiving a bundle of blobs in a worker thread: one blocking connection, one reused buffer.

    conns = BlobConnections(address, timeouts)
    fetch = BundleFetch(conns, request, sizes, store, on_complete=callback)
    outcome = fetch.run()     # in a worker thread, until the bundle ended or broke
    fetch.abort()             # from the event loop: run() ends soon, keeping what it wrote

Most of a release's bytes come in bundles (``releasesync.py`` rule 2). Read through the
event loop, every piece of a bundle became a new ``bytes`` object twice (the transport's
read, the HTTP parser's body callback), the pieces of each blob were joined, and groups
of blobs were handed to 16 writer threads: fetching the Python docs (1,065 blobs, 67 MB)
in one bundle took an edge 0.14-0.16 CPU-seconds, of which hashing is about 0.06. Here
one thread receives, hashes and writes each bundle: 0.085-0.094 s (measured in one
process, state on tmpfs, 2026-11-22).

Rules:
1. One ``POST /v1/blobs/fetch`` per bundle, sent whole on a blocking connection from
   ``BlobConnections`` (TCP, or TLS as ``upstream.OriginPool`` would); the answer is read
   with ``recv_into`` into one buffer of ``BUFFER`` bytes (``BlobConnections.buffers``:
   up to ``KEEP_BUFFERS`` reused from fetch to fetch). Its head (at
   most ``MAX_HEAD`` bytes; 1xx answers skipped) is parsed here; the body is framed by
   chunked coding (``core/http/chunked.py``), ``Content-Length`` or the connection's end.
2. A 200 body is a bundle (``core/content/bundle.py``, views): the blobs the store
   lacks are written back to back into one new pack (``owncdn/packs.py``, made when the
   first one starts: a bundle of blobs held already creates no file), each blob's
   pieces hashed and written straight from the buffer as they arrive, with the hash
   its name says (``core/content/digest.py``: BLAKE3, or SHA-256 for older blobs); at
   the blob's end the digest is compared with the name (``blobhold.py`` rule 1). A
   blob not asked for, with another size, or twice, ends the fetch as
   ``OriginProtocolError``; one that hashes wrong is cut off the pack again and
   reported (``Outcome.results``); one the store holds already is read past.
3. A verified blob gets its index record, and is held, once the piece of the body it
   ended in is written (the piece's blobs in one ``writev``, ``packs`` Rule 8), where
   the store flushes in the background (``releases.py`` rule 6); elsewhere the pack and the
   records are made durable together when the fetch ends, however it ends, and the
   blobs held then (``ReleaseStore.end_pack``). Either way what was verified before a
   cut is kept, and a blob cut off midway is cut off the pack.
4. Any other status: the body (up to 1 MiB) is returned for the caller to read the
   reason from (``Outcome.status``, ``Outcome.refusal``).
5. Timeouts as ``upstream.Timeouts``: connect, first byte (request sent -> head) and
   idle (between two reads). Errors are upstream's: ``OriginConnectError`` (no answer
   byte came: a kept connection closed by the server meanwhile is retried once on a new
   one), ``OriginTimeout``, ``OriginProtocolError``. ``run`` never raises: the error is
   ``Outcome.error``, next to what was kept before it.
6. ``abort()`` (any thread) shuts the connection down; ``run`` then ends soon with the
   error ``OriginConnectError`` and what it wrote kept (Rule 3).
7. A connection whose answer was read to its end, with keep-alive on both sides, goes
   back to ``BlobConnections``; one idle for more than ``IDLE_SECONDS`` is closed rather
   than used (servers close idle keep-alive connections after a few seconds).
8. Where verified blobs are held at once (Rule 3), ``on_complete`` (if given) is called
   in the worker thread as soon as every blob asked for came, matched and is in place,
   before the end of the body is read: the caller need not wait for the last bytes
   of the framing (the control plane's last chunk came 2-3 ms after the last blob in
   a one-file push to 3 edges on one machine); ``run`` goes on to the end as before.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable

from owncdn.core.content.bundle import BlobData, BlobEnd, BlobStart, BundleError, BundleReader
from owncdn.core.content.digest import hasher, name_of
from owncdn.core.http.chunked import ChunkedDecoder, ChunkedError
from owncdn.edge.upstream import (
    OriginAddress, OriginConnectError, OriginError, OriginProtocolError, OriginTimeout, Timeouts, tls_context,
)

__all__ = ["BUFFER", "BlobConnections", "BundleFetch", "Outcome"]

BUFFER = 1 << 20
KEEP_BUFFERS = 4  # receive buffers kept for the next fetches; more at once are dropped after use
MAX_HEAD = 64 << 10
MAX_REFUSAL = 1 << 20
IDLE_SECONDS = 4.0  # under the 5 s after which uvicorn (the control plane) closes an idle connection


class Outcome:
    """What one bundle fetch did (Rules 2-5)."""

    __slots__ = ("results", "received", "status", "refusal", "error")

    def __init__(self) -> None:
        self.results: list[tuple[str, bool]] = []  # (sha, whether it matched), blobs in the order they ended
        self.received = 0  # blob bytes read
        self.status = 0
        self.refusal = b""  # the body of an answer other than 200
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        return (f"<Outcome status={self.status} blobs={len(self.results)} bytes={self.received}"
                f"{' error=' + type(self.error).__name__ if self.error else ''}>")


class BlobConnections:
    """Blocking keep-alive connections to the control plane, for bundles (Rules 1, 7)."""

    def __init__(self, address: OriginAddress, timeouts: Timeouts) -> None:
        self.address, self.timeouts = address, timeouts
        self.idle: deque[tuple[socket.socket, float]] = deque()
        self.opened = 0
        self.closed = False
        self.buffers: list[bytearray] = []  # receive buffers of ``BUFFER`` bytes, reused (Rule 1)
        self._tls: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"<BlobConnections {self.address} idle={len(self.idle)} opened={self.opened}>"

    def take(self) -> tuple[socket.socket, bool]:
        """A connection and whether it was used before."""
        while True:
            try:
                sock, since = self.idle.pop()  # atomic: threads take at once
            except IndexError:
                return self.connect(), False
            if time.monotonic() - since <= IDLE_SECONDS:
                return sock, True
            sock.close()

    def connect(self) -> socket.socket:
        address = self.address
        try:
            sock = socket.create_connection((address.host, address.port), self.timeouts.connect)
        except TimeoutError:
            raise OriginTimeout(f"{address}: connect timed out after {self.timeouts.connect:g}s") from None
        except OSError as exc:
            raise OriginConnectError(f"{address}: {exc.strerror or exc}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if address.scheme == "https":
                sock = self._context().wrap_socket(sock, server_hostname=address.host)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise OriginConnectError(f"{address}: {exc}") from None
        self.opened += 1
        return sock

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = tls_context(self.address)
        return self._tls

    def buffer(self) -> bytearray:
        """A receive buffer; the caller appends it to ``buffers`` once done."""
        try:
            return self.buffers.pop()  # atomic: threads take at once
        except IndexError:
            return bytearray(BUFFER)

    def give(self, sock: socket.socket) -> None:
        if self.closed:
            sock.close()
        else:
            self.idle.append((sock, time.monotonic()))

    def close(self) -> None:
        self.closed = True
        while True:
            try:
                self.idle.pop()[0].close()
            except IndexError:
                return


class BundleFetch:
    """One bundle, received in the calling (worker) thread: Rules 1-6."""

    def __init__(self, conns: BlobConnections, request: bytes, sizes: dict[str, int], store,
                 on_complete: Callable[[], None] | None = None) -> None:
        self.conns, self.request, self.sizes, self.store = conns, request, sizes, store
        self.on_complete = on_complete  # Rule 8
        self._wrong = False  # a blob hashed wrong (Rule 8: then not complete)
        self.outcome = Outcome()
        self._sock: socket.socket | None = None
        self._aborted = False
        self._lock = threading.Lock()
        self._pack = None  # the bundle's packs.PackWriter, once a blob is written (Rule 2)
        self._writing = False  # a blob is being written to it
        self._digest = None  # ... and its hash so far
        self._reader = BundleReader(views=True)
        self._blob_start = 0  # outcome.received when the current blob began
        self._ended: list[tuple[str, object, int]] = []  # verified in this piece: (sha, slot, size), Rule 3
        self._between = False  # the last record seen ended (no blob under way)

    def __repr__(self) -> str:
        return f"<BundleFetch {len(self.sizes)} blobs {self.outcome!r}>"

    def abort(self) -> None:
        """Rule 6."""
        with self._lock:
            self._aborted = True
            sock = self._sock
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also under TLS
            except OSError:
                pass

    def run(self) -> Outcome:
        try:
            self._run()
        except (OriginError, ChunkedError, BundleError, OSError) as exc:
            self.outcome.error = self._error(exc)
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop as it is
            self.outcome.error = exc
        finally:
            self._end_pack()
        return self.outcome

    def _end_pack(self) -> None:
        """Rule 3, however the fetch ended."""
        pack, self._pack = self._pack, None
        if pack is None:
            return
        try:
            try:
                if self._writing:  # a blob cut off midway
                    self._writing = False
                    pack.cut()
            finally:
                self.store.end_pack(pack)
        except OSError as exc:
            self.outcome.results = [(sha, ok) for sha, ok in self.outcome.results
                                    if not ok or self.store.has_blob(sha)]
            self.outcome.error = self.outcome.error or exc

    def _error(self, exc: BaseException) -> BaseException:
        if self._aborted:
            return OriginConnectError(f"{self.conns.address}: the bundle fetch was stopped")
        if isinstance(exc, (ChunkedError, BundleError)):
            return OriginProtocolError(f"bad bundle from the control plane: {exc}")
        if isinstance(exc, TimeoutError):
            return OriginTimeout(f"{self.conns.address}: no answer or data within the timeout")
        return exc

    # -- the exchange (Rules 1, 4, 5, 7) -------------------------------------------------
    def _run(self) -> None:
        sock, reused = self.conns.take()
        try:
            try:
                answered = self._exchange(sock)
            except OriginConnectError:
                if not reused or self._aborted:
                    raise
                sock.close()
                sock = self.conns.connect()  # Rule 5: the kept connection was closed meanwhile
                answered = self._exchange(sock)
        except BaseException:
            sock.close()
            raise
        if answered:
            self.conns.give(sock)
        else:
            sock.close()

    def _exchange(self, sock: socket.socket) -> bool:
        """Send the request and read the whole answer; whether the connection can be kept."""
        with self._lock:
            if self._aborted:
                raise OriginConnectError("stopped")
            self._sock = sock
        try:
            timeouts = self.conns.timeouts
            sock.settimeout(timeouts.first_byte)
            try:
                sock.sendall(self.request)
            except OSError as exc:
                raise OriginConnectError(f"{self.conns.address}: {exc.strerror or exc}") from None
            buf = self.conns.buffer()
            try:
                view = memoryview(buf)
                status, fields, at, filled = self._head(sock, buf, view)
                sock.settimeout(timeouts.idle)
                self.outcome.status = status
                keep = fields.get(b"connection", b"").lower() != b"close"
                return self._body(sock, view, at, filled, fields, status) and keep
            finally:
                if len(self.conns.buffers) < KEEP_BUFFERS:
                    self.conns.buffers.append(buf)  # never resized, so views of it may outlive this
        finally:
            with self._lock:
                self._sock = None

    def _head(self, sock: socket.socket, buf: bytearray, view: memoryview) -> tuple[int, dict, int, int]:
        """The final answer's status and fields, where its body starts and how much of
        ``buf`` is filled."""
        filled = 0
        start = 0
        while True:
            end = buf.find(b"\r\n\r\n", start, filled)
            if end < 0:
                if filled - start > MAX_HEAD:
                    raise OriginProtocolError(f"{self.conns.address}: the answer's head is too large")
                if filled == len(buf):
                    raise OriginProtocolError(f"{self.conns.address}: the answer's head is too large")
                try:
                    n = sock.recv_into(view[filled:])
                except TimeoutError:
                    raise
                except OSError as exc:  # e.g. reset: a kept connection the server had closed
                    if filled:
                        raise
                    raise OriginConnectError(f"{self.conns.address}: {exc.strerror or exc}") from None
                if not n:
                    if filled == 0:
                        raise OriginConnectError(f"{self.conns.address} closed the connection")
                    raise OriginProtocolError(f"{self.conns.address} closed the connection")
                filled += n
                continue
            status, fields = _parse_head(bytes(buf[start:end]))
            start = end + 4
            if 100 <= status < 200 and status != 101:
                continue  # interim answer: the final one follows
            return status, fields, start, filled

    def _body(self, sock: socket.socket, view: memoryview, at: int, filled: int, fields: dict, status: int) -> bool:
        """Read the body to its end, handing its pieces on; whether it ended by its framing."""
        ok = self._accepts(status)
        on_piece = self._piece if ok else self._refusal_piece
        chunked = b"chunked" in fields.get(b"transfer-encoding", b"").lower()
        length = fields.get(b"content-length")
        if chunked:
            decoder = ChunkedDecoder()
            while True:
                pieces, used = decoder.feed(view[at:filled])
                for piece in pieces:
                    on_piece(piece)
                if decoder.done:
                    framed = at + used == filled
                    break
                filled, at = self._recv(sock, view), 0
        elif length is not None:
            if not length.isdigit():
                raise OriginProtocolError(f"{self.conns.address}: bad Content-Length {length[:40]!r}")
            left = int(length)
            while True:
                piece = view[at:at + min(left, filled - at)]
                if piece:
                    on_piece(piece)
                left -= len(piece)
                if not left:
                    framed = at + len(piece) == filled
                    break
                filled, at = self._recv(sock, view), 0
        else:
            framed = False
            while True:
                if at < filled:
                    on_piece(view[at:filled])
                n = sock.recv_into(view)
                if not n:
                    break
                filled, at = n, 0
        if ok:
            self._finish()
        return framed

    def _recv(self, sock: socket.socket, view: memoryview) -> int:
        n = sock.recv_into(view)
        if not n:
            raise OriginProtocolError(f"{self.conns.address} closed the connection before the answer's end")
        return n

    # -- the bundle (Rules 2, 3) ------------------------------------------------------------
    def _accepts(self, status: int) -> bool:
        """Whether the body is what was asked for (else a refusal, Rule 4)."""
        return status == 200

    def _finish(self) -> None:
        """An accepted body ended."""
        self._reader.close()  # BundleError if it stopped inside a record

    def _piece(self, piece: memoryview) -> None:
        try:
            for ev in self._reader.feed(piece):
                if isinstance(ev, BlobData):
                    self.outcome.received += len(ev.data)
                    if self._writing:
                        self._digest.update(ev.data)
                        self._pack.queue(ev.data)
                elif isinstance(ev, BlobStart):
                    self._start(ev.sha256, ev.size)
                elif isinstance(ev, BlobEnd):
                    self._end(ev.sha256)
        finally:
            self._settle()

    def _settle(self) -> None:
        """Rule 3, at a piece's end (before the buffer is read into again): what was
        queued written, then the blobs verified in it kept."""
        if self._pack is not None:
            self._pack.flush()
        if self._ended:
            ended, self._ended = self._ended, []
            self.store.keep_packed_all(self._pack, [(sha, slot) for sha, slot, _ in ended])
            self.store.count_fetched(len(ended), sum(size for _, _, size in ended))  # kept later (not lazy): counted now
            self.outcome.results += [(sha, True) for sha, _, _ in ended]
        if self._between:
            self._completed()

    def _start(self, sha: str, size: int) -> None:
        self._between = False
        if self.sizes.pop(sha, None) != size:  # popped: asked for once, so sent once
            raise OriginProtocolError(f"the bundle holds blob {sha[:12]} ({size} bytes), "
                                      "which was not asked for with that size")
        if self.store.has_blob(sha):
            return  # fetched meanwhile by another task: read past
        if self._pack is None:
            self._pack = self.store.pack_writer()
            self._pack.reserve(size + sum(self.sizes.values()))  # the blobs still to come (packs Rule 7)
        self._pack.begin()
        self._writing = True
        self._digest = hasher(sha)

    def _end(self, sha: str) -> None:
        writing, self._writing = self._writing, False
        self._between = True
        size, self._blob_start = self.outcome.received - self._blob_start, self.outcome.received
        if not writing:
            self.store.count_fetched(0, size)
            self.outcome.results.append((sha, True))
            return
        if name_of(self._digest) == sha:
            self._ended.append((sha, self._pack.ended(), size))  # kept at the piece's end
            return
        self._pack.cut()
        self._wrong = True
        self.store.count_fetched(0, size)
        self.outcome.results.append((sha, False))

    def _completed(self) -> None:
        """Rule 8, at the end of a piece that ended between two records."""
        if self.on_complete is not None and not self.sizes and not self._wrong and self.store.lazy:
            callback, self.on_complete = self.on_complete, None
            callback()

    def _refusal_piece(self, piece: memoryview) -> None:
        room = MAX_REFUSAL - len(self.outcome.refusal)
        if room > 0:
            self.outcome.refusal += bytes(piece[:room])

    @property
    def missing(self) -> set[str]:
        """Blobs asked for that the bundle did not hold."""
        return set(self.sizes)


def _parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    """Status and fields (lower-case names, the last of each) of an answer's head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not (parts[1].isdigit() and len(parts[1]) == 3):
        raise OriginProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise OriginProtocolError(f"bad header line {line[:80]!r}")
        fields[name.lower()] = value.strip()
    if parts[0] == b"HTTP/1.0" and fields.get(b"connection", b"").lower() != b"keep-alive":
        fields[b"connection"] = b"close"
    return int(parts[1]), fields
