"""HPACK header blocks as a server receives them (RFC 7541), on the hpack package's Decoder.

Rules:
1. The Decoder keeps the dynamic table. A block that changes no decoder state
   (indexed fields, literals without indexing or never indexed: §6.1, §6.2.2,
   §6.2.3; what a repeated request usually sends) is read here against the
   Decoder's tables instead, which costs a fraction of the Decoder's time; a block
   with anything else (incremental indexing, a table size update, an error, a list
   over the limit) goes to the Decoder, which applies it or raises.
2. Such a block means the same until the dynamic table changes, so up to 64 of them
   are remembered (per connection) with their fields and a slot for what the caller
   derives from them; all are forgotten whenever the Decoder reads a block.
3. Fields are (name, value) byte pairs; the list's size counts 32 octets per field
   as §4.1 does, against the same limit the Decoder applies.
"""

from __future__ import annotations

from hpack import Decoder
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

__all__ = ["BlockReader"]

_BLOCK_MEMORY = 64  # Rule 2
_STATIC = HeaderTable.STATIC_TABLE
_STATIC_LENGTH = len(_STATIC)


class BlockReader:
    """One connection's inbound header blocks -> field lists (Rules 1-3)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.decoder = Decoder(max_header_list_size=limit)
        self._blocks: dict[bytes, list] = {}  # block -> [fields, the caller's slot] (Rule 2)

    def __repr__(self) -> str:
        table = len(self.decoder.header_table.dynamic_entries)
        return f"<BlockReader remembered={len(self._blocks)} table={table}>"

    def read(self, block: bytes) -> tuple[list, list | None]:
        """-> the fields, and the remembered entry [fields, slot] or None. Raises what
        the Decoder raises (hpack.exceptions.HPACKError and its kin)."""
        entry = self._blocks.get(block)
        if entry is not None:
            return entry[0], entry
        fields = self._simple(block) if block else []
        if fields is None:
            self._blocks.clear()  # the dynamic table may change
            return self.decoder.decode(block, raw=True), None
        if len(self._blocks) < _BLOCK_MEMORY:
            entry = self._blocks[block] = [fields, None]
        return fields, entry

    def _simple(self, block: bytes) -> list | None:
        """A block that changes no decoder state (indexed fields, and literals without
        indexing or never indexed, RFC 7541 §6.1, §6.2.2-3: what a repeated request
        usually sends), decoded here against the Decoder's tables; None when the
        Decoder must do it (other representations, errors, a list too large)."""
        dynamic = self.decoder.header_table.dynamic_entries
        fields = []
        size = pos = 0
        end = len(block)
        while pos < end:
            octet = block[pos]
            if octet & 0x80:
                index = octet & 0x7F
                if index == 0x7F:
                    index, pos = _integer(block, pos, 0x7F)
                else:
                    pos += 1
            elif octet < 0x20:
                index = octet & 0x0F
                if index == 0x0F:
                    index, pos = _integer(block, pos, 0x0F)
                else:
                    pos += 1
            else:
                return None  # incremental indexing or a table size update
            if pos < 0:
                return None
            if index == 0:
                if octet & 0x80:
                    return None  # index 0 is an error: the Decoder reports it
                name, pos = _literal(block, pos)
            elif index <= _STATIC_LENGTH:
                name, value = _STATIC[index - 1]
            elif index - _STATIC_LENGTH <= len(dynamic):
                name, value = dynamic[index - _STATIC_LENGTH - 1]
                if type(name) is not bytes:
                    name = bytes(name)
                if type(value) is not bytes:
                    value = bytes(value)
            else:
                return None
            if not octet & 0x80:
                value, pos = _literal(block, pos)
            if pos < 0:
                return None
            size += len(name) + len(value) + 32
            fields.append((name, value))
        return fields if size <= self.limit else None


def _integer(block: bytes, pos: int, mask: int) -> tuple[int, int]:
    """An integer whose prefix (mask) at pos is full, so more octets follow (RFC 7541
    §5.1) -> the value and the position after it; (-1, -1) when it is cut short or
    too long to be sane."""
    value = mask
    shift = 0
    end = len(block)
    pos += 1
    while pos < end and shift <= 21:
        octet = block[pos]
        pos += 1
        value += (octet & 0x7F) << shift
        shift += 7
        if not octet & 0x80:
            return value, pos
    return -1, -1


def _literal(block: bytes, pos: int) -> tuple[bytes, int]:
    """A string literal at pos (RFC 7541 §5.2) -> the string and the position after
    it; position -1 when it is cut short (the Decoder then reports it)."""
    if pos < 0 or pos >= len(block):
        return b"", -1
    first = block[pos]
    length = first & 0x7F
    if length == 0x7F:
        length, pos = _integer(block, pos, 0x7F)
        if pos < 0:
            return b"", -1
    else:
        pos += 1
    end = pos + length
    if end > len(block):
        return b"", -1
    data = block[pos:end]
    return (decode_huffman(data) if first & 0x80 else data), end
