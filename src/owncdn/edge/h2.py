"""HTTP/2 at the edge (RFC 9113) on core/http/h2server.py, feeding the same `Edge`.

Rules:
1. Spoken when TLS negotiated ALPN `h2` (edge/alpn.py); no cleartext h2c, no push.
2. Each stream becomes a `protocol.Request` (version "2") whose `conn` is its
   `H2Stream`. The application answers exactly as it does on HTTP/1.1: it writes an
   HTTP/1.1-shaped head and then the body to `req.conn`, awaits `drain()`, and calls
   `finish(req)`. The stream turns the head into HEADERS (`:status`, names
   lowercased, connection-specific fields dropped, RFC 9113 §8.2.2) and the body
   into DATA frames, so cache, rules, purge, access log and metrics are one code
   path for both protocols. A 1xx head goes out as an informational HEADERS frame.
   A request without a body whose header block the connection has seen before
   (h2server.py Rule 5) gets the same `Headers` object as last time: never mutated,
   shared as on HTTP/1.1 (protocol.py Rule 6). The head is HPACK-encoded by
   `core/http/hpack_out.py`'s `encode_head`, which remembers each line's encoding.
3. Flow control: DATA goes out only within the peer's stream and connection
   windows and its maximum frame size; the rest waits in the stream's queue (bytes
   or memoryviews of stored bodies, not copied) until WINDOW_UPDATE. The
   application's `drain()` waits while its stream holds more than STREAM_HIGH_WATER
   bytes or the socket is paused.
4. Request bodies stream into the request's `BodyStream`; received DATA is
   acknowledged (WINDOW_UPDATE) as it arrives, except while the body holds more
   than `protocol.BODY_HIGH_WATER` unread bytes, so a slow origin closes the
   client's window. A body announced without Content-Length (legal in HTTP/2) is
   marked `Transfer-Encoding: chunked` on the request so it is forwarded like an
   HTTP/1.1 chunked body.
5. At most MAX_CONCURRENT_STREAMS streams are open at once (SETTINGS); more is a
   connection error. Frames, stream states, flow-control windows and the checks of
   the client's fields (RFC 9113 §8.2, §8.3) are `core/http/h2server.py`'s and
   `h2fields.py`'s; this module does the I/O and maps streams to requests.
6. RST_STREAM from the client cancels the stream's task and drops its output. A
   protocol error: GOAWAY with its code, then close. GOAWAY from the client: open
   streams finish, then the connection closes. No open stream for
   `keepalive_timeout`: GOAWAY (NO_ERROR) and close; so does shutdown. Open streams
   with output waiting and nothing taken by the client for `keepalive_timeout`
   (windows that never reopen): the connection is closed. A response
   complete before its request body: RST_STREAM (NO_ERROR), RFC 9113 §8.1.
7. Request heads are checked as on HTTP/1.1: `:path` longer than max_request_line
   -> 414, fields over max_header_bytes -> 431 (advertised as
   SETTINGS_MAX_HEADER_LIST_SIZE; a head over twice that is a connection error),
   CONNECT -> 405. `:authority` is the Host; cookie fields are joined with "; "
   (RFC 9113 §8.2.3).
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from time import perf_counter

from owncdn.core.http import h2frames as frames
from owncdn.core.http.h2fields import RequestHead
from owncdn.core.http.h2server import ServerConnection
from owncdn.core.http.headers import Headers
from owncdn.core.http.hpack_out import encode_head, encode_lines, encode_stored
from owncdn.edge.protocol import _NO_BODY, BodyStream, Limits, Request, _Reject

MAX_CONCURRENT_STREAMS = 128
INITIAL_WINDOW = 1 << 20  # what a client may send on one stream before we acknowledge
CONNECTION_WINDOW = 8 << 20
STREAM_HIGH_WATER = 256 << 10
_END = b"\r\n\r\n"


class H2Stream:
    """One stream, as the application's `req.conn` (Rules 2-4)."""

    __slots__ = (
        "owner", "id", "client_addr", "req", "task", "closed", "_head", "block", "no_body",
        "headers_sent", "out", "queued", "ended", "_drain", "_paused", "_unacked",
    )
    scheme = "https"
    h2 = True  # edge/app.py `_hit` hands a stored head over as it is (`write_head`)

    def __init__(self, owner: "H2Connection", stream_id: int) -> None:
        self.owner = owner
        self.id = stream_id
        self.client_addr = owner.client_addr
        self.req: Request | None = None
        self.task: asyncio.Task | None = None
        self.closed = False  # reset, or the connection is gone: output is dropped
        self._head = b""
        self.block: bytes | None = None  # the response head, HPACK-encoded
        self.no_body = False
        self.headers_sent = False
        self.out: deque = deque()
        self.queued = 0
        self.ended = False
        self._drain: asyncio.Future | None = None
        self._paused = False
        self._unacked = 0

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("ended" if self.ended else "open")
        return f"<H2Stream {self.id} {state} queued={self.queued}>"

    # -- the response, as the application writes it ---------------------------
    def write(self, data) -> None:
        if self.closed or not data:
            return
        if self.block is None:
            self._head_bytes(data)
        elif not self.no_body:
            self._queue(data)

    def writelines(self, parts) -> None:
        for part in parts:
            self.write(part)

    def write_head(self, stored: bytes, fields: bytes) -> None:
        """A stored object's head and this response's own header lines (ending with the
        blank line): the stored part's encoding is remembered whole (hpack_out Rule 7)."""
        if self.closed or self.block is not None:
            return
        status, block = encode_stored(stored)
        self._head_block(status, block + encode_lines(fields))

    def _head_bytes(self, data) -> None:
        buf = self._head + bytes(data) if self._head else bytes(data)
        end = buf.find(_END)
        if end < 0:
            self._head = buf
            return
        self._head = b""
        self._head_block(*encode_head(buf[:end]))
        rest = buf[end + 4:]
        if rest:
            self.write(rest)

    def _head_block(self, status: int, block: bytes) -> None:
        if 100 <= status < 200:
            self.owner.informational(self, block)
        else:
            self.block = block
            self.no_body = status in (204, 304) or (self.req is not None and self.req.method == "HEAD")
            self.owner.schedule(self)

    def _queue(self, data) -> None:
        if len(data) > 16384 and type(data) is bytes:
            data = memoryview(data)
        self.out.append(data)
        self.queued += len(data)
        self.owner.schedule(self)

    def send_file(self, head: bytes, body):
        """A stored body: queued from its mapping (Rule 3); nothing left to await."""
        self.write(head)
        file = body.file
        self.write(file.view[body.offset:body.offset + body.count])
        return None

    def grow_send_buffer(self, size: int) -> None:
        pass

    async def drain(self) -> None:
        while True:
            if self.closed:
                raise ConnectionError("the stream was reset or the client went away")
            if self.queued <= STREAM_HIGH_WATER and not self.owner.write_paused:
                return
            self._drain = self.owner.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    def wake(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def finish(self, req: Request) -> None:
        """The response is complete: END_STREAM goes out after the queued DATA."""
        self.ended = True
        if self.block is None and not self.closed:
            self.owner.reset(self, frames.INTERNAL_ERROR)  # no head was written
            return
        self.owner.schedule(self)

    def close(self) -> None:
        """The application gives up on the response (origin failure mid-body)."""
        if not self.closed:
            self.owner.reset(self, frames.INTERNAL_ERROR)

    # -- the request body's flow control (Rule 4) --------------------------------
    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if self._unacked:
                self.owner.acknowledge(self, self._unacked)
                self._unacked = 0

    def received(self, data: bytes, flow_length: int) -> None:
        body = self.req.body if self.req is not None else None
        if body is not None and body is not _NO_BODY and not body.complete:
            body.feed(data)
        if self._paused:
            self._unacked += flow_length
        else:
            self.owner.acknowledge(self, flow_length)

    def lost(self) -> None:
        """Reset by the client, or the connection is gone."""
        self.closed = True
        self.out.clear()
        self.queued = 0
        req = self.req
        if req is not None and req.body is not None and not req.body.complete:
            req.body.fail()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)  # drain() then raises
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def task_done(self, task: asyncio.Task) -> None:
        self.task = None
        if not task.cancelled() and task.exception() is not None:
            self.owner.app.crashed(task.exception())
            self.close()


class H2Connection(asyncio.Protocol):
    """Server side of one HTTP/2 connection (Rules 1, 5-7)."""

    scheme = "https"

    def __init__(self, app, limits: Limits, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.limits = limits
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.client_addr = "-"
        self.h2: ServerConnection | None = None
        self.streams: dict[int, H2Stream] = {}
        self.sending: dict[int, H2Stream] = {}  # streams with output not yet framed
        self.closed = False
        self.write_paused = False
        self.goaway_received = False
        self.idle_since = loop.time()
        self.active_at = self.idle_since  # last bytes in or out
        self._receiving = False
        self._flush_planned = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<H2Connection {self.client_addr} {state} streams={len(self.streams)}>"

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        self.client_addr = peer[0] if isinstance(peer, tuple) else "local"
        # Heads over max_header_bytes get a 431; up to twice that is decoded (Rule 7).
        conn = self.h2 = ServerConnection(
            self, max_concurrent=MAX_CONCURRENT_STREAMS, initial_window=INITIAL_WINDOW,
            connection_window=CONNECTION_WINDOW, max_header_list=self.limits.max_header_bytes)
        transport.write(conn.data_to_send())
        self.app.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.app.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.lost()
        self.streams.clear()
        self.sending.clear()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.flush()
        for stream in list(self.streams.values()):
            stream.wake()  # drain() waits on the socket too

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.active_at = self.loop.time()
        self._receiving = True
        try:
            self.h2.receive(data)  # calls the on_* methods below
        except Exception as exc:  # a bug below: the connection ends with INTERNAL_ERROR
            self.app.crashed(exc)
        finally:
            self._receiving = False
        if self.h2.error is not None:
            self._write_out()  # the GOAWAY
            self._abort()
            return
        self.flush()

    # -- what the client did (called by ServerConnection.receive) -------------------
    def on_request(self, stream_id: int, head: RequestHead, ended: bool) -> None:
        if self.closed:
            return  # closed earlier in the same read (the client's GOAWAY, say)
        stream = H2Stream(self, stream_id)
        self.streams[stream_id] = stream
        req = self._request(stream, head, ended)
        stream.req = req
        if req.reject is not None:
            self.app.reject(req, req.reject.status, req.reject.reason)
            return
        result = self.app.handle(req)
        if result is not None:
            stream.task = self.loop.create_task(result)
            stream.task.add_done_callback(stream.task_done)

    def _request(self, stream: H2Stream, head: RequestHead, ended: bool) -> Request:
        if ended:
            headers = head.memo  # a head seen again on this connection: its Headers are shared
            if headers is None:
                headers = head.memo = Headers.from_raw(head.fields)
        elif head.content_length is None:
            headers = Headers.from_raw([*head.fields, (b"transfer-encoding", b"chunked")])  # Rule 4
        else:
            headers = Headers.from_raw(head.fields)
        method = head.method.decode("latin-1")
        target = (head.path or b"*").decode("latin-1")
        req = Request(stream, method, target, "2", headers)
        req.start = perf_counter()
        req.host = req.headers.get("host", "")
        req.body = _NO_BODY if ended else BodyStream(stream)
        req.has_body = not ended
        req.expect_continue = not ended and req.headers.get("expect", "").lower() == "100-continue"
        if method == "CONNECT":
            req.reject = _Reject(405, "CONNECT is not supported by this edge")
        elif len(target) > self.limits.max_request_line:
            req.reject = _Reject(414, "request target too long")
        elif head.size > self.limits.max_header_bytes:
            req.reject = _Reject(431, "request header fields too large")
        return req

    def on_data(self, stream_id: int, data: bytes, flow_length: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            self.h2.acknowledge(stream_id, flow_length)
            return
        stream.received(data, flow_length)

    def on_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None and stream.req is not None and stream.req.body is not None:
            stream.req.body.finish()

    def on_reset(self, stream_id: int, code: int) -> None:
        stream = self.streams.pop(stream_id, None)
        self.sending.pop(stream_id, None)
        if stream is not None:
            stream.lost()
        self._maybe_close()

    def on_window(self, stream_id: int) -> None:
        if stream_id == 0:
            self.sending.update(self.streams)  # every stream may send again
        else:
            stream = self.streams.get(stream_id)
            if stream is not None:
                self.sending[stream.id] = stream

    def on_settings(self) -> None:
        self.sending.update(self.streams)  # a new initial window size changes every stream's window

    def on_goaway(self, code: int, last_stream_id: int) -> None:
        self.goaway_received = True  # no new streams come; the open ones finish
        self._maybe_close()

    # -- output ----------------------------------------------------------------------------
    def schedule(self, stream: H2Stream) -> None:
        self.sending[stream.id] = stream
        if not self._receiving and not self._flush_planned:
            self._flush_planned = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Frame what the streams queued, within the windows, and write it (Rule 3)."""
        self._flush_planned = False
        if self.closed or self.h2 is None:
            return
        if not self.write_paused:
            for stream in list(self.sending.values()):
                if self._pump(stream):
                    self.sending.pop(stream.id, None)
        self._write_out()

    def _pump(self, stream: H2Stream) -> bool:
        """Frame one stream's output; True when nothing is left to do for it now."""
        if stream.closed:
            return True
        conn, sid = self.h2, stream.id
        if not stream.headers_sent:
            if stream.block is None:
                return True
            end = stream.ended and not stream.out
            conn.send_headers(sid, stream.block, end)
            stream.headers_sent = True
            if end:
                self._complete(stream)
                return True
        out = stream.out
        framed = 0
        while out:
            if self.write_paused:
                return False  # resume_writing flushes again
            window = conn.window(sid)
            if window <= 0:
                return False  # wait for WINDOW_UPDATE (on_window)
            chunk = out[0]
            if len(chunk) > window:
                piece, out[0] = chunk[:window], chunk[window:]
            else:
                piece = out.popleft()
            stream.queued -= len(piece)
            last = stream.ended and not out
            conn.send_data(sid, piece, last)
            if last:
                self._complete(stream)
                return True
            framed += len(piece)
            if framed >= STREAM_HIGH_WATER:
                self._write_out()  # hand it to the socket now: it may pause us
                framed = 0
        stream.wake()
        if stream.ended:
            conn.send_data(sid, b"", True)
            self._complete(stream)
        return True

    def _complete(self, stream: H2Stream) -> None:
        """The response went out whole."""
        self.streams.pop(stream.id, None)
        stream.closed = True
        stream.wake()
        req = stream.req
        if req is not None and req.body is not None and not req.body.complete:
            self.h2.reset_stream(stream.id, frames.NO_ERROR)  # RFC 9113 §8.1
            req.body.fail()
        if not self.streams:
            self.idle_since = self.loop.time()
        self._maybe_close()

    def informational(self, stream: H2Stream, block: bytes) -> None:
        if not stream.closed:
            self.h2.send_headers(stream.id, block)
            self.schedule(stream)

    def acknowledge(self, stream: H2Stream, size: int) -> None:
        if size and not self.closed:
            self.h2.acknowledge(stream.id, size)
            if not self._receiving:
                self.schedule(stream)

    def reset(self, stream: H2Stream, code: int) -> None:
        self.streams.pop(stream.id, None)
        self.sending.pop(stream.id, None)
        stream.lost()
        if not self.closed:
            self.h2.reset_stream(stream.id, code)
            if not self._receiving:
                self._write_out()
        self._maybe_close()

    def _write_out(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.transport.write(data)
            if not self.write_paused:
                self.active_at = self.loop.time()

    def _maybe_close(self) -> None:
        if self.goaway_received and not self.streams:
            self.close()

    # -- used by the server ---------------------------------------------------------------------
    def close(self) -> None:
        """GOAWAY (NO_ERROR), then close (shutdown, idle, client's GOAWAY)."""
        if self.closed:
            return
        self.h2.close()
        self._write_out()
        self._abort()

    def _abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def check_timeouts(self, now: float) -> None:
        """Called about once a second by the server's sweeper (Rule 6)."""
        if not self.streams:
            if now - self.idle_since > self.limits.keepalive_timeout:
                self.close()
        elif now - self.active_at > self.limits.keepalive_timeout and (self.write_paused or self._stalled()):
            self.close()  # open streams, and the client takes nothing: a window never reopened

    def _stalled(self) -> bool:
        return any(stream.out for stream in self.streams.values())

