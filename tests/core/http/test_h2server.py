"""The server side of an HTTP/2 connection (core/http/h2server.py), frame by frame,
against RFC 9113. Frames the server writes are read back with hyperframe (the h2
package's frame layer) as the reference; header blocks are made by the hpack package's
Encoder, or by hand where a test needs exact bytes. The quick reading of header blocks
is checked against hpack's Decoder in test_hpack_in.py."""

import pytest
from hpack import Decoder, Encoder
from hyperframe.frame import Frame

from owncdn.core.http import h2frames as f
from owncdn.core.http.h2server import ServerConnection
from owncdn.core.http.hpack_out import encode_block

GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/a"), (b":authority", b"example.test")]
POST = [(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/form"), (b":authority", b"example.test")]


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return f.header(len(payload), ftype, flags, sid) + payload


def settings(*pairs) -> bytes:
    return frame(f.SETTINGS, 0, 0, b"".join(i.to_bytes(2, "big") + v.to_bytes(4, "big") for i, v in pairs))


def read_frames(data: bytes) -> list[tuple[str, int, set, object]]:
    """Server output -> (type name, stream id, flags, hyperframe frame), parsed by hyperframe."""
    out = []
    while data:
        parsed, length = Frame.parse_frame_header(memoryview(data[:9]))
        parsed.parse_body(memoryview(data[9:9 + length]))
        out.append((type(parsed).__name__, parsed.stream_id, set(parsed.flags), parsed))
        data = data[9 + length:]
    return out


class Client:
    """A scripted client and the server's handler, recording what the server reports."""

    def __init__(self, preface: bool = True, **options) -> None:
        options.setdefault("max_concurrent", 8)
        self.events: list[tuple] = []
        self.heads: dict[int, object] = {}
        self.server = ServerConnection(self, **options)
        self.encoder = Encoder()
        self.greeting = read_frames(self.server.data_to_send())
        if preface:
            assert self.send(f.PREFACE + settings()) == [("SettingsFrame", 0, {"ACK"}, None)]

    # -- the handler --------------------------------------------------------------
    def on_request(self, sid, head, ended):
        self.heads[sid] = head
        self.events.append(("request", sid, ended))

    def on_data(self, sid, data, flow_length):
        self.events.append(("data", sid, bytes(data), flow_length))

    def on_end(self, sid):
        self.events.append(("end", sid))

    def on_reset(self, sid, code):
        self.events.append(("reset", sid, code))

    def on_window(self, sid):
        self.events.append(("window", sid))

    def on_settings(self):
        self.events.append(("settings",))

    def on_goaway(self, code, last):
        self.events.append(("goaway", code, last))

    # -- sending ------------------------------------------------------------------------
    def send(self, *frames: bytes) -> list[tuple]:
        """Feed frames; -> what the server wrote (payload objects dropped for SETTINGS ACK)."""
        self.server.receive(b"".join(frames))
        return [(name, sid, flags, None if name == "SettingsFrame" and "ACK" in flags else parsed)
                for name, sid, flags, parsed in read_frames(self.server.data_to_send())]

    def block(self, fields, huffman: bool = False) -> bytes:
        return self.encoder.encode(fields, huffman=huffman)

    def headers(self, sid: int, fields=GET, end_stream: bool = True) -> bytes:
        flags = f.END_HEADERS | (f.END_STREAM if end_stream else 0)
        return frame(f.HEADERS, flags, sid, self.block(fields))

    def goaway_code(self, written) -> int | None:
        codes = [parsed.error_code for name, _, _, parsed in written if name == "GoAwayFrame"]
        return codes[0] if codes else None


def rst_codes(written) -> dict[int, int]:
    return {sid: parsed.error_code for name, sid, _, parsed in written if name == "RstStreamFrame"}


# -- the start of a connection (§3.4) -------------------------------------------------------------

def test_the_servers_preface_is_settings_and_a_connection_window_update():
    c = Client(preface=False, max_concurrent=128, initial_window=1 << 20, connection_window=8 << 20,
               max_header_list=65536)
    (name, _, _, s), (name2, sid, _, wu) = c.greeting
    assert name == "SettingsFrame" and s.settings == {
        f.MAX_CONCURRENT_STREAMS: 128, f.INITIAL_WINDOW_SIZE: 1 << 20, f.MAX_HEADER_LIST_SIZE: 65536, f.ENABLE_PUSH: 0}
    assert (name2, sid, wu.window_increment) == ("WindowUpdateFrame", 0, (8 << 20) - 65535)


def test_the_preface_may_arrive_in_pieces():
    c = Client(preface=False)
    wire = f.PREFACE + settings((f.MAX_FRAME_SIZE, 20000)) + c.headers(1)
    for i in range(len(wire)):
        c.server.receive(wire[i:i + 1])
    assert c.server.error is None and c.events == [("request", 1, True)]  # ended: no on_end follows
    assert c.server.max_frame_size == 20000


@pytest.mark.parametrize("wire", [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",               # not HTTP/2 at all
    f.PREFACE + frame(f.PING, 0, 0, b"12345678"),       # §3.4: the preface's first frame is SETTINGS
    f.PREFACE + frame(f.SETTINGS, f.ACK, 0),            # ... and not a SETTINGS ACK
], ids=["http1", "ping-first", "settings-ack-first"])
def test_a_wrong_preface_is_a_connection_error(wire):
    c = Client(preface=False)
    c.server.receive(wire)
    assert c.server.error is not None and c.server.error.code == f.PROTOCOL_ERROR
    assert read_frames(c.server.data_to_send())[-1][0] == "GoAwayFrame"


# -- connection errors (§5.4.1): GOAWAY with the RFC's code, nothing more read ------------------

def _big_block(c):
    return c.block(GET + [(b"x-big", b"v" * 3000)] * 30)  # far over a 2 x 1000 byte limit


CONNECTION_ERRORS = [
    # §4.2: "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame exceeds ... SETTINGS_MAX_FRAME_SIZE"
    ("frame over max frame size", lambda c: [frame(0xFF, 0, 0, b"x" * 16385)], f.FRAME_SIZE_ERROR),
    # §6.1: DATA "If a DATA frame is received whose Stream Identifier field is 0x00 ... PROTOCOL_ERROR"
    ("DATA on stream 0", lambda c: [frame(f.DATA, 0, 0, b"x")], f.PROTOCOL_ERROR),
    # §5.1: idle: "Receiving any frame other than HEADERS or PRIORITY on a stream in this state MUST be
    # treated as a connection error of type PROTOCOL_ERROR"
    ("DATA on an idle stream", lambda c: [frame(f.DATA, 0, 5, b"x")], f.PROTOCOL_ERROR),
    ("RST_STREAM on an idle stream", lambda c: [frame(f.RST_STREAM, 0, 5, bytes(4))], f.PROTOCOL_ERROR),
    ("WINDOW_UPDATE on an idle stream", lambda c: [frame(f.WINDOW_UPDATE, 0, 5, b"\0\0\0\1")], f.PROTOCOL_ERROR),
    # §6.1: "If the length of the padding is the length of the frame payload or greater ... PROTOCOL_ERROR"
    ("DATA padding too long", lambda c: [frame(f.DATA, f.PADDED, 1, b"\x03ab")], f.PROTOCOL_ERROR),
    ("HEADERS padding too long", lambda c: [frame(f.HEADERS, f.PADDED | f.END_HEADERS, 3, b"\x05\x82")],
     f.PROTOCOL_ERROR),
    # §6.2: HEADERS on stream 0
    ("HEADERS on stream 0", lambda c: [frame(f.HEADERS, f.END_HEADERS, 0, c.block(GET))], f.PROTOCOL_ERROR),
    # §5.1.1: "Streams initiated by a client MUST use odd-numbered stream identifiers"
    ("even stream id", lambda c: [c.headers(2)], f.PROTOCOL_ERROR),
    # §5.1.1: "An endpoint that receives an unexpected stream identifier MUST respond with a connection
    # error of type PROTOCOL_ERROR" (lower than one already used, never opened)
    ("stream id going down", lambda c: [c.headers(7), c.headers(3)], f.PROTOCOL_ERROR),
    # §5.1 closed: HEADERS after both sides ended the stream
    ("HEADERS on a closed stream", lambda c: _closed(c, 3) + [c.headers(3)], f.STREAM_CLOSED),
    # §6.3: PRIORITY on stream 0
    ("PRIORITY on stream 0", lambda c: [frame(f.PRIORITY, 0, 0, bytes(5))], f.PROTOCOL_ERROR),
    # §6.4: RST_STREAM
    ("RST_STREAM on stream 0", lambda c: [frame(f.RST_STREAM, 0, 0, bytes(4))], f.PROTOCOL_ERROR),
    ("RST_STREAM not 4 bytes", lambda c: [frame(f.RST_STREAM, 0, 1, bytes(3))], f.FRAME_SIZE_ERROR),
    # §6.5: SETTINGS
    ("SETTINGS on a stream", lambda c: [frame(f.SETTINGS, 0, 1)], f.PROTOCOL_ERROR),
    ("SETTINGS ACK with payload", lambda c: [frame(f.SETTINGS, f.ACK, 0, bytes(6))], f.FRAME_SIZE_ERROR),
    ("SETTINGS length not 6n", lambda c: [frame(f.SETTINGS, 0, 0, bytes(5))], f.FRAME_SIZE_ERROR),
    # §6.5.2: "Any value other than 0 or 1 MUST be treated as a connection error ... PROTOCOL_ERROR"
    ("ENABLE_PUSH 2", lambda c: [settings((f.ENABLE_PUSH, 2))], f.PROTOCOL_ERROR),
    # "Values above the maximum flow-control window size of 2^31-1 MUST be treated as ... FLOW_CONTROL_ERROR"
    ("INITIAL_WINDOW_SIZE 2^31", lambda c: [settings((f.INITIAL_WINDOW_SIZE, 1 << 31))], f.FLOW_CONTROL_ERROR),
    # MAX_FRAME_SIZE: "Values outside this range MUST be treated as a connection error ... PROTOCOL_ERROR"
    ("MAX_FRAME_SIZE too small", lambda c: [settings((f.MAX_FRAME_SIZE, 16383))], f.PROTOCOL_ERROR),
    ("MAX_FRAME_SIZE too large", lambda c: [settings((f.MAX_FRAME_SIZE, 1 << 24))], f.PROTOCOL_ERROR),
    # §6.9.2: a window change that makes a stream window overflow
    ("stream window overflow by SETTINGS", lambda c: [
        frame(f.WINDOW_UPDATE, 0, 1, (f.MAX_WINDOW - 65535).to_bytes(4, "big")),
        settings((f.INITIAL_WINDOW_SIZE, 65536))], f.FLOW_CONTROL_ERROR),
    # §8.4 / §6.6: a client cannot push
    ("PUSH_PROMISE from a client", lambda c: [frame(f.PUSH_PROMISE, f.END_HEADERS, 1, bytes(4))], f.PROTOCOL_ERROR),
    # §6.7: PING
    ("PING on a stream", lambda c: [frame(f.PING, 0, 1, bytes(8))], f.PROTOCOL_ERROR),
    ("PING not 8 bytes", lambda c: [frame(f.PING, 0, 0, bytes(7))], f.FRAME_SIZE_ERROR),
    # §6.8: GOAWAY
    ("GOAWAY on a stream", lambda c: [frame(f.GOAWAY, 0, 1, bytes(8))], f.PROTOCOL_ERROR),
    ("GOAWAY too short", lambda c: [frame(f.GOAWAY, 0, 0, bytes(7))], f.FRAME_SIZE_ERROR),
    # §6.9: WINDOW_UPDATE
    ("WINDOW_UPDATE not 4 bytes", lambda c: [frame(f.WINDOW_UPDATE, 0, 0, bytes(3))], f.FRAME_SIZE_ERROR),
    ("connection WINDOW_UPDATE of 0", lambda c: [frame(f.WINDOW_UPDATE, 0, 0, bytes(4))], f.PROTOCOL_ERROR),
    ("connection window overflow", lambda c: [frame(f.WINDOW_UPDATE, 0, 0, f.MAX_WINDOW.to_bytes(4, "big"))],
     f.FLOW_CONTROL_ERROR),
    # §6.9.1: "A receiver MUST treat the receipt of a DATA frame beyond its window ... FLOW_CONTROL_ERROR"
    ("DATA beyond the connection window", lambda c: [frame(f.DATA, 0, 1, bytes(16384))] * 4, f.FLOW_CONTROL_ERROR),
    # §6.10: CONTINUATION
    ("CONTINUATION without HEADERS", lambda c: [frame(f.CONTINUATION, f.END_HEADERS, 1, b"\x82")],
     f.PROTOCOL_ERROR),
    ("a frame between HEADERS and CONTINUATION", lambda c: [
        frame(f.HEADERS, f.END_STREAM, 3, c.block(GET)), frame(f.PING, 0, 0, bytes(8))], f.PROTOCOL_ERROR),
    ("CONTINUATION on another stream", lambda c: [
        frame(f.HEADERS, f.END_STREAM, 3, c.block(GET)), frame(f.CONTINUATION, f.END_HEADERS, 5, b"")],
     f.PROTOCOL_ERROR),
    # RFC 7541 §2.3.3: "Indices ... greater than the sum of the lengths of both tables MUST be treated as
    # a decoding error"; §4.3 of RFC 9113: a decoding error is a COMPRESSION_ERROR
    ("HPACK index out of range", lambda c: [frame(f.HEADERS, f.END_HEADERS, 3, b"\x82\x87\x84\xfe")],
     f.COMPRESSION_ERROR),
    ("HPACK index 0", lambda c: [frame(f.HEADERS, f.END_HEADERS, 3, b"\x82\x80")], f.COMPRESSION_ERROR),
    ("HPACK integer cut short", lambda c: [frame(f.HEADERS, f.END_HEADERS, 3, b"\x82\xff\x80")], f.COMPRESSION_ERROR),
    ("HPACK truncated literal", lambda c: [frame(f.HEADERS, f.END_HEADERS, 3, b"\x82\x04\x05/a")],
     f.COMPRESSION_ERROR),
    # A field section over twice SETTINGS_MAX_HEADER_LIST_SIZE (the server's own limit, §10.5.1)
    ("header block too large", lambda c: [_continued(3, _big_block(c))], f.ENHANCE_YOUR_CALM),
    ("header list too large", lambda c: [c.headers(3, GET + [(b"x-big", b"v" * 1500)] * 3)], f.ENHANCE_YOUR_CALM),
    ("header list too large, all indexed", lambda c: [
        c.headers(3, GET + [(b"x-big", b"v" * 1500)]), c.headers(5, GET + [(b"x-big", b"v" * 1500)] * 2)],
     f.ENHANCE_YOUR_CALM),
    # §5.1.2: more than SETTINGS_MAX_CONCURRENT_STREAMS (8 here; stream 1 is open)
    ("too many streams", lambda c: [c.headers(sid, end_stream=False) for sid in range(3, 19, 2)],
     f.PROTOCOL_ERROR),
]


def _closed(c, sid):
    """Stream sid opened and ended by both sides; -> no frames to send."""
    c.send(c.headers(sid))
    c.server.send_headers(sid, encode_block([(b":status", b"200")]), True)
    c.server.data_to_send()
    assert sid not in c.server.streams
    return []


def _continued(sid, block):
    frames = f.headers(sid, block, True, 16384)
    return b"".join(frames)


@pytest.mark.parametrize(("why", "make", "code"), CONNECTION_ERRORS, ids=[row[0] for row in CONNECTION_ERRORS])
def test_connection_errors(why, make, code):
    c = Client(max_header_list=1000)
    c.send(c.headers(1, POST, end_stream=False))  # an open stream
    written = c.send(*make(c))
    assert c.server.error is not None and c.server.error.code == code, c.server.error
    assert c.goaway_code(written) == code
    assert c.send(frame(f.PING, 0, 0, bytes(8))) == []  # nothing more is read


# -- stream errors (§5.4.2): RST_STREAM, and the connection goes on -------------------------------

STREAM_ERRORS = [
    # §8.1.1: malformed requests are stream errors PROTOCOL_ERROR (the handler never sees them)
    ("uppercase field name", lambda c: [c.headers(3, GET + [(b"X-A", b"1")])], 3, f.PROTOCOL_ERROR),
    ("connection-specific field", lambda c: [c.headers(3, GET + [(b"connection", b"close")])], 3,
     f.PROTOCOL_ERROR),
    ("no :path", lambda c: [c.headers(3, GET[:2])], 3, f.PROTOCOL_ERROR),
    ("END_STREAM short of Content-Length", lambda c: [c.headers(3, POST + [(b"content-length", b"5")])], 3,
     f.PROTOCOL_ERROR),
    ("DATA short of Content-Length", lambda c: [
        c.headers(3, POST + [(b"content-length", b"5")], end_stream=False),
        frame(f.DATA, f.END_STREAM, 3, b"abc")], 3, f.PROTOCOL_ERROR),
    ("DATA over Content-Length", lambda c: [
        c.headers(3, POST + [(b"content-length", b"5")], end_stream=False),
        frame(f.DATA, 0, 3, b"abcdef")], 3, f.PROTOCOL_ERROR),
    # §8.1: "a HEADERS frame (and associated CONTINUATION frames) ... containing a trailer section ...
    # MUST have the END_STREAM flag set"
    ("trailers without END_STREAM", lambda c: [frame(f.HEADERS, f.END_HEADERS, 1, c.block([(b"x-t", b"1")]))],
     1, f.PROTOCOL_ERROR),
    ("pseudo-header in trailers", lambda c: [
        frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, c.block([(b":path", b"/")]))], 1, f.PROTOCOL_ERROR),
    # §5.1 half-closed (remote): "...MUST respond with a stream error of type STREAM_CLOSED"
    ("DATA after END_STREAM", lambda c: [c.headers(3), frame(f.DATA, 0, 3, b"x")], 3, f.STREAM_CLOSED),
    ("HEADERS after END_STREAM", lambda c: [c.headers(3), c.headers(3)], 3, f.STREAM_CLOSED),
    # §5.1 closed: DATA on a stream both sides ended
    ("DATA on a closed stream", lambda c: _closed(c, 3) + [frame(f.DATA, 0, 3, b"x")], 3, f.STREAM_CLOSED),
    # §5.3.1 (RFC 7540): "A stream cannot depend on itself ... stream error of type PROTOCOL_ERROR"
    ("PRIORITY on itself", lambda c: [frame(f.PRIORITY, 0, 1, (1).to_bytes(4, "big") + b"\x10")], 1,
     f.PROTOCOL_ERROR),
    ("HEADERS depending on itself", lambda c: [
        frame(f.HEADERS, f.END_HEADERS | f.END_STREAM | f.PRIORITY_FLAG, 3,
              (3).to_bytes(4, "big") + b"\x10" + c.block(GET))], 3, f.PROTOCOL_ERROR),
    # §6.3: "A PRIORITY frame with a length other than 5 octets MUST be treated as a stream error ...
    # FRAME_SIZE_ERROR"
    ("PRIORITY not 5 bytes", lambda c: [frame(f.PRIORITY, 0, 1, bytes(4))], 1, f.FRAME_SIZE_ERROR),
    # §6.9: "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a flow-control window
    # increment of 0 as a stream error of type PROTOCOL_ERROR"
    ("stream WINDOW_UPDATE of 0", lambda c: [frame(f.WINDOW_UPDATE, 0, 1, bytes(4))], 1, f.PROTOCOL_ERROR),
    # §6.9.1: "...the sender MUST ... a stream error of type FLOW_CONTROL_ERROR" (stream window overflow)
    ("stream window overflow", lambda c: [frame(f.WINDOW_UPDATE, 0, 1, f.MAX_WINDOW.to_bytes(4, "big"))], 1,
     f.FLOW_CONTROL_ERROR),
    ("DATA beyond the stream window", lambda c: [frame(f.DATA, 0, 1, bytes(16384))] * 2, 1,
     f.FLOW_CONTROL_ERROR),
]


@pytest.mark.parametrize(("why", "make", "sid", "code"), STREAM_ERRORS, ids=[row[0] for row in STREAM_ERRORS])
def test_stream_errors(why, make, sid, code):
    c = Client(initial_window=20000, connection_window=1 << 20)
    c.send(c.headers(1, POST, end_stream=False))
    frames = make(c)
    closed_before = sid in c.heads and sid not in c.server.streams
    written = c.send(*frames)
    assert c.server.error is None
    assert rst_codes(written) == {sid: code}
    assert sid not in c.server.streams
    resets = [event for event in c.events if event[0] == "reset"]
    if sid in c.heads and not closed_before:
        assert resets == [("reset", sid, code)]  # a stream the handler knew is reported
    else:
        assert resets == []  # malformed (the handler never saw it), or closed already
    pong = c.send(frame(f.PING, 0, 0, b"pingpong"))
    assert [(name, parsed.opaque_data) for name, _, _, parsed in pong] == [("PingFrame", b"pingpong")]


# -- frames that work ------------------------------------------------------------------------------

def test_settings_are_acknowledged_and_ping_answered():
    c = Client()
    assert c.send(settings((f.HEADER_TABLE_SIZE, 0), (0x99, 7))) == [("SettingsFrame", 0, {"ACK"}, None)]
    assert c.events == []  # the initial window did not change
    pong = c.send(frame(f.PING, 0, 0, b"12345678"))
    assert [(n, flags, p.opaque_data) for n, _, flags, p in pong] == [("PingFrame", {"ACK"}, b"12345678")]
    assert c.send(frame(f.PING, f.ACK, 0, b"12345678"), frame(f.SETTINGS, f.ACK, 0)) == []


def test_unknown_frames_and_priority_are_ignored():
    c = Client()
    # §5.5: "Implementations MUST ignore and discard frames of unknown types"; PRIORITY on an idle
    # stream does not open it, and the stream may be opened afterwards.
    assert c.send(frame(0x42, 0xFF, 0, b"whatever"), frame(f.PRIORITY, 0, 3, bytes(5))) == []
    c.send(c.headers(3))
    assert c.events == [("request", 3, True)]


def test_headers_with_padding_priority_and_continuation():
    c = Client()
    block = c.block(GET + [(b"x-long", b"v" * 100)])
    payload = b"\x04" + (0).to_bytes(4, "big") + b"\x20" + block[:10] + b"\0" * 4  # pad 4, priority
    c.send(frame(f.HEADERS, f.PADDED | f.PRIORITY_FLAG | f.END_STREAM, 1, payload),
           frame(f.CONTINUATION, 0, 1, block[10:50]),
           frame(f.CONTINUATION, f.END_HEADERS, 1, block[50:]))
    assert c.events == [("request", 1, True)]
    head = c.heads[1]
    assert (head.method, head.path) == (b"GET", b"/a")
    assert head.fields == [(b"host", b"example.test"), (b"x-long", b"v" * 100)]


def test_data_with_padding_counts_the_padding_for_flow_control():
    c = Client(initial_window=1000, connection_window=1000)
    c.send(c.headers(1, POST, end_stream=False))
    c.send(frame(f.DATA, f.PADDED, 1, b"\x05hello" + bytes(5)), frame(f.DATA, f.END_STREAM | f.PADDED, 1, b"\x00!"))
    assert c.events[1:] == [("data", 1, b"hello", 11), ("data", 1, b"!", 2), ("end", 1)]


def test_trailers_end_the_stream():
    c = Client()
    c.send(c.headers(1, POST, end_stream=False), frame(f.DATA, 0, 1, b"body"),
           frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, c.block([(b"x-checksum", b"abc")])))
    assert c.events == [("request", 1, False), ("data", 1, b"body", 4), ("end", 1)]


def test_rst_stream_and_goaway_from_the_client():
    c = Client()
    c.send(c.headers(1, POST, end_stream=False), frame(f.RST_STREAM, 0, 1, f.CANCEL.to_bytes(4, "big")))
    assert c.events[-1] == ("reset", 1, f.CANCEL) and c.server.streams == {}
    assert c.send(frame(f.RST_STREAM, 0, 1, bytes(4)), frame(f.WINDOW_UPDATE, 0, 1, b"\0\0\0\1")) == []  # closed
    c.send(frame(f.GOAWAY, 0, 0, (1).to_bytes(4, "big") + f.NO_ERROR.to_bytes(4, "big") + b"bye"))
    assert c.events[-1] == ("goaway", f.NO_ERROR, 1)


def test_frames_after_our_reset_are_ignored_and_their_bytes_return_to_the_connection():
    c = Client(initial_window=65535, connection_window=65535)
    c.send(c.headers(1, POST, end_stream=False), frame(f.DATA, 0, 1, bytes(16000)))
    c.server.reset_stream(1, f.NO_ERROR)
    assert rst_codes(read_frames(c.server.data_to_send())) == {1: f.NO_ERROR}
    # §5.1: "An endpoint MUST ignore frames that it receives on closed streams after it has sent a
    # RST_STREAM frame"; DATA still counts toward the connection window, and is given back.
    written = c.send(frame(f.DATA, 0, 1, bytes(16000)), frame(f.DATA, 0, 1, bytes(16000)),
                     frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, c.block([(b"x-t", b"1")])))
    assert [(n, sid, p.window_increment) for n, sid, _, p in written] == [("WindowUpdateFrame", 0, 48000)]
    assert c.server.error is None and c.server.recv_window == 65535


# -- flow control (§5.2, §6.9) ----------------------------------------------------------------------

def test_received_data_is_acknowledged_once_half_a_window_is_owed():
    c = Client(initial_window=40000, connection_window=100000)
    c.send(c.headers(1, POST, end_stream=False), frame(f.DATA, 0, 1, bytes(16000)), frame(f.DATA, 0, 1, bytes(8000)))
    c.server.acknowledge(1, 16000)
    assert c.server.data_to_send() == b""  # 16000 < 20000 owed on the stream, < 50000 on the connection
    c.server.acknowledge(1, 8000)
    written = read_frames(c.server.data_to_send())
    assert [(n, sid, p.window_increment) for n, sid, _, p in written] == [("WindowUpdateFrame", 1, 24000)]
    c.server.acknowledge(1, 1)  # more than it holds: ignored
    assert c.server.streams[1].recv_window == 40000
    c.send(frame(f.DATA, 0, 1, bytes(16000)), frame(f.DATA, 0, 1, bytes(16000)))
    c.server.reset_stream(1, f.CANCEL)  # unacknowledged bytes of a closed stream go back to the connection
    written = read_frames(c.server.data_to_send())
    assert [(n, sid) for n, sid, _, _ in written] == [("RstStreamFrame", 1), ("WindowUpdateFrame", 0)]
    assert written[1][3].window_increment == 56000


def test_send_windows_follow_window_update_and_settings():
    c = Client()
    c.send(c.headers(1), c.headers(3))
    server = c.server
    assert server.window(1) == 16384  # the peer's max frame size caps it
    c.send(settings((f.MAX_FRAME_SIZE, 100000)))
    assert server.window(1) == 65535
    server.send_data(1, bytes(60000))
    assert (server.window(1), server.window(3)) == (5535, 5535)  # the connection window is shared
    c.send(frame(f.WINDOW_UPDATE, 0, 0, (100000).to_bytes(4, "big")))
    assert (server.window(1), server.window(3)) == (5535, 65535) and c.events[-1] == ("window", 0)
    c.send(frame(f.WINDOW_UPDATE, 0, 1, (10).to_bytes(4, "big")))
    assert server.window(1) == 5545 and c.events[-1] == ("window", 1)
    # §6.9.2: a new SETTINGS_INITIAL_WINDOW_SIZE moves every open stream's window by the change,
    # possibly below zero.
    c.send(settings((f.INITIAL_WINDOW_SIZE, 1000)))
    assert (server.streams[1].send_window, server.window(3)) == (-59000 + 10 + 0 * 1, 1000)
    assert c.events[-1] == ("settings",)
    assert server.window(99) == 0


def test_data_and_headers_frames_written():
    c = Client()
    c.send(c.headers(1), c.headers(3, POST, end_stream=False))
    big = [(b":status", b"200"), (b"x-big", b"v" * 40000)]
    c.server.send_headers(1, encode_block(big))
    c.server.send_data(1, b"hello", True)
    c.server.send_headers(3, encode_block([(b":status", b"204")]), True)  # half-closed (local): the stream stays
    written = read_frames(c.server.data_to_send())
    assert [(n, sid, flags) for n, sid, flags, _ in written] == [
        ("HeadersFrame", 1, set()), ("ContinuationFrame", 1, set()), ("ContinuationFrame", 1, {"END_HEADERS"}),
        ("DataFrame", 1, {"END_STREAM"}),
        ("HeadersFrame", 3, {"END_HEADERS", "END_STREAM"})]
    block = b"".join(p.data for n, _, _, p in written[:3])
    assert Decoder().decode(block, raw=True) == big
    assert written[3][3].data == b"hello"
    assert 1 not in c.server.streams and 3 in c.server.streams
    c.server.send_data(1, b"late")  # nothing goes out on a forgotten stream
    assert c.server.data_to_send() == b""


def test_goaway_from_us_and_streams_after_it_are_ignored():
    c = Client()
    c.send(c.headers(1))
    c.server.close()
    (name, _, _, goaway), = read_frames(c.server.data_to_send())
    assert (name, goaway.last_stream_id, goaway.error_code) == ("GoAwayFrame", 1, f.NO_ERROR)
    c.send(c.headers(3))
    assert ("request", 3, True) not in c.events
    c.server.close()
    assert c.server.data_to_send() == b""  # one GOAWAY


# -- header blocks: the quick reading and the Decoder agree ---------------------------------------

@pytest.mark.parametrize("huffman", [False, True])
def test_repeated_blocks_read_the_same_as_the_decoder_reads_them(huffman):
    c = Client(max_concurrent=100)
    reference = Decoder()
    fields = GET + [(b"user-agent", b"h2load nghttp2/1.52.0"), (b"accept", b"*/*")]
    sid = 1
    for path in (b"/a", b"/a", b"/b", b"/a", b"/" + b"x" * 200):
        fields[2] = (b":path", path)
        block = c.block(fields, huffman=huffman)
        c.send(frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, block))
        expected = reference.decode(block, raw=True)
        head = c.heads[sid]
        assert (head.path, head.fields[0]) == (path, (b"host", b"example.test"))
        assert head.fields[1:] == [field for field in expected if field[0][:1] != b":"]
        sid += 2


def test_a_remembered_block_means_something_else_after_the_table_changes():
    c = Client()

    def literal_indexed(name: bytes, value: bytes) -> bytes:  # RFC 7541 §6.2.1, new name
        return b"\x40" + bytes([len(name)]) + name + bytes([len(value)]) + value

    pseudo = b"\x82\x87\x84"  # :method GET, :scheme https, :path /
    c.send(frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, pseudo + literal_indexed(b"x-a", b"1")))
    for sid in (3, 5):  # index 62: the newest dynamic entry
        c.send(frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, pseudo + b"\xbe"))
    c.send(frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 7, pseudo + literal_indexed(b"x-a", b"2")))
    c.send(frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 9, pseudo + b"\xbe"))
    assert [c.heads[sid].fields for sid in (1, 3, 5, 7, 9)] == [
        [(b"x-a", b"1")], [(b"x-a", b"1")], [(b"x-a", b"1")], [(b"x-a", b"2")], [(b"x-a", b"2")]]
    assert c.heads[5] is c.heads[3]  # the same block, remembered
    assert c.heads[9] is not c.heads[3]


def test_repr_shows_the_state():
    c = Client()
    c.send(c.headers(1, POST, end_stream=False))
    assert repr(c.server) == "<h2 ServerConnection open streams=1 last=1>"
    assert "remote=open local=open" in repr(c.server.streams[1])


def test_a_handler_that_raises_ends_the_connection():
    c = Client()

    def broken(sid, head, ended):
        raise RuntimeError("bug")

    c.on_request = broken
    with pytest.raises(RuntimeError):
        c.server.receive(c.headers(1) + c.headers(3))
    assert c.server.error.code == f.INTERNAL_ERROR
    assert read_frames(c.server.data_to_send())[-1][3].error_code == f.INTERNAL_ERROR
    c.server.receive(c.headers(5))  # nothing more is read
    assert c.server.data_to_send() == b""


def test_rapid_reset_ends_the_connection_but_a_cancel_now_and_then_does_not():
    """Rule 9 (CVE-2023-44487): streams opened and reset before their responses."""
    from owncdn.core.http.h2server import RESET_ALLOWANCE

    cancel = f.CANCEL.to_bytes(4, "big")
    flood = Client()
    written = []
    for i in range(RESET_ALLOWANCE + 1):
        sid = 2 * i + 1
        written = flood.send(flood.headers(sid), frame(f.RST_STREAM, 0, sid, cancel))
    assert flood.goaway_code(written) == f.ENHANCE_YOUR_CALM and flood.server.error is not None

    browser = Client()
    for i in range(4 * RESET_ALLOWANCE):
        sid = 2 * i + 1
        browser.send(browser.headers(sid))
        if i % 3:  # two of three answered, one cancelled
            browser.server.send_headers(sid, encode_block([(b":status", b"200")]), end_stream=True)
            browser.server.data_to_send()
        else:
            browser.send(frame(f.RST_STREAM, 0, sid, cancel))
    assert browser.server.error is None and browser.server.early_resets > RESET_ALLOWANCE
