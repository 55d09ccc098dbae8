"""Request bodies read straight from a connection's socket, in a thread of their own.

    raw = RawBody.attach(request)   # None: read the body through ASGI instead
    result = await raw.run(sink)    # sink.feed(view) per piece, sink.end(), sink.finish()

Through uvicorn, every piece of an upload becomes a new ``bytes`` object twice (the
transport's read, the HTTP parser's body callback), is appended to the request's
buffer, handed to the application through an ``asyncio.Event`` and an async
iterator, and groups of blobs hop to worker threads to be hashed and written; the
threads' wake-ups and switches were about a quarter of the control plane's CPU
receiving a first push of the Python docs (perf). Here one thread per upload reads
the body into one buffer and hands views of it to the sink, which parses, hashes and
writes from them (``uploadsink.py``; the edges fetch bundles so, ``edge/bundlefetch.py``).

Rules:
1. Only for a request served by uvicorn's httptools protocol on a plain TCP
   connection (``sendfile.with_transport`` puts the request cycle in the scope),
   HTTP/1.1, a body framed by ``Content-Length`` (no ``Transfer-Encoding``) of which
   nothing was received through ASGI yet, and at most ``RECEIVERS`` at once;
   otherwise ``attach`` gives None and the caller reads the body through ASGI (TLS,
   HTTP/1.0, h11, ASGI test transports).
2. Taking the body: uvicorn stops reading the connection, and the body bytes it
   read already (its cycle's buffer) are the first piece. The rest is read from the
   socket with ``recv_into`` into a buffer of ``BUFFER`` bytes, never past the body's
   end (a pipelined request stays in the socket for uvicorn), in one of ``RECEIVERS``
   threads of their own (a slow client holds one of those, not one of the request
   handlers'). The sink gets read-only views of the buffer, valid until ``feed``
   returns. One upload at a time reads and feeds a piece (a lock, ``turn``; waiting
   for bytes is done without it): uploads in parallel on 2 cores otherwise handed the
   GIL to each other at every system call (28,000 futex calls receiving the push
   benchmark's 1,065 files; 0.14-0.28 CPU-seconds against 0.13-0.15 with the lock).
   The buffer is taken for one piece, in the turn, from those not in use (the one
   given back last first) and given back once ``feed`` returned, so the uploads of a
   push share one buffer (a second only while a sink lets the turn go inside
   ``feed``, Rule 6), which stays in the CPU's cache: a buffer per receiving thread
   (8 uploads at once) cost a fresh process about 2.5 ms a thread to fault in (py-spy:
   5% of the control plane's samples in a first push) and rotated 8 MiB through the
   cache. ``Expect: 100-continue`` is answered first.
3. Once the body was read to its end, uvicorn's parser is replaced by a new one (the
   old one still waits for the body bytes it never saw) and the request marked
   complete; uvicorn sends the response as usual and then reads the connection
   again, so the next request on a keep-alive connection is served as any other.
4. ``feed`` or ``end`` raising (a refused body: a wrong hash, a malformed bundle):
   the rest of the body is read and dropped, so the refusal reaches the client and
   the connection stays usable, and the error is raised to the caller. ``finish()``
   runs in the thread however the body ended (the sink keeps or drops what it wrote
   there) and its result is ``run``'s.
5. The socket is read through a duplicate descriptor (as ``sendfile.py`` Rule 4),
   non-blocking, waiting with ``poll``. A client that closes the connection before
   the body's end, or sends nothing for ``STALL_SECONDS``: the connection is closed
   and ``ClientDisconnect`` raised (as reading through ASGI raises it). Cancelled
   (the server stopping): the connection is closed, the thread stops before its next
   piece (the duplicate descriptor would still deliver a body that keeps arriving),
   or at its next poll (``POLL_SECONDS``) if none comes. Either way a sink with
   ``cut()`` is told before its ``finish()``.
6. ``call(fn, *args)`` runs the coroutine ``fn(*args)`` on the event loop from the
   sink and waits for its result, letting the turn go meanwhile; ``unlocked(fn,
   *args)`` calls the plain function ``fn(*args)`` in the receiving thread itself,
   the turn let go meanwhile (a release bundle's manifest record is handed so to the
   thread that checks it, ``releases`` Rule 13: no hop through the loop, about 1 ms
   of a one-file push).
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

from starlette.requests import ClientDisconnect, Request

from .sendfile import CYCLE, ThreadPool

__all__ = ["BUFFER", "RECEIVERS", "RawBody"]

BUFFER = 1 << 20
RECEIVERS = 32
STALL_SECONDS = 60.0
POLL_SECONDS = 1.0
_PROTOCOL = "HttpToolsProtocol"


class _Receivers(ThreadPool):
    """The receiving threads (Rule 2), made on first use, and the uploads using them."""

    def __init__(self) -> None:
        super().__init__(RECEIVERS, "body-recv")
        self.free: list[tuple[memoryview, memoryview]] = []  # buffers not in use, the last given back at the end
        self.turn = threading.Lock()  # held while reading and storing a piece (Rule 2)

    def buffer(self) -> tuple[memoryview, memoryview]:
        """A buffer for one piece (Rule 2) as (writable view, read-only view): the one
        given back last, or a new one; ``give_buffer`` it back once fed. Never resized
        (so a view of it outliving a feed stays valid, if overwritten)."""
        try:
            return self.free.pop()  # atomic: a sink that let the turn go takes one outside it
        except IndexError:
            view = memoryview(bytearray(BUFFER))
            return view, view.toreadonly()

    def give_buffer(self, views: tuple[memoryview, memoryview]) -> None:
        self.free.append(views)


_RECEIVERS = _Receivers()


class RawBody:
    """One request's body, read from its socket in a receiving thread (Rules 2-6)."""

    def __init__(self, cycle, protocol, first: bytearray, remaining: int) -> None:
        self.cycle, self.protocol = cycle, protocol
        self.first, self.remaining = first, remaining
        self.transport = cycle.transport
        self.fd = self.transport.get_extra_info("socket").fileno()
        self.loop = asyncio.get_running_loop()
        self.stop = threading.Event()
        self.done = False

    def __repr__(self) -> str:
        return f"<RawBody fd={self.fd} {self.remaining} bytes left{' done' if self.done else ''}>"

    @classmethod
    def attach(cls, request: Request) -> RawBody | None:
        """The body of ``request`` taken from uvicorn, or None (Rules 1, 2)."""
        scope = request.scope
        cycle = scope.get("extensions", {}).get(CYCLE)
        if cycle is None or scope.get("http_version") != "1.1" or request._stream_consumed or hasattr(request, "_body"):
            return None
        protocol = getattr(getattr(cycle, "on_response", None), "__self__", None)
        if type(protocol).__name__ != _PROTOCOL or getattr(protocol, "parser", None) is None:
            return None
        length = request.headers.get("content-length", "")
        if not length.isdigit() or "transfer-encoding" in request.headers:
            return None
        transport = cycle.transport
        if transport.is_closing() or transport.get_extra_info("sslcontext") is not None:
            return None
        sock = transport.get_extra_info("socket")
        if sock is None or sock.type != socket.SOCK_STREAM or cycle.response_started or cycle.disconnected:
            return None
        remaining = int(length) - len(cycle.body)
        if remaining < 0 or (remaining and not cycle.more_body) or (cycle.more_body and not remaining):
            return None
        if not _RECEIVERS.take():
            return None
        if remaining:
            cycle.flow.pause_reading()
        if cycle.waiting_for_100_continue:
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        first, cycle.body = cycle.body, bytearray()
        request._stream_consumed = True
        return cls(cycle, protocol, first, remaining)

    async def run(self, sink):
        """Feed the whole body to ``sink`` in a receiving thread; ``sink.finish()``'s
        result, or what the sink raised once the body was read (Rule 4), or
        ``ClientDisconnect`` (Rule 5)."""
        try:
            try:
                result = await _RECEIVERS.submit(self._pump, sink)
            except ClientDisconnect:
                self._close()
                raise
            except asyncio.CancelledError:
                self.stop.set()
                self._close()
                raise
            except BaseException:
                self._restore()
                raise
            self._restore()
            return result
        finally:
            self.done = True
            _RECEIVERS.give()

    def call(self, fn, *args):
        """Rule 6: from the receiving thread, ``await fn(*args)`` on the event loop."""
        future = asyncio.run_coroutine_threadsafe(fn(*args), self.loop)
        _RECEIVERS.turn.release()  # called from the sink, in its turn: the others go on meanwhile
        try:
            while True:
                try:
                    return future.result(POLL_SECONDS)
                except FutureTimeout:
                    if self.stop.is_set():
                        future.cancel()
                        raise ClientDisconnect() from None
        finally:
            _RECEIVERS.turn.acquire()

    def unlocked(self, fn, *args):
        """Rule 6: from the sink, ``fn(*args)`` in this thread, the turn let go meanwhile."""
        _RECEIVERS.turn.release()
        try:
            return fn(*args)
        finally:
            _RECEIVERS.turn.acquire()

    def _restore(self) -> None:
        """Rule 3 once the body was read to its end; else the connection cannot carry
        another request."""
        if self.remaining:
            self._close()
        elif self.cycle.more_body:
            self.protocol.parser = type(self.protocol.parser)(self.protocol)
            self.cycle.more_body = False

    def _close(self) -> None:
        self.cycle.keep_alive = False
        self.transport.close()

    # -- in the receiving thread -------------------------------------------------------------
    def _pump(self, sink):
        try:
            sock = socket.socket(fileno=os.dup(self.fd))
        except OSError:
            raise ClientDisconnect() from None
        try:
            try:
                if self.first:
                    with _RECEIVERS.turn:
                        sink.feed(memoryview(self.first).toreadonly())
                    self.first = bytearray()
                self._read(sock, sink.feed)
                sink.end()
            except ClientDisconnect:
                cut = getattr(sink, "cut", None)
                if cut is not None:
                    cut()  # Rule 5: the sink may keep what came (uploadsink Rule 7)
                raise
            except Exception:
                self._read(sock, None)  # Rule 4: the rest read and dropped; then the refusal
                raise
        finally:
            sock.close()
            result = sink.finish()
        return result

    def _read(self, sock: socket.socket, feed) -> None:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        stalled_since: float | None = None
        while self.remaining:
            if self.stop.is_set():  # Rule 5: the server stopping, also while the bytes keep coming
                raise ClientDisconnect()
            with _RECEIVERS.turn:  # Rule 2: one upload at a time reads, parses and writes
                views = _RECEIVERS.buffer()
                try:
                    n = _recv(sock, views[0][:min(BUFFER, self.remaining)])
                    if n:
                        self.remaining -= n
                        if feed is not None:
                            feed(views[1][:n])
                finally:
                    _RECEIVERS.give_buffer(views)
            if n:
                stalled_since = None
                continue
            now = time.monotonic()
            stalled_since = stalled_since or now
            if self.stop.is_set() or now - stalled_since > STALL_SECONDS:
                raise ClientDisconnect()
            poller.poll(POLL_SECONDS * 1000)


def _recv(sock: socket.socket, view: memoryview) -> int:
    """Bytes read into ``view``, 0 when none are waiting; ``ClientDisconnect`` at the
    connection's end or on an error (Rule 5)."""
    try:
        n = sock.recv_into(view)
    except BlockingIOError:
        return 0
    except OSError:
        raise ClientDisconnect() from None
    if n == 0:
        raise ClientDisconnect()
    return n
