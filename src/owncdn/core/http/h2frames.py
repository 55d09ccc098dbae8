"""HTTP/2 frames on the wire (RFC 9113 §4, §6): codes and the frames a server writes.

Rules:
1. A frame is a 9-octet header (24-bit length, type, flags, a reserved bit and a
   31-bit stream id) and its payload (§4.1). `header()` builds that header; the
   builders below return whole frames as bytes, ready to join into one write.
2. Header blocks larger than the peer's SETTINGS_MAX_FRAME_SIZE are split into one
   HEADERS frame and CONTINUATION frames, END_HEADERS on the last (§6.10).
3. Codes are plain ints (frame types, flags, settings, error codes from §7), so the
   frame loop compares ints; `ERROR_NAMES` gives the RFC's names for reprs and logs.
"""

from __future__ import annotations

__all__ = [
    "PREFACE", "header", "settings", "SETTINGS_ACK", "ping_ack", "window_update", "rst_stream",
    "goaway", "headers", "ERROR_NAMES",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # §3.4: what a client sends first

# Frame types (§6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Settings (§6.5.2).
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

# Error codes (§7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD
ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
    0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
}

MIN_MAX_FRAME_SIZE = 16384  # the default, and the least a peer may set (§6.5.2)
MAX_MAX_FRAME_SIZE = (1 << 24) - 1
MAX_WINDOW = (1 << 31) - 1  # §6.9.1
DEFAULT_WINDOW = 65535


def header(length: int, ftype: int, flags: int, stream_id: int) -> bytes:
    """The 9-octet frame header (Rule 1)."""
    return (length << 48 | ftype << 40 | flags << 32 | stream_id).to_bytes(9, "big")


def settings(values: dict[int, int]) -> bytes:
    payload = b"".join(ident.to_bytes(2, "big") + value.to_bytes(4, "big") for ident, value in values.items())
    return header(len(payload), SETTINGS, 0, 0) + payload


SETTINGS_ACK = header(0, SETTINGS, ACK, 0)


def ping_ack(payload: bytes) -> bytes:
    return header(8, PING, ACK, 0) + payload


def window_update(stream_id: int, increment: int) -> bytes:
    return header(4, WINDOW_UPDATE, 0, stream_id) + increment.to_bytes(4, "big")


def rst_stream(stream_id: int, code: int) -> bytes:
    return header(4, RST_STREAM, 0, stream_id) + code.to_bytes(4, "big")


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return header(8 + len(debug), GOAWAY, 0, 0) + last_stream_id.to_bytes(4, "big") + code.to_bytes(4, "big") + debug


def headers(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> list[bytes]:
    """One header block as HEADERS (+ CONTINUATION) frames (Rule 2)."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return [header(len(block), HEADERS, flags | END_HEADERS, stream_id), block]
    out = [header(max_frame, HEADERS, flags, stream_id), block[:max_frame]]
    pos = max_frame
    while pos < len(block):
        piece = block[pos:pos + max_frame]
        pos += len(piece)
        out.append(header(len(piece), CONTINUATION, END_HEADERS if pos >= len(block) else 0, stream_id))
        out.append(piece)
    return out
