"""Blob files sent straight to a connection's socket with ``sendfile(2)``.

    app = with_transport(app)                  # what uvicorn serves (control/server.py)
    sender = RawSender.attach(request.scope)   # None: use the ASGI body instead
    await sender.chunk(store, [(sha, size), ...])   # one chunk of records, in a thread

A bundle download (``blobs.py`` Rule 6) through ASGI copies every blob twice in this
process (file -> buffer, buffer -> socket), allocates its buffers fresh and hops
threads per piece; with 3 edges fetching a first push of the Python docs (3 x 67 MB)
that was about half of the control plane's CPU. Here the kernel moves the bytes from
the page cache to the socket.

Rules:
1. Only on a plain TCP connection served by uvicorn: ``with_transport`` puts the
   connection's transport in ``scope["extensions"][TRANSPORT]`` (reached through
   uvicorn's ``send``, a method of its request cycle); TLS, other servers and tests
   through ASGI transports get ``None`` and the ASGI path.
2. The response is chunked (``Transfer-Encoding: chunked``, so uvicorn never counts
   bytes it did not send): the server writes the head and the last chunk, and each
   ``chunk()`` writes one chunk of whole records, ``<size hex>\\r\\n`` + records +
   ``\\r\\n``, from a worker thread: per blob its record header (``send`` with
   ``MSG_MORE``: it leaves in the segment of the blob's first bytes) and its bytes
   (``os.sendfile`` from the blob's file, or its pack from the blob's offset:
   ``DirBlobStore.open_run``). Four system calls a blob (open, send, sendfile,
   close), no copy through Python; records that lie one after another in a headed
   pack (a bundle upload's, ``control/dirblobs.py`` Rule 6) go as one span: the
   first header sent, then one ``sendfile`` for its blob and every record after it.
3. Raw writes start only when the transport has nothing buffered, and the event loop
   writes nothing on that connection until the chunk is done (one response at a time
   on an HTTP/1.1 connection).
4. The socket is written through a duplicate descriptor, so a connection that closes
   meanwhile never lets the thread write to a reused descriptor number. It stays
   non-blocking (the event loop's): a full socket buffer is waited for with ``poll``,
   at most ``STALL_SECONDS`` in all without progress.
5. At most ``SENDERS`` at once, in threads of their own (a slow client keeps one
   waiting, which must not hold up the request handlers' pool); more use the ASGI path.
6. A failure after bytes were sent cannot be put in the body: the connection is
   closed (the client sees the bundle cut off, without its last chunk). A client that
   went away ends the response quietly; a blob that vanished raises. Cancelled (the
   server stopping), the thread stops at its next blob or poll (``POLL_SECONDS``).
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from owncdn.control.blobs import BlobError
from owncdn.core.content.bundle import header

__all__ = ["CYCLE", "SENDERS", "TRANSPORT", "RawSender", "ThreadPool", "with_transport"]

TRANSPORT = "owncdn.transport"
CYCLE = "owncdn.cycle"  # uvicorn's request cycle, for request bodies read raw (rawbody.py)
SENDERS = 64
STALL_SECONDS = 60.0
POLL_SECONDS = 1.0
_MORE = getattr(socket, "MSG_MORE", 0)


def with_transport(app):
    """``app`` with each HTTP request's transport (and uvicorn's request cycle, for
    ``rawbody.py``) in its scope (Rule 1)."""

    async def asgi(scope, receive, send):
        if scope["type"] == "http":
            cycle = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            if transport is not None:
                extensions = scope.setdefault("extensions", {})
                extensions[TRANSPORT], extensions[CYCLE] = transport, cycle
        await app(scope, receive, send)

    return asgi


class ThreadPool:
    """Threads made on first use, at most ``limit`` of them, and the calls using them
    (``active``; servers in several threads of a process share them): the sending
    threads here (Rule 5) and the receiving ones of ``rawbody.py``."""

    def __init__(self, limit: int, name: str) -> None:
        self.limit, self.name = limit, name
        self.executor: ThreadPoolExecutor | None = None
        self.active = 0
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.active >= self.limit:
                return False
            self.active += 1
            return True

    def give(self) -> None:
        with self.lock:
            self.active -= 1

    def submit(self, fn, *args) -> asyncio.Future:
        with self.lock:
            if self.executor is None:
                self.executor = ThreadPoolExecutor(self.limit, thread_name_prefix=self.name)
        return asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


_POOL = ThreadPool(SENDERS, "blob-send")


class RawSender:
    """Chunks of records written straight to one connection's socket (Rules 2-6)."""

    def __init__(self, transport) -> None:
        self.transport = transport
        self.fd = transport.get_extra_info("socket").fileno()
        self.stop = threading.Event()
        self.done = False

    def __repr__(self) -> str:
        return f"<RawSender fd={self.fd}{' done' if self.done else ''}>"

    @classmethod
    def attach(cls, scope) -> RawSender | None:
        """A sender for this request's connection, or None (Rules 1, 3, 5)."""
        transport = scope.get("extensions", {}).get(TRANSPORT)
        if transport is None or not hasattr(os, "sendfile"):
            return None
        if transport.is_closing() or transport.get_extra_info("sslcontext") is not None:
            return None
        sock = transport.get_extra_info("socket")
        if sock is None or sock.type != socket.SOCK_STREAM or not _POOL.take():
            return None
        return cls(transport)

    def ready(self) -> bool:
        """Whether raw writes may start now: nothing buffered on the transport (Rule 3)."""
        return not self.transport.is_closing() and self.transport.get_write_buffer_size() == 0

    async def records(self, store, items: list[tuple[str, int]]) -> bool:
        """Send the bundle records of ``items`` (sha, size) as one chunk (Rule 2), in
        the order they lie in the store's packs (``DirBlobStore.in_pack_order``)."""
        return await self.chunk(store, [(header(sha, size), sha, 0, size) for sha, size in store.in_pack_order(items)])

    async def chunk(self, store, parts: list[tuple[bytes, str, int, int]]) -> bool:
        """Send one chunk of ``parts`` (bytes before, blob, offset, count); False when
        the client went away (the connection is closed). Raises what the store
        raised, the connection closed (Rule 6)."""
        if not parts:
            return True  # an empty chunk would end the body
        future = _POOL.submit(_send_chunk, self.fd, store, parts, self.stop)
        try:
            await future
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            await self.cut()
            return False
        except BaseException:
            self.stop.set()
            self.transport.close()
            raise
        return True

    async def cut(self) -> None:
        """Close the connection before the response's end (the client sees a cut body)."""
        self.transport.close()
        await asyncio.sleep(0)  # the connection's end reaches the server before the response ends

    def close(self) -> None:
        if not self.done:
            self.done = True
            _POOL.give()


def _send_chunk(fd: int, store, parts: list[tuple[bytes, str, int, int]], stop: threading.Event) -> None:
    """Rule 2, in a sending thread."""
    out = _Socket(fd, stop)
    try:
        prefix = b"%x\r\n" % sum(len(head) + count for head, _, _, count in parts)
        i = 0
        while i < len(parts):
            if stop.is_set():
                raise TimeoutError("stopped")
            head, sha = parts[i][:2]
            blob, at, count, n = store.open_run(parts, i)
            try:
                if prefix or head:
                    out.send(prefix + head)
                out.sendfile(blob, at, count, sha)
            finally:
                os.close(blob)
            prefix = b""
            i += n
        out.send(b"\r\n", more=False)
    finally:
        out.close()


class _Socket:
    """A duplicate of the connection's descriptor, written until done (Rule 4)."""

    def __init__(self, fd: int, stop: threading.Event) -> None:
        self.sock = socket.socket(fileno=os.dup(fd))
        self.fd = self.sock.fileno()
        self.stop = stop
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLOUT)
        self.stalled_since: float | None = None

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes, more: bool = True) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view, _MORE if more else 0):]
                self.stalled_since = None
            except BlockingIOError:
                self._wait()

    def sendfile(self, blob: int, offset: int, count: int, sha: str) -> None:
        end = offset + count
        while offset < end:
            try:
                sent = os.sendfile(self.fd, blob, offset, end - offset)
            except BlockingIOError:
                self._wait()
                continue
            if sent == 0:
                raise BlobError(f"blob {sha[:12]} ended at byte {offset}, before {end}")
            offset += sent
            self.stalled_since = None

    def _wait(self) -> None:
        now = time.monotonic()
        if self.stalled_since is None:
            self.stalled_since = now
        elif now - self.stalled_since > STALL_SECONDS:
            raise TimeoutError(f"the client read nothing for {STALL_SECONDS:g}s")
        if self.stop.is_set():
            raise TimeoutError("stopped")
        self.poller.poll(POLL_SECONDS * 1000)
