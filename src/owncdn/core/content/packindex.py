"""Pack indexes: which byte ranges of an edge's blob pack are verified blobs.

An edge keeps the blobs a bundle brings in one pack file (``owncdn/packs.py``): their
bytes back to back, and next to it an index of fixed-size records appended as each
blob is verified:

    MAGIC (8 bytes), HEADED (a headed pack's, Rule 1), then per blob:
    <blob name, ASCII, NUL-padded to 67 bytes> <offset u64 LE> <size u64 LE> <crc32 u32 LE>

Rules:
1. A record is ``RECORD`` bytes; its CRC-32 covers the 83 bytes before it. A file that
   does not start with ``MAGIC`` holds no records. ``HEADED``, a record named
   ``headed`` (not a blob name: Rule 2 skips it, so an owncdn that does not know it
   reads the pack's blobs as before), first after the magic says that in the pack
   each blob comes right after its bundle record header (``bundle.header(name,
   size)``): the bytes from a header to a blob's end are bundle records as a download
   sends them (the control plane's packs). ``headed(data)`` tells whether an index
   begins so.
2. ``decode`` reads whole records in order and skips one whose CRC does not match or
   whose name is not a blob name (``digest.is_blob_name``); bytes after the last whole
   record (a record torn by a crash) are ignored. A record whose range ends past
   ``pack_size`` (the pack file's length, when given) is skipped: its bytes are not
   all there. A name recorded twice keeps its first record.
3. ``compactable``: a pack whose live blob bytes are under half of its length.
4. ``small_to_merge(sizes)``: of packs ``{number: length}`` (every one alive, not
   being written), those under ``SMALL_PACK`` bytes, when there are ``MERGE_MIN`` or
   more of them (else none): a one-file push makes a small pack each time, and
   merging them into one keeps the number of files in check. At most ``MERGE_MAX``
   at a time (64 MiB copied at most), the oldest first (by number).
No files are read here.
"""

from __future__ import annotations

import struct
import zlib

from .digest import is_blob_name

__all__ = ["HEADED", "MAGIC", "MERGE_MAX", "MERGE_MIN", "RECORD", "SMALL_PACK", "compactable", "decode", "encode",
           "headed", "small_to_merge"]

MAGIC = b"OCPKIDX1"
_NAME = 67
_BODY = struct.Struct(f"<{_NAME}sQQ")
_CRC = struct.Struct("<I")
RECORD = _BODY.size + _CRC.size  # 87
SMALL_PACK = 1 << 20  # Rule 4
MERGE_MIN = 16
MERGE_MAX = 64


def encode(name: str, offset: int, size: int) -> bytes:
    """One index record (Rule 1)."""
    body = _BODY.pack(name.encode("ascii"), offset, size)
    return body + _CRC.pack(zlib.crc32(body))


HEADED = encode("headed", 0, 0)  # Rule 1: each blob follows its bundle record header in the pack


def decode(data: bytes, pack_size: int | None = None) -> dict[str, tuple[int, int]]:
    """The records of an index file's bytes: blob name -> (offset, size) (Rule 2)."""
    out: dict[str, tuple[int, int]] = {}
    if not data.startswith(MAGIC):
        return out
    view = memoryview(data)
    for at in range(len(MAGIC), len(data) - RECORD + 1, RECORD):
        body = view[at:at + _BODY.size]
        (crc,) = _CRC.unpack_from(view, at + _BODY.size)
        if zlib.crc32(body) != crc:
            continue
        raw, offset, size = _BODY.unpack(body)
        try:
            name = raw.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            continue
        if not is_blob_name(name) or (pack_size is not None and offset + size > pack_size):
            continue
        out.setdefault(name, (offset, size))
    return out


def headed(data: bytes) -> bool:
    """Whether an index's pack holds a header before each blob (Rule 1)."""
    return data.startswith(HEADED, len(MAGIC))


def compactable(live_bytes: int, pack_size: int) -> bool:
    """Rule 3."""
    return live_bytes * 2 < pack_size


def small_to_merge(sizes: dict[int, int]) -> list[int]:
    """Rule 4: the numbers of the small packs to merge into one, oldest first."""
    small = sorted(number for number, size in sizes.items() if size < SMALL_PACK)
    return small[:MERGE_MAX] if len(small) >= MERGE_MIN else []
