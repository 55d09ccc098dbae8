"""The disk tier's object file format: what one cached object's file holds.

Rules:
1. One file per key, at <root>/<h[:2]>/<h>, h = blake2b(key, 16 bytes) in hex
   (`object_name`): 256 directories keep each one small. The file holds a header, the
   key, URI and tags (so `load()` can rebuild the index from headers alone), the meta
   blob (opaque: the caller's serialised response head) and the body:

       fixed header (60 bytes, little-endian, `FIXED`)
         magic "OCDNOBJ1", format version, flags, key/uri/tags/meta lengths,
         body length, object id (random per write), stored_at,
         body_crc = crc32(meta + body), head_crc = crc32(fixed[:56] + key + uri + tags)
       key | uri | tags (NUL-separated) | meta | body

2. zlib.crc32 is the checksum: it finds torn writes and flipped bits (not tampering),
   and runs at about 5 GB/s here against about 1 GB/s for blake2b.
3. A header is trusted only once `parse_head` / `checked_head` pass: magic and version,
   lengths within MAX_NAMES / MAX_META, head_crc, decodable names and, for
   `checked_head`, the key asked for, a file name that is the hash of that key and a
   file size equal to the header's. Any failure raises BadHeader; what to do about it
   (remove the file, treat it as a miss) is disk.py's business.

Pure functions over bytes and file descriptors: no index, no locking, no writes.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import TYPE_CHECKING, NamedTuple

from owncdn.edge.diskindex import DiskEntry, object_name

if TYPE_CHECKING:
    from owncdn.edge.disk import DiskStore

__all__ = ["FIXED", "FORMAT_VERSION", "MAGIC", "MAX_META", "MAX_NAMES", "READ_AHEAD",
           "BadHeader", "Head", "checked_head", "content_crc", "encode_names",
           "object_name", "pack_head", "parse_head"]

MAGIC = b"OCDNOBJ1"
FORMAT_VERSION = 1
READ_AHEAD = 4096  # bytes load() reads per file: header, key, URI, tags
MAX_NAMES = 1 << 20  # key + URI + tags: longer means a garbage header
MAX_META = 64 << 20
FIXED = struct.Struct("<8sHHIIIIQQdII")
assert FIXED.size == 60  # diskindex.py derives meta sizes from it
_VERIFY_CHUNK = 256 * 1024


class BadHeader(Exception):
    """The file is not a valid object (rule 3)."""


def encode_names(key: str, uri: str, tags: tuple[str, ...]) -> tuple[bytes, bytes, bytes]:
    if any(not t or "\0" in t for t in tags):
        raise ValueError("tags must be non-empty and contain no NUL")
    enc = [s.encode("utf-8", "surrogatepass") for s in (key, uri, "\0".join(tags))]
    if sum(map(len, enc)) > MAX_NAMES:
        raise ValueError("key, uri and tags together exceed 1 MiB")
    return enc[0], enc[1], enc[2]


def pack_head(names: tuple[bytes, bytes, bytes], meta_size: int, size: int,
              object_id: int, stored_at: float, body_crc: int) -> bytes:
    key, uri, tags = names
    fixed = FIXED.pack(MAGIC, FORMAT_VERSION, 0, len(key), len(uri), len(tags), meta_size,
                       size, object_id, stored_at, body_crc, 0)[:-4]
    head_crc = zlib.crc32(tags, zlib.crc32(uri, zlib.crc32(key, zlib.crc32(fixed))))
    return fixed + head_crc.to_bytes(4, "little") + key + uri + tags


class Head(NamedTuple):
    """Everything a file's header says; the index keeps only part of it (DiskEntry)."""

    key: str
    uri: str
    tags: tuple[str, ...]
    size: int
    meta_size: int
    stored_at: float
    object_id: int
    body_offset: int
    body_crc: int

    @property
    def file_size(self) -> int:
        return self.body_offset + self.size

    def entry(self, store: DiskStore, verified: bool = False) -> DiskEntry:
        return store.Entry(self.key, self.uri, self.tags, self.size, self.body_offset,
                           self.object_id, verified)


def parse_head(buf: bytes, fd: int, path: str) -> tuple[Head, bytes]:
    """Parse and check a header from `buf` (the file's start; reads more from `fd`)."""
    if len(buf) < FIXED.size:
        raise BadHeader("shorter than a header")
    (magic, version, _flags, klen, ulen, tlen, mlen, size, object_id, stored_at, body_crc,
     head_crc) = FIXED.unpack_from(buf)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise BadHeader("bad magic or format version")
    if klen + ulen + tlen > MAX_NAMES or mlen > MAX_META:
        raise BadHeader("impossible lengths")
    uri_at = FIXED.size + klen
    tags_at = uri_at + ulen
    meta_at = tags_at + tlen
    if len(buf) < meta_at:
        buf = os.pread(fd, meta_at, 0)
        if len(buf) < meta_at:
            raise BadHeader("file ends inside the header")
    if zlib.crc32(buf[FIXED.size:meta_at], zlib.crc32(buf[:FIXED.size - 4])) != head_crc:
        raise BadHeader("header checksum mismatch")
    try:
        key = buf[FIXED.size:uri_at].decode("utf-8", "surrogatepass")
        uri = buf[uri_at:tags_at].decode("utf-8", "surrogatepass")
        tags = tuple(buf[tags_at:meta_at].decode("utf-8", "surrogatepass").split("\0")) if tlen else ()
    except UnicodeDecodeError as exc:
        raise BadHeader("undecodable names") from exc
    body_at = meta_at + mlen
    return Head(key, uri, tags, size, mlen, stored_at, object_id, body_at, body_crc), buf


def checked_head(fd: int, path: str, name: str | None, key: str | None,
                 want: int = READ_AHEAD) -> tuple[Head, bytes]:
    """Read and check the header of the open file `fd` against its size and name.

    Returns the entry it describes and the bytes read from the file's start (`want`
    bytes, or to the end of the names if they are longer).
    """
    head, buf = parse_head(os.pread(fd, want, 0), fd, path)
    if key is not None and head.key != key:
        raise BadHeader("key differs from the one asked for")
    if name is not None and object_name(head.key) != name:
        raise BadHeader("file name is not the hash of its key")
    if os.fstat(fd).st_size != head.file_size:
        raise BadHeader("file size differs from the header's")
    return head, buf


def content_crc(fd: int, offset: int, size: int, crc: int) -> int:
    """crc32 of `size` bytes of `fd` from `offset`, continuing from `crc` (rule 2)."""
    buf = memoryview(bytearray(min(size, _VERIFY_CHUNK) or 1))
    while size:
        n = os.preadv(fd, [buf[:min(size, len(buf))]], offset)
        if n <= 0:
            raise BadHeader("file ends inside the body")
        crc = zlib.crc32(buf[:n], crc)
        offset += n
        size -= n
    return crc
