"""The disk tier's index snapshot: `load()` without reading every object's header.

Rules:
1. `<root>/index.snapshot` holds one store's index (key, URI, tags, size, body
   offset, object id per entry, in index order: oldest first) and, for each of the
   256 subdirectories, its identity when the snapshot was written (inode, mtime_ns,
   ctime_ns) and whether the entries describe it exactly. It is written to a temp
   file, fsynced and renamed into place, then the root is fsynced (no fsync under the
   "never" policy): a reader sees a whole snapshot or the previous one. The store
   flushes its pending fsyncs first, so under "always" and "batch" the snapshot
   names no object that a power loss can take back.

       header (`_HEAD`): magic "OCDNSNAP", snapshot version, object format version,
         entry count, root length, names length, time written (ns)
       root (the store's path, UTF-8)
       256 directory records (`_DIR`): inode, mtime_ns, ctime_ns, exact
       one fixed record per entry (`_ENTRY`): directory, key/URI/tags lengths,
         body size, body offset, object id
       names: key | URI | tags (NUL-separated) of every entry, in entry order
       crc32 of everything before it (4 bytes)

2. A directory is recorded as exact only if (a) it held, between two stats that
   agree, exactly the files the index names (no temp file, no other process's
   object, no file removed behind the index's back), and (b) it was last changed
   more than `RACY_NS` before the snapshot began. (b) is git's "racy" rule: file
   system timestamps come from a coarse clock (a jiffy; 2 s on some file systems),
   so a change made in the same tick as the recorded one could leave mtime and
   ctime as they were; a directory that old can only get a later timestamp.
3. `load()` takes a directory's entries from the snapshot only if the directory is
   recorded as exact and its inode, mtime_ns and ctime_ns are still the recorded
   ones: any create, rename or unlink in it changes both times (and a copy or a
   restored backup changes the inode). Every other directory is scanned as if there
   were no snapshot. A snapshot whose checksum, magic, versions, root or lengths do
   not match is not used at all, and is removed.
4. So a snapshot never goes stale in a harmful way: nothing removes it when the
   store starts writing after a load, since each write or removal changes its
   directory's times and the next `load()` compares them again. A snapshot left by
   a crash still serves the directories untouched since it was written.
5. Entries from a snapshot start unverified, like scanned ones (disk.py rule 5): a
   file changed in place (a torn write the power loss left behind a durable
   rename, bit rot) is caught by the first `open()`, never served. A file another
   process renamed over one the index knew (same name, so the name check cannot
   tell) leaves a stale object id and size, which `open()` corrects (disk.py rule 6).
   Rule 2 assumes timestamps from this machine's clock (a local file system, not
   NFS) and a clock that never steps back by more than `RACY_NS`; where that fails,
   the worst is such a stale entry or a file the index misses (found by `refresh()`
   on a miss, but not counted in `used`), never a corrupt object served.

No locking here: `DiskStore` (disk.py) decides what to snapshot and when.
"""

from __future__ import annotations

import os
import secrets
import struct
import time
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from owncdn.edge.diskindex import object_name

SNAPSHOT_NAME = "index.snapshot"
SNAPSHOT_VERSION = 1
RACY_NS = 2_000_000_000  # a directory changed this recently is rescanned (rule 2)
_MAGIC = b"OCDNSNAP"
_HEAD = struct.Struct("<8sHHIIQq")
_DIR = struct.Struct("<QqqB")
_ENTRY = struct.Struct("<BIIIQIQ")
_CRC = 4
_TEMP_PREFIX = SNAPSHOT_NAME + ".tmp-"
_STALE_TEMP_AGE = 3600.0  # seconds: a snapshot write takes well under a minute
DIRS = 256


class SnapshotInvalid(Exception):
    """The snapshot cannot be used (the message says why)."""


class DirState(NamedTuple):
    """What tells one state of a directory from the next (rule 3)."""

    ino: int
    mtime_ns: int
    ctime_ns: int


def dir_state(path: str) -> DirState:
    st = os.stat(path)
    return DirState(st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


class Record(NamedTuple):
    """One entry as the snapshot holds it; `tags` is NUL-separated, as in the file."""

    directory: int
    key: str
    uri: str
    tags: str
    size: int
    body_offset: int
    object_id: int


@dataclass
class Snapshot:
    dirs: list[DirState | None]  # None: not exact when written (rule 2)
    records: list[Record]



def unchanged_dirs(snapshot: Snapshot | None, subdirs: list[str]) -> list[bool]:
    """For each directory, whether `load()` may take its entries from `snapshot` (rule 3)."""
    if snapshot is None:
        return [False] * len(subdirs)
    return [d is not None and d == dir_state(sub) for d, sub in zip(snapshot.dirs, subdirs)]


def save(root: str, subdirs: list[str], entries: list, started_ns: int, object_format: int,
         durable: bool = True) -> int:
    """Write a snapshot of `entries` (DiskEntry objects, in index order, copied from the
    index after `started_ns`); returns how many directories it describes exactly."""
    names: list[set[str]] = [set() for _ in subdirs]
    records: list[Record] = []
    for e in entries:
        name = object_name(e.key)
        directory = int(name[:2], 16)
        names[directory].add(name)
        records.append(Record(directory, e.key, e.uri, "\0".join(e.tags), e.size,
                              e.body_offset, e.object_id))
    dirs = [exact_dir(sub, names[i], started_ns) for i, sub in enumerate(subdirs)]
    write(root, encode(root, object_format, dirs, records, started_ns), durable)
    return sum(d is not None for d in dirs)


def exact_dir(path: str, names: set[str], started_ns: int) -> DirState | None:
    """The directory's state if it holds exactly `names` and is old enough (rule 2)."""
    before = dir_state(path)
    if max(before.mtime_ns, before.ctime_ns) > started_ns - RACY_NS:
        return None
    listed = os.listdir(path)
    if len(listed) != len(names) or not names.issuperset(listed):
        return None
    return before if dir_state(path) == before else None


def encode(root: str, object_format: int, dirs: list[DirState | None],
           records: list[Record], written_ns: int) -> bytes:
    root_bytes = os.path.abspath(root).encode("utf-8", "surrogatepass")
    fixed: list[bytes] = []
    names: list[bytes] = []
    for r in records:
        key, uri, tags = (s.encode("utf-8", "surrogatepass") for s in (r.key, r.uri, r.tags))
        fixed.append(_ENTRY.pack(r.directory, len(key), len(uri), len(tags), r.size,
                                 r.body_offset, r.object_id))
        names += (key, uri, tags)
    names_blob = b"".join(names)
    out = [_HEAD.pack(_MAGIC, SNAPSHOT_VERSION, object_format, len(records), len(root_bytes),
                      len(names_blob), written_ns), root_bytes]
    out += (_DIR.pack(*d, 1) if d is not None else _DIR.pack(0, 0, 0, 0) for d in dirs)
    out += fixed
    out.append(names_blob)
    body = b"".join(out)
    return body + zlib.crc32(body).to_bytes(_CRC, "little")


def decode(data: bytes, root: str, object_format: int) -> Snapshot:
    """Parse and check a snapshot of the store at `root`; raises SnapshotInvalid."""
    if len(data) < _HEAD.size + _CRC:
        raise SnapshotInvalid("shorter than a header")
    if zlib.crc32(memoryview(data)[:-_CRC]) != int.from_bytes(data[-_CRC:], "little"):
        raise SnapshotInvalid("checksum mismatch")
    magic, version, fmt, count, root_len, names_len, _written = _HEAD.unpack_from(data)
    if magic != _MAGIC or version != SNAPSHOT_VERSION or fmt != object_format:
        raise SnapshotInvalid(f"magic or version differs ({magic!r} {version} {fmt})")
    at = _HEAD.size + root_len
    if data[_HEAD.size:at] != os.path.abspath(root).encode("utf-8", "surrogatepass"):
        raise SnapshotInvalid("written for another root")
    entries_at = at + DIRS * _DIR.size
    names_at = entries_at + count * _ENTRY.size
    if names_at + names_len + _CRC != len(data):
        raise SnapshotInvalid("lengths do not add up")
    dirs = [DirState(ino, mtime, ctime) if exact else None
            for ino, mtime, ctime, exact in _DIR.iter_unpack(data[at:entries_at])]
    names = memoryview(data)[names_at:names_at + names_len]
    records: list[Record] = []
    pos = 0
    try:
        for directory, klen, ulen, tlen, size, body_offset, object_id in _ENTRY.iter_unpack(
                data[entries_at:names_at]):
            uri_at = pos + klen
            tags_at = uri_at + ulen
            end = tags_at + tlen
            records.append(Record(directory, str(names[pos:uri_at], "utf-8", "surrogatepass"),
                                  str(names[uri_at:tags_at], "utf-8", "surrogatepass"),
                                  str(names[tags_at:end], "utf-8", "surrogatepass"),
                                  size, body_offset, object_id))
            pos = end
    except UnicodeDecodeError as exc:
        raise SnapshotInvalid("undecodable names") from exc
    if pos != names_len or any(r.directory >= DIRS for r in records):
        raise SnapshotInvalid("entries do not match their names")
    return Snapshot(dirs, records)


def write(root: str, data: bytes, durable: bool = True) -> None:
    """Replace `<root>/index.snapshot` with `data` atomically (rule 1); durably unless
    the store's fsync policy is "never"."""
    path = os.path.join(root, SNAPSHOT_NAME)
    tmp = os.path.join(root, f"{_TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if not durable:
        return
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read(root: str, object_format: int) -> Snapshot | None:
    """The snapshot at `root`, or None if there is none; raises SnapshotInvalid.

    Also removes temp files of snapshot writes that a crash interrupted.
    """
    for name in os.listdir(root):
        if name.startswith(_TEMP_PREFIX):
            _remove_if_old(os.path.join(root, name))
    try:
        with open(os.path.join(root, SNAPSHOT_NAME), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return decode(data, root, object_format)


def _remove_if_old(path: str) -> None:
    try:
        if time.time() - os.stat(path).st_mtime > _STALE_TEMP_AGE:
            os.unlink(path)
    except FileNotFoundError:
        pass


def remove(root: str) -> None:
    try:
        os.unlink(os.path.join(root, SNAPSHOT_NAME))
    except FileNotFoundError:
        pass
