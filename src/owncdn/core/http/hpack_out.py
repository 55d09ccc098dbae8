"""A small HPACK encoder for response heads (RFC 7541) that never uses the dynamic table.

Rules:
1. Every header block starts with a dynamic table size update to 0 (§6.3): always
   within what the peer allows, and it keeps our table empty whatever the peer's
   SETTINGS_HEADER_TABLE_SIZE says, so nothing needs tracking between blocks.
2. A field that is in the static table with its value is one index byte (§6.1).
3. Any other field is a literal without indexing (§6.2.2): the name as a static-table
   index when the name is there, else as a string; the value as a plain string
   (no Huffman coding: it costs more CPU than the bytes it saves are worth here).
4. Names must already be lowercase and values free of CR, LF and NUL: the edge builds
   them (edge/h2.py) from heads it made itself.

Why: the hpack package searches its dynamic table linearly for every field and
Huffman-codes every string; measured on an HTTP/2 cache hit, that was most of the
CPU time. This encoder is a few dict lookups and byte joins per field.
"""

from __future__ import annotations

from hpack.table import HeaderTable

__all__ = ["encode_block"]

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
    """Encode (name, value) byte pairs as one header block (Rules 1-3)."""
    out = [_SIZE_ZERO]
    full, names = _FULL, _NAME
    for field in fields:
        index = full.get(field)
        if index is not None:
            out.append(index)
            continue
        name, value = field
        prefix = names.get(name)
        if prefix is None:
            out.append(b"\x00" + _string(name))
        else:
            out.append(prefix)
        out.append(_string(value))
    return b"".join(out)
