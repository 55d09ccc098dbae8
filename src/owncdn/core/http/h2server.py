"""The server side of one HTTP/2 connection (RFC 9113), sans I/O.

The edge feeds received bytes to `receive()`; the connection calls its handler for
what the client did and queues the frames to send, which `data_to_send()` hands back.
The handler's methods: `on_request(stream_id, head, ended)` (head: h2fields.RequestHead;
ended: the request has no body, and no `on_end` follows), `on_data(stream_id, data,
flow_length)`, `on_end(stream_id)` (the body is complete), `on_reset(stream_id, code)`,
`on_window(stream_id)` (0: the connection's window, so every stream), `on_settings()`
(the initial window changed) and `on_goaway(code, last_stream_id)`.

Rules:
1. The client's connection preface and then a SETTINGS frame come first (§3.4); our
   SETTINGS (and a connection WINDOW_UPDATE up to `connection_window`) go out at once.
   SETTINGS get an ACK, PING an ACK with its payload; PRIORITY is checked and ignored;
   unknown frame types are ignored (§5.5); PUSH_PROMISE from a client is a connection
   error (§8.4).
2. Frame checks of §6 (stream 0 or not, fixed lengths, padding shorter than the
   payload, SETTINGS values, a frame longer than our SETTINGS_MAX_FRAME_SIZE) are
   connection errors with the code the RFC names, except where §6 names a stream
   error (PRIORITY's length, a zero or overflowing stream WINDOW_UPDATE).
3. A connection error (§5.4.1) queues GOAWAY with the code and the last stream id
   seen, sets `error`, and nothing more is read; the edge writes and closes. A
   handler that raises is an INTERNAL_ERROR of the connection (and the exception
   goes on to the caller). A stream error (§5.4.2) queues RST_STREAM, forgets the
   stream (the handler gets `on_reset` when it knew it) and the connection goes on.
4. Streams (§5.1): a client opens odd ids, each higher than the last (else a
   connection error); more than `max_concurrent` open at once is a connection error
   PROTOCOL_ERROR. Any frame but HEADERS or PRIORITY on an idle stream is a
   connection error, and so is HEADERS on a lower id never opened (§5.1.1). DATA or
   HEADERS after the client's END_STREAM is a stream error STREAM_CLOSED; on a
   closed stream, DATA is a stream error and HEADERS a connection error
   STREAM_CLOSED, except on streams we reset, where late frames are ignored (the
   last 1024 closed ids are remembered). WINDOW_UPDATE, RST_STREAM and PRIORITY on
   closed streams are ignored.
5. A header block is HEADERS with its CONTINUATION frames and nothing else in
   between (§6.10). Every block is read (hpack_in.py's BlockReader, on the hpack
   package's Decoder, keeps the dynamic table in step) even when its stream is
   ignored. A block over `header_list_limit` decoded bytes is a connection error
   ENHANCE_YOUR_CALM, a broken one COMPRESSION_ERROR; the undecoded block may reach
   twice the limit. A block the reader remembers (hpack_in.py Rule 2) also keeps
   the RequestHead checked the first time.
6. A request's field list is checked by h2fields (§8.2, §8.3); malformed: stream error
   PROTOCOL_ERROR, the handler never sees it. A second HEADERS on a stream is its
   trailer section and must end the stream. DATA that overruns Content-Length, or an
   end of stream short of it, is malformed too (§8.1.1).
7. Flow control (§5.2, §6.9): DATA counts (padding included) against our connection
   and stream windows; more than they allow is a FLOW_CONTROL_ERROR. The handler hands
   consumed bytes back with `acknowledge()`; WINDOW_UPDATE goes out once half a window
   is owed. Bytes of streams that closed before the handler acknowledged them go back
   to the connection window. Outbound, `window(stream_id)` is what may be sent now
   (the stream's and the connection's send windows), and `send_data` spends it; the
   peer's SETTINGS_INITIAL_WINDOW_SIZE moves every open stream's window by the change.
8. A stream is forgotten when both sides ended it, or it was reset either way.
9. Rapid reset (CVE-2023-44487): a client that resets streams before their
   responses end makes the server start work it never sends. Once more than
   `RESET_ALLOWANCE` streams were reset that way and they outnumber the streams that
   completed, the connection ends with ENHANCE_YOUR_CALM. A browser cancelling now
   and then never gets near it.
"""

from __future__ import annotations

from collections import OrderedDict

from hpack.exceptions import HPACKError, OversizedHeaderListError

from . import h2frames as f
from .h2fields import check_request, check_trailers
from .hpack_in import BlockReader

__all__ = ["ServerConnection", "H2ConnectionError"]

_CLOSED_MEMORY = 1024  # closed stream ids remembered, and whether we reset them (Rule 4)
_CONTINUATION_SLACK = 2  # Rule 5: undecoded block bytes allowed per decoded byte
RESET_ALLOWANCE = 200  # Rule 9: streams the client may reset early before the ratio counts


class H2ConnectionError(Exception):
    """A connection error (Rule 3)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{f.ERROR_NAMES.get(code, code)}: {reason}")
        self.code = code
        self.reason = reason


class _StreamError(Exception):
    def __init__(self, stream_id: int, code: int, reason: str) -> None:
        super().__init__(reason)
        self.stream_id = stream_id
        self.code = code


class _Stream:
    __slots__ = ("id", "send_window", "recv_window", "recv_owed", "held", "remote_closed", "local_closed",
                 "expected", "received")

    def __init__(self, stream_id: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.send_window = send_window
        self.recv_window = recv_window
        self.recv_owed = 0  # acknowledged by the handler, not yet announced by WINDOW_UPDATE
        self.held = 0  # received, not yet acknowledged by the handler
        self.remote_closed = False
        self.local_closed = False
        self.expected: int | None = None  # Content-Length
        self.received = 0

    def __repr__(self) -> str:
        return (f"<h2 stream {self.id} remote={'closed' if self.remote_closed else 'open'} "
                f"local={'closed' if self.local_closed else 'open'} send_window={self.send_window}>")


class ServerConnection:
    """One HTTP/2 connection, server side (Rules 1-8)."""

    def __init__(self, handler, *, max_concurrent: int = 100, initial_window: int = f.DEFAULT_WINDOW,
                 connection_window: int = f.DEFAULT_WINDOW, max_header_list: int = 65536,
                 header_list_limit: int | None = None) -> None:
        self.handler = handler
        self.max_concurrent = max_concurrent
        self.initial_window = initial_window  # ours: what a client may send per stream
        self.streams: dict[int, _Stream] = {}
        self.last_stream_id = 0
        self.early_resets = 0  # Rule 9: streams the client reset before our response ended
        self.completed = 0  # streams both sides ended
        self.error: H2ConnectionError | None = None
        self.goaway_sent = False
        # The peer's settings and our send windows.
        self.peer_initial_window = f.DEFAULT_WINDOW
        self.max_frame_size = f.MIN_MAX_FRAME_SIZE  # the peer's: what we may send
        self.send_window = f.DEFAULT_WINDOW
        # Our receive side.
        self._connection_window = max(connection_window, f.DEFAULT_WINDOW)
        self.recv_window = self._connection_window
        self._recv_owed = 0
        self._limit = header_list_limit or 2 * max_header_list
        self.blocks = BlockReader(self._limit)  # hpack_in.py: the Decoder, and blocks remembered
        self._buf = b""
        self._preface = False
        self._settings_seen = False
        self._block: list | None = None  # a header block waiting for CONTINUATION
        self._block_at = (0, 0, 0)  # its stream id, HEADERS flags, priority dependency
        self._block_size = 0
        self._closed: OrderedDict[int, bool] = OrderedDict()  # recently closed stream id -> reset by us
        self._out: list[bytes] = [f.settings({
            f.MAX_CONCURRENT_STREAMS: max_concurrent,
            f.INITIAL_WINDOW_SIZE: initial_window,
            f.MAX_HEADER_LIST_SIZE: max_header_list,
            f.ENABLE_PUSH: 0,
        })]
        if self._connection_window > f.DEFAULT_WINDOW:
            self._out.append(f.window_update(0, self._connection_window - f.DEFAULT_WINDOW))

    def __repr__(self) -> str:
        state = "error" if self.error else ("goaway" if self.goaway_sent else "open")
        return f"<h2 ServerConnection {state} streams={len(self.streams)} last={self.last_stream_id}>"

    # -- input ---------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Process received bytes; afterwards `error` tells of a connection error (Rule 3)."""
        if self.error is not None:
            return
        buf = self._buf + data if self._buf else data
        try:
            self._buf = buf[self._frames(buf):]
        except H2ConnectionError as exc:
            self._fail(exc)
        except Exception:
            self._fail(H2ConnectionError(f.INTERNAL_ERROR, "the handler failed"))
            raise

    def _frames(self, buf: bytes) -> int:
        """Handle every whole frame in buf; -> how much was used."""
        pos, size = 0, len(buf)
        if not self._preface:
            if size < 24:
                if f.PREFACE[:size] != buf:
                    raise H2ConnectionError(f.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return 0
            if buf[:24] != f.PREFACE:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self._preface = True
            pos = 24
        handlers = self._HANDLERS
        while size - pos >= 9:
            word = int.from_bytes(buf[pos:pos + 9], "big")
            length = word >> 48
            end = pos + 9 + length
            if length > f.MIN_MAX_FRAME_SIZE:  # we never raise SETTINGS_MAX_FRAME_SIZE
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, f"a frame of {length} bytes")
            if end > size:
                break
            ftype = (word >> 40) & 0xFF
            flags = (word >> 32) & 0xFF
            stream_id = word & 0x7FFFFFFF
            payload = buf[pos + 9:end]
            pos = end
            if self._block is not None and (ftype != f.CONTINUATION or stream_id != self._block_at[0]):
                raise H2ConnectionError(f.PROTOCOL_ERROR, "a header block was interrupted")
            if not self._settings_seen:
                if ftype != f.SETTINGS or flags & f.ACK:
                    raise H2ConnectionError(f.PROTOCOL_ERROR, "the preface's SETTINGS frame is missing")
                self._settings_seen = True
            if ftype < 10:
                try:
                    handlers[ftype](self, flags, stream_id, payload)
                except _StreamError as exc:
                    self._stream_error(exc)
        return pos

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        if size > self.recv_window:
            raise H2ConnectionError(f.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self.recv_window -= size
        if flags & f.PADDED:
            payload = _unpad(payload, 0)
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            if stream_id > self.last_stream_id:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "DATA on an idle stream")
            self._owe(size)
            if stream is None and self._closed.get(stream_id):
                return
            raise _StreamError(stream_id, f.STREAM_CLOSED, "DATA after the end of the stream")
        if size > stream.recv_window:
            self._owe(size)
            raise _StreamError(stream_id, f.FLOW_CONTROL_ERROR, "DATA beyond the stream window")
        stream.recv_window -= size
        stream.held += size
        stream.received += len(payload)
        ended = flags & f.END_STREAM
        expected = stream.expected
        if expected is not None and (stream.received > expected or (ended and stream.received != expected)):
            raise _StreamError(stream_id, f.PROTOCOL_ERROR, "DATA disagrees with Content-Length")
        if payload or not ended:
            self.handler.on_data(stream_id, payload, size)
        elif size:
            self.acknowledge(stream_id, size)  # only padding
        if ended:
            self._remote_end(stream)

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "HEADERS on stream 0")
        start, end = 0, len(payload)
        if flags & f.PADDED:
            if not payload:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "PADDED HEADERS without its pad length")
            start, end = 1, end - payload[0]
        dependency = 0
        if flags & f.PRIORITY_FLAG:
            if len(payload) - start < 5:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            dependency = int.from_bytes(payload[start:start + 4], "big") & 0x7FFFFFFF
            start += 5
        if end < start:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "padding longer than the frame")
        block = payload[start:end] if (start or end != len(payload)) else payload
        if flags & f.END_HEADERS:
            self._header_block(stream_id, flags, dependency, block)
        else:
            self._block = [block]
            self._block_at = (stream_id, flags, dependency)
            self._block_size = len(block)

    def _continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._block is None:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        self._block.append(payload)
        self._block_size += len(payload)
        if self._block_size > _CONTINUATION_SLACK * self._limit:
            raise H2ConnectionError(f.ENHANCE_YOUR_CALM, "header block too large")
        if flags & f.END_HEADERS:
            block, self._block = b"".join(self._block), None
            stream_id, hflags, dependency = self._block_at
            self._header_block(stream_id, hflags, dependency, block)

    def _header_block(self, stream_id: int, flags: int, dependency: int, block: bytes) -> None:
        try:
            fields, entry = self.blocks.read(block)
        except OversizedHeaderListError:
            raise H2ConnectionError(f.ENHANCE_YOUR_CALM, "header list too large") from None
        except (HPACKError, IndexError, ValueError):
            raise H2ConnectionError(f.COMPRESSION_ERROR, "undecodable header block") from None
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._trailers(stream, flags, fields)
        elif stream_id <= self.last_stream_id:
            closed = self._closed.get(stream_id)
            if closed is None:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "a stream id lower than one already used")
            if not closed:
                raise H2ConnectionError(f.STREAM_CLOSED, "HEADERS on a closed stream")
        else:
            self._open(stream_id, flags, dependency, fields, entry)

    def _open(self, stream_id: int, flags: int, dependency: int, fields, entry: list | None) -> None:
        if not stream_id & 1:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "a client opened an even stream id")
        self.last_stream_id = stream_id
        if self.goaway_sent:
            return  # after our GOAWAY, new streams are ignored (§6.8)
        if dependency == stream_id:
            raise _StreamError(stream_id, f.PROTOCOL_ERROR, "a stream depends on itself")
        if len(self.streams) >= self.max_concurrent:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "more streams than SETTINGS_MAX_CONCURRENT_STREAMS")
        head = entry[1] if entry is not None else None
        if head is None:
            head = check_request(fields)
            if type(head) is str:
                raise _StreamError(stream_id, f.PROTOCOL_ERROR, head)
            if entry is not None:
                entry[1] = head
        ended = bool(flags & f.END_STREAM)
        if ended and head.content_length:
            raise _StreamError(stream_id, f.PROTOCOL_ERROR, "no DATA for a Content-Length")
        stream = _Stream(stream_id, self.peer_initial_window, self.initial_window)
        stream.expected = head.content_length
        stream.remote_closed = ended
        self.streams[stream_id] = stream
        self.handler.on_request(stream_id, head, ended)

    def _trailers(self, stream: _Stream, flags: int, fields) -> None:
        if stream.remote_closed:
            raise _StreamError(stream.id, f.STREAM_CLOSED, "HEADERS after the end of the stream")
        if not flags & f.END_STREAM:
            raise _StreamError(stream.id, f.PROTOCOL_ERROR, "trailers without END_STREAM")
        error = check_trailers(fields)
        if error is not None:
            raise _StreamError(stream.id, f.PROTOCOL_ERROR, error)
        if stream.expected is not None and stream.received != stream.expected:
            raise _StreamError(stream.id, f.PROTOCOL_ERROR, "DATA disagrees with Content-Length")
        self._remote_end(stream)

    def _priority(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            raise _StreamError(stream_id, f.FRAME_SIZE_ERROR, "PRIORITY is 5 bytes")
        if int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == stream_id:
            raise _StreamError(stream_id, f.PROTOCOL_ERROR, "a stream depends on itself")

    def _rst_stream(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise H2ConnectionError(f.FRAME_SIZE_ERROR, "RST_STREAM is 4 bytes")
        if stream_id > self.last_stream_id:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            self._closing(stream_id, False)
            self._owe(stream.held)
            self.handler.on_reset(stream_id, int.from_bytes(payload, "big"))
            if not stream.local_closed:
                self.early_resets += 1
                if self.early_resets > RESET_ALLOWANCE and self.early_resets > self.completed:  # Rule 9
                    raise H2ConnectionError(f.ENHANCE_YOUR_CALM, "too many streams reset before their "
                                                                 "responses (rapid reset)")

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & f.ACK:
            if payload:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise H2ConnectionError(f.FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 bytes")
        window_moved = False
        for pos in range(0, len(payload), 6):
            ident = int.from_bytes(payload[pos:pos + 2], "big")
            value = int.from_bytes(payload[pos + 2:pos + 6], "big")
            if ident == f.INITIAL_WINDOW_SIZE:
                self._peer_window(value)
                window_moved = True
            elif ident == f.MAX_FRAME_SIZE:
                if not f.MIN_MAX_FRAME_SIZE <= value <= f.MAX_MAX_FRAME_SIZE:
                    raise H2ConnectionError(f.PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
                self.max_frame_size = value
            elif ident == f.ENABLE_PUSH and value > 1:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1")
        self._out.append(f.SETTINGS_ACK)
        if window_moved:
            self.handler.on_settings()

    def _peer_window(self, value: int) -> None:
        if value > f.MAX_WINDOW:
            raise H2ConnectionError(f.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE too large")
        delta = value - self.peer_initial_window
        self.peer_initial_window = value
        for stream in self.streams.values():
            stream.send_window += delta
            if stream.send_window > f.MAX_WINDOW:
                raise H2ConnectionError(f.FLOW_CONTROL_ERROR, "a stream window beyond 2^31-1")

    def _push_promise(self, flags: int, stream_id: int, payload: bytes) -> None:
        raise H2ConnectionError(f.PROTOCOL_ERROR, "PUSH_PROMISE from a client")

    def _ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise H2ConnectionError(f.FRAME_SIZE_ERROR, "PING is 8 bytes")
        if not flags & f.ACK:
            self._out.append(f.ping_ack(payload))

    def _goaway(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise H2ConnectionError(f.FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
        last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
        self.handler.on_goaway(int.from_bytes(payload[4:8], "big"), last)

    def _window_update(self, flags: int, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2ConnectionError(f.FRAME_SIZE_ERROR, "WINDOW_UPDATE is 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            if not increment:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "connection WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > f.MAX_WINDOW:
                raise H2ConnectionError(f.FLOW_CONTROL_ERROR, "connection window beyond 2^31-1")
            self.handler.on_window(0)
            return
        if stream_id > self.last_stream_id:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if not increment:
            raise _StreamError(stream_id, f.PROTOCOL_ERROR, "stream WINDOW_UPDATE of 0")
        stream.send_window += increment
        if stream.send_window > f.MAX_WINDOW:
            raise _StreamError(stream_id, f.FLOW_CONTROL_ERROR, "stream window beyond 2^31-1")
        self.handler.on_window(stream_id)

    _HANDLERS = (_data, _headers, _priority, _rst_stream, _settings, _push_promise, _ping, _goaway,
                 _window_update, _continuation)

    # -- stream and connection ends ------------------------------------------------
    def _remote_end(self, stream: _Stream) -> None:
        stream.remote_closed = True
        self.handler.on_end(stream.id)
        if stream.local_closed:
            self._forget(stream)

    def _forget(self, stream: _Stream) -> None:
        if self.streams.pop(stream.id, None) is not None:
            self.completed += 1
            self._closing(stream.id, False)
            if stream.held:
                self._owe(stream.held)

    def _stream_error(self, exc: _StreamError) -> None:
        stream = self.streams.get(exc.stream_id)
        self._reset(exc.stream_id, exc.code)
        if stream is not None:
            self.handler.on_reset(exc.stream_id, exc.code)

    def _reset(self, stream_id: int, code: int) -> None:
        self._out.append(f.rst_stream(stream_id, code))
        stream = self.streams.pop(stream_id, None)
        if stream is not None and stream.held:
            self._owe(stream.held)
        self._closing(stream_id, True)

    def _closing(self, stream_id: int, by_us: bool) -> None:
        closed = self._closed
        closed[stream_id] = by_us
        if len(closed) > _CLOSED_MEMORY:
            closed.popitem(last=False)

    def _fail(self, exc: H2ConnectionError) -> None:
        self.error = exc
        self._out.append(f.goaway(self.last_stream_id, exc.code, exc.reason.encode()[:200]))
        self.goaway_sent = True

    # -- flow control of what we receive (Rule 7) ----------------------------------
    def _owe(self, size: int) -> None:
        """size bytes of the connection window are free again."""
        owed = self._recv_owed + size
        if owed >= self._connection_window >> 1:
            self._out.append(f.window_update(0, owed))
            self.recv_window += owed
            owed = 0
        self._recv_owed = owed

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The handler consumed size flow-controlled bytes of a stream."""
        if size <= 0 or self.error is not None:
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            return  # its bytes went back to the connection window when it closed
        size = min(size, stream.held)
        if size:
            stream.held -= size
            if not stream.remote_closed:
                owed = stream.recv_owed + size
                if owed >= self.initial_window >> 1:
                    self._out.append(f.window_update(stream_id, owed))
                    stream.recv_window += owed
                    owed = 0
                stream.recv_owed = owed
            self._owe(size)

    # -- output ----------------------------------------------------------------------
    def window(self, stream_id: int) -> int:
        """DATA bytes that may go out on the stream now (Rule 7)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        window = stream.send_window if stream.send_window < self.send_window else self.send_window
        return window if window < self.max_frame_size else self.max_frame_size

    def send_headers(self, stream_id: int, block: bytes, end_stream: bool = False) -> None:
        """A response head (or a 1xx, or trailers), HPACK-encoded by hpack_out.py
        (encode_block, encode_head), as HEADERS (+ CONTINUATION)."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed:
            return
        self._out += f.headers(stream_id, block, end_stream, self.max_frame_size)
        if end_stream:
            self._local_end(stream)

    def send_data(self, stream_id: int, data, end_stream: bool = False) -> None:
        """DATA within window(stream_id) (the caller's duty)."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed:
            return
        size = len(data)
        stream.send_window -= size
        self.send_window -= size
        self._out.append(f.header(size, f.DATA, f.END_STREAM if end_stream else 0, stream_id))
        if size:
            self._out.append(data)
        if end_stream:
            self._local_end(stream)

    def _local_end(self, stream: _Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            self._forget(stream)

    def reset_stream(self, stream_id: int, code: int) -> None:
        """RST_STREAM from our side; nothing happens for a stream already forgotten."""
        if self.error is None and stream_id in self.streams:
            self._reset(stream_id, code)

    def close(self, code: int = f.NO_ERROR) -> None:
        """GOAWAY: no new streams; the edge closes when it is done (§6.8)."""
        if not self.goaway_sent:
            self.goaway_sent = True
            self._out.append(f.goaway(self.last_stream_id, code))

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)


def _unpad(payload: bytes, fixed: int) -> bytes:
    """A PADDED frame's payload without its pad length octet and padding (§6.1)."""
    if not payload:
        raise H2ConnectionError(f.FRAME_SIZE_ERROR, "PADDED frame without its pad length")
    pad = payload[0]
    if pad >= len(payload) - fixed:
        raise H2ConnectionError(f.PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1:len(payload) - pad]
