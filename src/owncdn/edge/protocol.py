"""The edge's HTTP/1.1 server connection: parsing, limits, pipelining, flow control.

Rules:
1. Requests are parsed by llhttp (httptools) in strict mode; every framing it rejects
   (Content-Length with Transfer-Encoding, duplicate Content-Length, obsolete line
   folding, bare CR/LF, NUL, bad chunk sizes) is answered 400 and the connection is
   closed. Nothing ambiguous is ever forwarded: a request whose body turns out to be
   badly framed after its head was accepted is withdrawn (its task cancelled, its body
   failed so it never looks complete) and the 400 answers it instead.
2. Limits: a request line longer than `max_request_line` gets 414, header lines
   totalling more than `max_header_bytes` get 431, a head not complete within
   `header_timeout` gets 408; each closes the connection.
3. Pipelined requests are answered strictly in order: a request is handed to the
   application only when the previous response is complete.
4. The application's `handle(request)` either answers synchronously (cache hits:
   one receive, one send, no task) and returns None, or returns a coroutine that the
   connection runs as a task, or a future (a large body still going out, Rule 7) that
   it waits for; either way the next request waits until it is done.
5. Request bodies stream: chunks are queued on the request and reading pauses while
   more than `BODY_HIGH_WATER` bytes wait to be consumed.
6. Clients repeat themselves byte for byte (same URL, same headers). A GET or HEAD
   head without a body that arrives alone in one read, and that llhttp accepted and
   the checks above passed, is remembered by its bytes; the same bytes arriving at a
   message boundary later are replayed without parsing. Parsing is deterministic, so
   this changes nothing but the cost. The parsed Headers are shared and never mutated.
7. A disk-tier body goes out with sendfile on a duplicate of the socket's descriptor,
   its head first with a plain send on the same descriptor. (MSG_MORE on the head, so
   head and body share segments, was measured worse: 1 MiB hits 120 -> 180-234 us
   CPU, 64 KiB hits 15 -> 48 us.) After each SENDFILE_CHUNK the loop takes a turn
   (other connections run) and the next chunk follows; only when the socket is full
   does the connection watch it for writability, until the body is out. nginx works
   the same way (`sendfile_max_chunk`, posted write events); watching after every
   chunk cost about 18 epoll_ctl and 3 ioctl calls per 1 MiB hit. A body cut short
   (the waiting request was cancelled, or sendfile failed) closes the connection.
8. A connection that sends a disk-tier body has TCP_NOTSENT_LOWAT (NOTSENT_LOWAT) set
   on its socket, for the rest of its life (the kernel reports it writable, and lets a
   send queue more, only while less than that waits unsent). Measured, not derived:
   without it much of the edge's kernel time on 1 MiB hits was the client's side of
   the loopback. perf stacks, share of the edge's samples (nginx in the same run):
   under release_sock 11.0% (4.6%), mostly ACKs that arrived during a sendfile
   pushing queued data into the client's socket; tcp_data_queue 10.5% (3.8%);
   sock_def_readable (waking the client) 10.4% (3.2%). With it, 256 KiB chunks:
   4.8%, 4.0%, 3.2% (nginx 7.1%, 5.4%, 4.9%); CPU per hit, means of alternating
   runs, 138 -> 102 us.
   64 KiB hits unchanged (15.7 -> 15.3-15.9 us). With it, larger chunks no longer
   flood the receiver, hence SENDFILE_CHUNK's 1 MiB: a 1 MiB body then goes out in
   one sendfile call (1.04 calls per hit, a few EAGAIN).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import deque
from time import perf_counter
from dataclasses import dataclass
from typing import Any

import httptools

from owncdn.core.http.headers import Headers

BODY_HIGH_WATER = 1 << 20
SNDBUF_MAX = 4 << 20
# Disk-tier bodies go out with sendfile this much per turn of the event loop (Rule 7).
# Measured on 1 MiB hits (CPU per hit, nginx in the same run in brackets). Before
# Rule 8: 1 MiB at once 380 us [143] (it floods a receiver on the same machine),
# 128 KiB 235 us [158], 256 KiB 124 us [113], 512 KiB the same as 256 KiB. With
# Rule 8 (alternating runs): 256 KiB 93.6-109 us, 512 KiB 107-110, 1 MiB 84.0-92.5;
# a 1 MiB body then goes out in one sendfile call (1.04 calls per hit).
SENDFILE_CHUNK = 1 << 20
# At most this many bytes wait unsent in the kernel on a connection that sends a disk-tier
# body (Rule 8). 1 MiB hits with 256 KiB chunks, CPU per hit, alternating runs: unset
# 115-230 us, 256 KiB 113-140, 64 KiB 105-114, 16 KiB 93-118, 4 KiB and 1 byte the
# same as 16 KiB.
NOTSENT_LOWAT = 16 << 10
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)  # Linux's number
HEAD_MEMO_ENTRIES = 4096
HEAD_MEMO_MAX_BYTES = 2048
# Request heads llhttp accepted, by their exact bytes -> the parsed request (Rule 6).
_HEAD_MEMO: dict[bytes, tuple] = {}


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_line: int = 8192
    max_header_bytes: int = 65536
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0


class _Reject(Exception):
    """Raised inside a parser callback to answer with a given status."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


class BodyStream:
    """A request body as it arrives, consumed with `async for`."""

    __slots__ = ("conn", "chunks", "buffered", "complete", "failed", "waiter", "received")

    def __init__(self, conn: "HttpConnection | None") -> None:
        self.conn = conn
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.received = 0
        self.complete = False
        self.failed = False
        self.waiter: asyncio.Future | None = None

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        self.received += len(data)
        if self.buffered > BODY_HIGH_WATER and self.conn is not None:
            self.conn.pause_reading()
        self._wake()

    def finish(self) -> None:
        self.complete = True
        self._wake()

    def fail(self) -> None:
        """The body's framing is invalid: readers get an error, never a clean end."""
        self.failed = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def __aiter__(self):
        while True:
            while self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.conn is not None and self.buffered < BODY_HIGH_WATER // 4:
                    self.conn.resume_reading()
                yield chunk
            if self.complete:
                return
            if self.failed:
                raise ConnectionError("the request body is badly framed")
            if self.conn is not None and self.conn.closed:
                raise ConnectionError("client went away while sending the body")
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    async def drain(self) -> None:
        """Read and drop the rest of the body (before answering without it)."""
        async for _ in self:
            pass


class Request:
    """One parsed request head plus its streaming body and what the log needs."""

    __slots__ = (
        "conn", "method", "target", "version", "headers", "host", "keep_alive", "body",
        "start", "id", "status", "sent", "cache", "service", "origin_ms", "ttfb",
        "reject", "expect_continue", "has_body", "wall", "end", "added",
        "origin_bytes",  # body bytes this request fetched from an origin (accesslog.py rule 5)
        "traceparent",  # set only when the request goes to an origin (edge/tracing.py)
    )

    def __init__(self, conn, method: str, target: str, version: str, headers: Headers) -> None:
        self.conn = conn
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.host = ""
        self.keep_alive = True
        self.body: BodyStream | None = None
        self.start = 0.0
        self.id = ""
        self.status = 0
        self.sent = 0
        self.cache = "-"
        self.service = "-"
        self.origin_ms: float | None = None
        self.origin_bytes = 0  # set by requests that fetched from an origin (accesslog.py rule 5)
        self.ttfb: float | None = None
        self.reject: _Reject | None = None
        self.expect_continue = False
        self.has_body = False
        self.added = b""  # response fields the edge adds to this request (HSTS over TLS)
        self.traceparent: str | None = None  # set when the request goes to an origin (edge/tracing.py)

    def __repr__(self) -> str:
        return f"<Request {self.id} {self.method} {self.host}{self.target} status={self.status} cache={self.cache}>"


_NO_BODY = BodyStream(None)
_NO_BODY.complete = True


def _rejected(conn, status: int, reason: str) -> Request:
    req = Request(conn, "-", "-", "1.1", Headers())
    req.reject = _Reject(status, reason)
    req.keep_alive = False
    return req


class HttpConnection(asyncio.Protocol):
    """Server side of one client connection."""

    scheme = "http"  # "https" once connection_made sees TLS
    h2 = False  # an HTTP/2 stream (edge/h2.py) says True

    def __init__(self, app: Any, limits: Limits, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.limits = limits
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client_addr = "-"
        self.closed = False
        self.busy = False
        self.pending: deque[Request] = deque()
        self.current: Request | None = None
        self.task: asyncio.Task | None = None
        self.stop_parsing = False
        self.head_started: float | None = None
        self.idle_since = loop.time()
        self._url = b""
        self._raw: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._hosts = 0
        self._mid = False
        self._sndbuf = 0
        self._sock: socket.socket | None = None  # for sendfile (``_socket``); never with TLS
        self._fd = -1  # its descriptor
        self._sending: tuple | None = None  # a disk-tier body going out: file, offset, count, future
        self._watching = False  # waiting for the socket to become writable (Rule 7)
        self._candidate: bytes | None = None
        self._reading_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("busy" if self.busy else "idle")
        return f"<HttpConnection {self.client_addr} {state} pending={len(self.pending)}>"

    # -- asyncio.Protocol ----------------------------------------------------
    def connection_made(self, transport) -> None:
        # TCP_NODELAY is already on: uvloop and asyncio set it on every TCP transport.
        # The socket for sendfile is looked up when first needed (``_socket``): uvloop
        # builds a Python socket object for each lookup.
        self.transport = transport
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        peer = transport.get_extra_info("peername")
        self.client_addr = peer[0] if isinstance(peer, tuple) else "local"
        self.app.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._sock is not None:
            self._sent(False)
            self._sock.close()
        self.app.connections.discard(self)
        if self.current is not None and self.current.body is not None:
            self.current.body._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionError("client went away"))
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.parser = None  # its callbacks point back here: no cycle left for the collector

    def data_received(self, data: bytes) -> None:
        if self.stop_parsing:
            return
        if not self._mid and data[-4:] == b"\r\n\r\n" and len(data) <= HEAD_MEMO_MAX_BYTES:
            seen = _HEAD_MEMO.get(data)
            if seen is not None:
                self._replay(seen)
                return
            if data.find(b"\r\n\r\n") == len(data) - 4:
                self._candidate = data  # exactly one head: remember it if it parses cleanly
        try:
            self.parser.feed_data(data)
        except _Reject as rej:
            self._protocol_error(rej.status, rej.reason)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                self._protocol_error(cause.status, cause.reason)
            else:
                self._protocol_error(400, "malformed request")
        except httptools.HttpParserUpgrade:
            # Upgrades (WebSocket) are not proxied: the request was answered normally
            # and the connection closes after it.
            self.stop_parsing = True
            if self.pending:
                self.pending[-1].keep_alive = False
        except httptools.HttpParserError as exc:
            self._protocol_error(400, _parser_reason(exc))
        finally:
            self._candidate = None

    def _replay(self, seen: tuple) -> None:
        """A request head byte-identical to one llhttp accepted before (Rule 6)."""
        method, target, version, headers, keep_alive, host = seen
        req = Request(self, method, target, version, headers)
        req.start = perf_counter()
        req.keep_alive = keep_alive
        req.host = host
        req.body = _NO_BODY
        if self.busy or self.pending or self.closed:
            self.pending.append(req)
            if not self.busy:
                self._next()
            return
        result = self.app.handle(req)  # nothing queued: straight to the application
        if result is not None:
            self._wait_for(result)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # -- llhttp callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        self._mid = True
        self.head_started = self.loop.time()
        self._url = b""
        self._raw = []
        self._header_bytes = 0
        self._hosts = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_request_line:
            raise _Reject(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.limits.max_header_bytes:
            raise _Reject(431, "request header fields too large")
        self._raw.append((name, value))
        if len(name) == 4 and name.lower() == b"host":
            self._hosts += 1

    def on_headers_complete(self) -> None:
        self.head_started = None
        parser = self.parser
        version = parser.get_http_version()
        method = parser.get_method().decode("ascii")
        req = Request(self, method, self._url.decode("latin-1"), version, Headers.from_raw(self._raw))
        req.start = perf_counter()
        req.keep_alive = parser.should_keep_alive()
        self._check_head(req)
        req.body = BodyStream(self)
        if "transfer-encoding" not in req.headers and req.headers.get("content-length", "0") == "0":
            req.body.complete = True  # no body follows the head
            if self._candidate is not None and method in ("GET", "HEAD") and _memoable(req.headers):
                if len(_HEAD_MEMO) >= HEAD_MEMO_ENTRIES:
                    _HEAD_MEMO.clear()
                _HEAD_MEMO[self._candidate] = (method, req.target, version, req.headers, req.keep_alive, req.host)
        self.current = req
        self.pending.append(req)
        if not self.busy:
            self._next()

    def on_body(self, body: bytes) -> None:
        req = self.current
        if req is not None and req.body is not None:
            req.has_body = True
            req.body.feed(body)

    def on_message_complete(self) -> None:
        req = self.current
        if req is not None and req.body is not None:
            req.body.finish()
        self.current = None
        self._mid = False
        self.idle_since = self.loop.time()

    def _check_head(self, req: Request) -> None:
        """Framing and Host rules llhttp leaves to us (RFC 9112 §3.2, §6.1)."""
        headers = req.headers
        if req.version[0] != "1":
            raise _Reject(505, f"HTTP/{req.version} is not supported on this port")
        if self._hosts > 1:
            raise _Reject(400, "more than one Host header")
        if req.version == "1.0" and "transfer-encoding" in headers:
            raise _Reject(400, "Transfer-Encoding in an HTTP/1.0 request")
        host = headers.get("host")
        if host is None:
            if req.version != "1.0":
                raise _Reject(400, "missing Host header")
            host = ""
        target = req.target
        if target[:1] != "/":
            if target.startswith(("http://", "https://")):
                rest = target.split("://", 1)[1]
                host, _, path = rest.partition("/")
                req.target = "/" + path
            elif not (target == "*" and req.method == "OPTIONS"):
                raise _Reject(400, "request target must start with /")
        req.host = host
        expect = headers.get("expect")
        if expect is not None:
            if expect.lower() != "100-continue":
                raise _Reject(417, "only 'Expect: 100-continue' is supported")
            req.expect_continue = True

    # -- dispatch ----------------------------------------------------------------
    def _protocol_error(self, status: int, reason: str) -> None:
        self.stop_parsing = True
        self.head_started = None
        if self.current is not None:
            self._withdraw(self.current)
        self.pending.append(_rejected(self, status, reason))
        if not self.busy:
            self._next()

    def _withdraw(self, req: Request) -> None:
        """The body of `req` broke after its head was accepted: the 400 replaces it."""
        if req.body is not None:
            req.body.fail()
        if req.status:
            return  # already answering; the connection closes after the 400
        if req in self.pending:
            self.pending.remove(req)
        elif self.task is not None:
            self.task.cancel()  # `req` is the one running: it may have reached the origin

    def _next(self) -> None:
        while self.pending and not self.busy and not self.closed:
            req = self.pending.popleft()
            if req.reject is not None:
                self.app.reject(req, req.reject.status, req.reject.reason)
                self.close()
                return
            result = self.app.handle(req)
            if result is not None:
                self._wait_for(result)
                return

    def _wait_for(self, result) -> None:
        """Rule 4: a coroutine runs as a task; a future (a body going out) is waited for."""
        self.busy = True
        self.task = result if isinstance(result, asyncio.Future) else self.loop.create_task(result)
        self.task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self.busy = False
        self.task = None
        if not task.cancelled() and task.exception() is not None:
            self.app.crashed(task.exception())
            self.close()
            return
        if not self.closed:
            self._next()

    # -- used by the application -----------------------------------------------
    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def writelines(self, parts) -> None:
        if not self.closed:
            self.transport.writelines(parts)

    def send_file(self, head: bytes, body):
        """Write `head` and a FileSlice. A memory-file body goes out from its mapping
        (no copy in Python). A disk-tier body goes out with sendfile, SENDFILE_CHUNK at
        a time (Rule 7): returns None when the kernel took it all at once, or a future
        that resolves (True when sent, False when the connection failed) once the rest
        has gone out; the caller waits for it before the connection answers anything else.

        Why not sendfile for memory files too: measured here (1 MiB hits, wrk on the
        same machine), sendfile from a memfd cut the edge's CPU per hit from about 210
        to 115 us but the receiver then spent its core in the kernel and requests/s
        fell from about 4,700 to 2,300; sendfile from a disk-tier file (page cache)
        does not have that effect: about 6,000 requests/s at 165 us. See bench/README.md.
        """
        if self.closed:
            return None
        transport = self.transport
        file, offset, count = body.file, body.offset, body.count
        if not file.on_disk or self._socket() is None:
            self.grow_send_buffer(count)
            transport.writelines((head, file.view[offset:offset + count]))
            return None
        if transport.get_write_buffer_size():  # a slow client: let the transport queue it
            transport.writelines((head, file.view[offset:offset + count]))
            return None
        try:
            put = self._sock.send(head)  # not MSG_MORE: see Rule 7
        except BlockingIOError:
            put = 0
        except OSError:
            self.close()
            return None
        if put < len(head):  # the socket is full already: the transport queues the rest
            transport.writelines((head[put:], file.view[offset:offset + count]))
            return None
        try:
            sent = _sendfile(self._fd, file.fd, file.base + offset, count)
        except ConnectionError:
            self.close()
            return None
        if sent == count:
            return None
        done = self.loop.create_future()
        self._sending = (file, offset + sent, count - sent, done)
        self.loop.call_soon(self._send_more)
        return done

    def _socket(self) -> socket.socket | None:
        """A socket object on a duplicate of the TCP socket's descriptor, for the head
        and sendfile (the transport's own socket object takes neither); None with TLS
        or without a socket. Built on first use: most connections never need it."""
        if self._sock is None and self.scheme == "http" and self.transport is not None and not self.closed:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                self._sock = socket.socket(fileno=os.dup(sock.fileno()))
                self._fd = self._sock.fileno()
                try:  # Rule 8
                    self._sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
                except OSError:
                    pass
        return self._sock

    def _send_more(self) -> None:
        """The next SENDFILE_CHUNK of a disk-tier body (Rule 7)."""
        state = self._sending
        if state is None:
            return
        file, offset, count, done = state
        if done.done() or self.closed:  # cancelled, or the client went away
            self.close()  # part of the body went out: the connection cannot go on
            self._sent(False)
            return
        try:
            sent = _sendfile(self._fd, file.fd, file.base + offset, count)
        except ConnectionError:
            self.close()
            self._sent(False)
            return
        if sent == count:
            self._sent(True)
            return
        self._sending = (file, offset + sent, count - sent, done)
        if self._watching:
            return  # the writer callback runs again when the socket takes more
        if sent:
            self.loop.call_soon(self._send_more)  # writable: another turn of the loop, then more
        else:
            self._watching = True  # full: wait for writability (the dup's descriptor, so the
            self.loop.add_writer(self._fd, self._send_more)  # transport's watch stays)

    def _sent(self, ok: bool) -> None:
        state, self._sending = self._sending, None
        if self._watching:
            self._watching = False
            self.loop.remove_writer(self._fd)
        if state is not None and not state[3].done():
            state[3].set_result(ok)

    def grow_send_buffer(self, size: int) -> None:
        """Let the kernel take a large body in fewer writes (once per connection)."""
        if self._sndbuf < size and self._sndbuf < SNDBUF_MAX:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                self._sndbuf = min(size + 65536, SNDBUF_MAX)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._sndbuf)
                except OSError:
                    pass

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionError("client went away")
        if self._write_paused:
            self._drain_waiter = self.loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def finish(self, req: Request) -> None:
        """The response to `req` is complete."""
        self.idle_since = self.loop.time()
        if not req.keep_alive:
            self.close()
        elif req.body is not None and not req.body.complete:
            # The body was not read and is still arriving: we cannot find the next
            # request's start without reading it, so close (RFC 9112 §9.3).
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.stop_parsing = True
            if self.transport is not None:
                self.transport.close()

    def pause_reading(self) -> None:
        if not self._reading_paused and not self.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def check_timeouts(self, now: float) -> None:
        """Called about once a second by the server's sweeper."""
        if self.head_started is not None and now - self.head_started > self.limits.header_timeout:
            if self.current is None:
                self._protocol_error(408, "request head not received in time")
        elif not self.busy and not self.pending and self.current is None:
            if now - self.idle_since > self.limits.keepalive_timeout:
                self.close()


def _sendfile(sock: int, src: int, offset: int, count: int) -> int:
    """Bytes sent; 0 when the socket is full. A file that ends early (sendfile says 0)
    fails the body rather than waiting forever for bytes that will never come."""
    try:
        sent = os.sendfile(sock, src, offset, min(count, SENDFILE_CHUNK))
    except BlockingIOError:
        return 0
    except OSError as exc:
        raise ConnectionError(f"sendfile: {exc.strerror}") from None
    if not sent:
        raise ConnectionError("sendfile: the file ended before the body did")
    return sent


def _memoable(headers: Headers) -> bool:
    return "upgrade" not in headers and "expect" not in headers


def _parser_reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"malformed request: {text}"
