"""The disk tier's in-memory index: what is on disk, by key, by URI and by tag.

Rules:
1. One entry per key: adding a key that is already there replaces the old entry
   and its bytes in `used`.
2. `used` counts whole files (header, key, URI, tags, meta and body), the bytes the
   objects take on disk before file-system rounding.
3. The URI and tag indexes never hold a key the entries do not hold.

The index is plain data with no locking and no I/O; `DiskStore` (disk.py) owns one,
guards its changes with a lock and fills it from the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class DiskEntry:
    key: str
    path: str  # the object's file: <root>/<2 hex>/<32 hex of blake2b(key)>
    size: int  # body bytes
    meta_size: int
    uri: str = ""
    tags: tuple[str, ...] = ()
    stored_at: float = 0.0
    # True once the body and meta checksum matched in this process (or this process
    # wrote the file); an entry found by load() or refresh() starts unverified.
    verified: bool = False
    object_id: int = 0  # random per write: tells one version of a key's file from the next
    body_offset: int = 0
    file_size: int = 0  # what `used` counts
    body_crc: int = 0  # crc32 of meta + body, from the header

    def __repr__(self) -> str:
        state = "verified" if self.verified else "unverified"
        return f"<DiskEntry {self.key!r} size={self.size} meta={self.meta_size} {state}>"


def _unindex(index: dict[str, set[str]], name: str, key: str) -> None:
    keys = index.get(name)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[name]


@dataclass
class DiskIndex:
    entries: dict[str, DiskEntry] = field(default_factory=dict)
    by_uri: dict[str, set[str]] = field(default_factory=dict)
    by_tag: dict[str, set[str]] = field(default_factory=dict)
    used: int = 0

    def __repr__(self) -> str:
        return f"<DiskIndex keys={len(self.entries)} used={self.used}>"

    def add(self, entry: DiskEntry) -> DiskEntry | None:
        """Index `entry`; returns the entry it replaced, if any."""
        old = self.discard(entry.key)
        self.entries[entry.key] = entry
        self.used += entry.file_size
        self.by_uri.setdefault(entry.uri, set()).add(entry.key)
        for tag in entry.tags:
            self.by_tag.setdefault(tag, set()).add(entry.key)
        return old

    def discard(self, key: str, only: DiskEntry | None = None) -> DiskEntry | None:
        """Forget `key` (only if its entry is `only`, when given); returns the entry."""
        entry = self.entries.get(key)
        if entry is None or (only is not None and entry is not only):
            return None
        del self.entries[key]
        self.used -= entry.file_size
        _unindex(self.by_uri, entry.uri, key)
        for tag in entry.tags:
            _unindex(self.by_tag, tag, key)
        return entry

    def keys_with_uri_prefix(self, prefix: str) -> set[str]:
        return {k for uri, keys in self.by_uri.items() if uri.startswith(prefix) for k in keys}

    def keys_for_tag(self, tag: str) -> set[str]:
        return set(self.by_tag.get(tag, ()))
