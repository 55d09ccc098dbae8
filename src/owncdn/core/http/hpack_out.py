"""A small HPACK encoder for response heads (RFC 7541) that never uses the dynamic table.

Rules:
1. Every header block starts with a dynamic table size update to 0 (§6.3): always
   within what the peer allows, and it keeps our table empty whatever the peer's
   SETTINGS_HEADER_TABLE_SIZE says, so nothing needs tracking between blocks.
2. A field that is in the static table with its value is one index byte (§6.1).
3. Any other field is a literal without indexing (§6.2.2): the name as a static-table
   index when the name is there, else as a string; the value as a plain string
   (no Huffman coding: it costs more CPU than the bytes it saves are worth here).
4. A field's encoding is remembered (up to 4096 fields, then forgotten at once):
   response heads repeat most of their fields, and a repeated one is one lookup.
5. Names must already be lowercase and values free of CR, LF and NUL: the edge builds
   them from heads it made itself.
6. `encode_head` turns an HTTP/1.1-shaped response head, as the edge's application
   writes it, into the status and one block: `:status` first, names lowercased,
   values stripped, connection-specific fields dropped (RFC 9113 §8.2.2). Each line's
   encoding is remembered as in Rule 4, keyed by the line's bytes.
7. `encode_stored` does the same for a stored object's head (its fields end with
   CRLF, no blank line) and remembers the whole block, keyed by the head's bytes (up
   to 4096 heads): a cache hit's head is one lookup. `encode_lines` encodes the
   fields the edge adds per response (Age, X-Request-Id, ...), to be appended.

Why: the hpack package searches its dynamic table linearly for every field and
Huffman-codes every string; measured on an HTTP/2 cache hit, that was most of the
CPU time. This encoder is a few dict lookups and byte joins per field.
"""

from __future__ import annotations

from hpack.table import HeaderTable

__all__ = ["encode_block", "encode_head", "encode_lines", "encode_stored"]

# Fields that mean something only to one HTTP/1.1 connection (RFC 9113 §8.2.2).
CONNECTION_SPECIFIC = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
})

_SIZE_ZERO = b"\x20"  # dynamic table size update, max size 0 (Rule 1)
_FULL: dict[tuple[bytes, bytes], bytes] = {}
_NAME: dict[bytes, bytes] = {}
for _i, (_n, _v) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _FULL.setdefault((_n, _v), bytes([0x80 | _i]))
    _NAME.setdefault(_n, b"")


def _integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """§5.1: an integer with an N-bit prefix, `first` holding the bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


for _i, (_n, _v) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    if not _NAME[_n]:
        _NAME[_n] = _integer(_i, 4)  # literal without indexing, indexed name (§6.2.2)


def _string(data: bytes) -> bytes:
    n = len(data)
    return (bytes([n]) if n < 127 else _integer(n, 7)) + data


def encode_block(fields) -> bytes:
    """Encode (name, value) byte pairs as one header block (Rules 1-4)."""
    out = [_SIZE_ZERO]
    known = _KNOWN
    for field in fields:
        encoded = known.get(field)
        if encoded is None:
            encoded = _field(field)
            if len(known) >= 4096:
                known.clear()
            known[field] = encoded
        out.append(encoded)
    return b"".join(out)


def _field(field: tuple[bytes, bytes]) -> bytes:
    index = _FULL.get(field)
    if index is not None:
        return index
    name, value = field
    prefix = _NAME.get(name)
    if prefix is None:
        return b"\x00" + _string(name) + _string(value)
    return prefix + _string(value)


_KNOWN: dict[tuple[bytes, bytes], bytes] = {}  # Rule 4


def encode_head(head: bytes) -> tuple[int, bytes]:
    """An HTTP/1.1 response head without its final blank line -> status, block (Rule 6)."""
    lines = head.split(b"\r\n")
    code = lines[0][9:12]
    status = _STATUS.get(code)
    if status is None:
        status = _STATUS[code] = _field((b":status", code))
    out = [_SIZE_ZERO, status]
    _encode_lines(lines, 1, out)
    return int(code), b"".join(out)


def encode_stored(head: bytes) -> tuple[int, bytes]:
    """A stored head (status line and fields, each ending with CRLF) -> status, block,
    remembered whole (Rule 7)."""
    found = _HEADS.get(head)
    if found is None:
        if len(_HEADS) >= 4096:
            _HEADS.clear()
        found = _HEADS[head] = encode_head(head[:-2] if head.endswith(b"\r\n") else head)
    return found


def encode_lines(fields: bytes) -> bytes:
    """Header lines (``Name: value`` separated by CRLF) -> their fields' encodings, to
    follow a block from `encode_stored` (Rule 7)."""
    out: list[bytes] = []
    _encode_lines(fields.split(b"\r\n"), 0, out)
    return b"".join(out)


def _encode_lines(lines: list[bytes], start: int, out: list[bytes]) -> None:
    known = _LINES
    for i in range(start, len(lines)):
        line = lines[i]
        encoded = known.get(line)
        if encoded is None:
            encoded = _line(line)
            if len(known) >= 4096:
                known.clear()
            known[line] = encoded
        out.append(encoded)


def _line(line: bytes) -> bytes:
    name, _, value = line.partition(b":")
    name = name.lower()
    if not name or name in CONNECTION_SPECIFIC:
        return b""
    return _field((name, value.strip()))


_LINES: dict[bytes, bytes] = {}  # Rule 6: a head line -> its encoding
_STATUS: dict[bytes, bytes] = {}  # a status code -> its :status field's encoding
_HEADS: dict[bytes, tuple[int, bytes]] = {}  # Rule 7: a stored head -> status, block
