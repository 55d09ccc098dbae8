"""The disk tier's in-memory index: what is on disk, by key, by URI and by tag.

Rules:
1. One entry per key: adding a key that is already there replaces the old entry
   and its bytes in `used`.
2. `used` counts whole files (header, key, URI, tags, meta and body), the bytes the
   objects take on disk before file-system rounding.
3. The URI index never holds a key the entries do not hold. The tag index answers
   only with keys the entries hold with that tag; a tag's key list may keep stale
   slots (keys since removed or re-tagged) until more than half of it is stale, when
   it is compacted: amortised O(1) per change, and about 9 bytes per tag of an entry
   where a set takes about 50.
4. Memory: an edge holds millions of entries, so an entry keeps only what lookups
   and `open()` need before they read the file: key, URI, tags and one packed int
   (size, body offset, object id, verified). The file's path is derived from the key
   and the store's root (a class attribute of the store's entry type, not a field);
   the checksum and time stored are read from the header when the file is opened.
   Tags are interned (shared by every entry that has them). A URI's index value is
   the key itself while one key has that URI, and a set of keys from the second.
5. A URI that ends as its key does, from the URI's first "/" (the edge's
   `svc|host|/path` and `svc host/path`), is not kept: the entry points to a shared
   `_Prefixes` (`svc host`, `svc|host|`) and the URI is rebuilt from the key. Lookups
   by URI try the key `svc host` + `/path`; other URIs (keys with cookies or Vary
   variants, normalised queries) are kept and indexed as they are.

The index is plain data with no locking and no I/O; `DiskStore` (disk.py) owns one,
guards its changes with a lock and fills it from the files.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field

_NAMES_BASE = 60  # the fixed header's size: diskformat.py's FIXED.size
_ID_BITS = 64
_OFFSET_BITS = 27  # body_offset < 60 + 1 MiB of names + 64 MiB of meta < 2**27


def object_name(key: str) -> str:
    """The file name of `key`: blake2b(key, 16 bytes) in hex."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class DiskEntry:
    """One object on disk, as the index holds it (rule 4): about 100 bytes plus the URI.

    Each store makes its own subclass with `root` set (`entry_type`), so the root
    costs nothing per entry.
    """

    __slots__ = ("key", "_uri", "_tags", "_bits")
    root = ""

    def __init__(self, key: str, uri: str, tags: tuple[str, ...], size: int,
                 body_offset: int, object_id: int, verified: bool = False) -> None:
        self.key = key
        self._uri: str | _Prefixes = uri  # the index may replace it with its prefixes (rule 5)
        # one interned string, the tags NUL-separated as in the file: shared by every
        # entry with the same tags, and freed with the last of them
        self._tags = sys.intern("\0".join(tags)) if tags else ""
        self._bits = ((size << _OFFSET_BITS | body_offset) << _ID_BITS | object_id) << 1 | verified

    @property
    def uri(self) -> str:
        uri = self._uri
        if type(uri) is _Prefixes:
            return uri.uri_prefix + self.key[len(uri.key_prefix):]
        return uri

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._tags.split("\0")) if self._tags else ()

    @property
    def verified(self) -> bool:
        """True once the body and meta checksum matched in this process (or this
        process wrote the file); an entry found by load() or refresh() starts unverified."""
        return bool(self._bits & 1)

    @verified.setter
    def verified(self, value: bool) -> None:
        self._bits = self._bits & ~1 | bool(value)

    @property
    def object_id(self) -> int:
        """Random per write: tells one version of a key's file from the next."""
        return self._bits >> 1 & ((1 << _ID_BITS) - 1)

    @property
    def body_offset(self) -> int:
        return self._bits >> (1 + _ID_BITS) & ((1 << _OFFSET_BITS) - 1)

    @property
    def size(self) -> int:
        """Body bytes."""
        return self._bits >> (1 + _ID_BITS + _OFFSET_BITS)

    @property
    def file_size(self) -> int:
        """What `used` counts."""
        return self.body_offset + self.size

    @property
    def meta_size(self) -> int:
        names = sum(len(s.encode("utf-8", "surrogatepass")) for s in (self.key, self.uri, self._tags))
        return self.body_offset - _NAMES_BASE - names

    @property
    def path(self) -> str:
        """The object's file: <root>/<2 hex>/<32 hex of blake2b(key)>."""
        name = object_name(self.key)
        return os.path.join(self.root, name[:2], name)

    def has_tag(self, tag: str) -> bool:
        tags = self._tags
        return tags == tag or (tag in tags and tag in tags.split("\0"))

    def __repr__(self) -> str:
        state = "verified" if self.verified else "unverified"
        return f"<DiskEntry {self.key!r} size={self.size} meta={self.meta_size} {state}>"


def entry_type(root: str) -> type[DiskEntry]:
    """The entry class of a store at `root`."""
    return type("DiskEntry", (DiskEntry,), {"__slots__": (), "root": root,
                                             "__module__": DiskEntry.__module__})


class _Prefixes:
    """What the keys and URIs of one site start with, for entries whose URI is not kept."""

    __slots__ = ("key_prefix", "uri_prefix", "count")

    def __init__(self, key_prefix: str, uri_prefix: str) -> None:
        self.key_prefix = key_prefix
        self.uri_prefix = uri_prefix
        self.count = 0  # entries that point here


class _Tagged:
    """The keys of a tag that more than one key has: a list with stale slots (rule 3)."""

    __slots__ = ("live", "keys")

    def __init__(self, keys: list[str]) -> None:
        self.live = len(keys)
        self.keys = keys


def _index(index: dict[str, str | set[str]], name: str, key: str) -> None:
    keys = index.get(name)
    if keys is None:
        index[name] = key
    elif isinstance(keys, set):
        keys.add(key)
    elif keys != key:
        index[name] = {keys, key}


def _unindex(index: dict[str, str | set[str]], name: str, key: str) -> None:
    keys = index.get(name)
    if keys is None:
        return
    if isinstance(keys, set):
        keys.discard(key)
        if len(keys) == 1:
            index[name] = next(iter(keys))
        elif not keys:
            del index[name]
    elif keys == key:
        del index[name]


def _keys(value: str | set[str] | None) -> set[str]:
    if value is None:
        return set()
    return set(value) if isinstance(value, set) else {value}


@dataclass
class DiskIndex:
    entries: dict[str, DiskEntry] = field(default_factory=dict)
    uris: dict[str, str | set[str]] = field(default_factory=dict)  # URI -> key, or keys (kept URIs)
    # URI prefix -> key prefix -> _Prefixes, for entries whose URI is rebuilt (rule 5)
    prefixes: dict[str, dict[str, _Prefixes]] = field(default_factory=dict)
    tags: dict[str, str | _Tagged] = field(default_factory=dict)  # tag -> key, or keys
    used: int = 0

    def __repr__(self) -> str:
        return f"<DiskIndex keys={len(self.entries)} used={self.used}>"

    def add(self, entry: DiskEntry) -> DiskEntry | None:
        """Index `entry`; returns the entry it replaced, if any."""
        old = self.discard(entry.key)
        self.entries[entry.key] = entry
        self.used += entry.file_size
        uri = entry.uri
        found = self._prefixes_of(entry.key, uri)
        if found is None:
            entry._uri = uri
            _index(self.uris, uri, entry.key)
        else:
            entry._uri = found
            found.count += 1
        for tag in dict.fromkeys(entry.tags):
            self._tag(sys.intern(tag), entry.key)
        return old

    def _prefixes_of(self, key: str, uri: str) -> _Prefixes | None:
        """The shared prefixes that rebuild `uri` from `key`, if there are any (rule 5)."""
        cut = uri.find("/")
        if cut < 0 or not key.endswith(uri[cut:]):
            return None
        uri_prefix = uri[:cut]
        key_prefix = key[:len(key) - (len(uri) - cut)]
        by_key = self.prefixes.get(uri_prefix)
        if by_key is None:
            by_key = self.prefixes[uri_prefix] = {}
        found = by_key.get(key_prefix)
        if found is None:
            found = by_key[key_prefix] = _Prefixes(key_prefix, uri_prefix)
        return found

    def _tag(self, tag: str, key: str) -> None:
        keys = self.tags.get(tag)
        if keys is None:
            self.tags[tag] = key
        elif isinstance(keys, _Tagged):
            keys.keys.append(key)
            keys.live += 1
        else:
            self.tags[tag] = _Tagged([keys, key])

    def _untag(self, tag: str, key: str) -> None:
        keys = self.tags.get(tag)
        if not isinstance(keys, _Tagged):
            if keys == key:
                del self.tags[tag]
            return
        keys.live -= 1
        if keys.live <= 0:
            del self.tags[tag]
        elif len(keys.keys) > 2 * keys.live + 8:
            keys.keys = self._tagged(tag, keys.keys)

    def _tagged(self, tag: str, keys: list[str]) -> list[str]:
        """The keys of `keys` the entries hold with `tag`, once each, in order."""
        entries = self.entries
        return [k for k in dict.fromkeys(keys) if (e := entries.get(k)) is not None and e.has_tag(tag)]

    def discard(self, key: str, only: DiskEntry | None = None) -> DiskEntry | None:
        """Forget `key` (only if its entry is `only`, when given); returns the entry."""
        entry = self.entries.get(key)
        if entry is None or (only is not None and entry is not only):
            return None
        del self.entries[key]
        self.used -= entry.file_size
        uri = entry._uri
        if type(uri) is _Prefixes:
            uri.count -= 1
            if uri.count <= 0:
                by_key = self.prefixes[uri.uri_prefix]
                del by_key[uri.key_prefix]
                if not by_key:
                    del self.prefixes[uri.uri_prefix]
        else:
            _unindex(self.uris, uri, key)
        for tag in dict.fromkeys(entry.tags):
            self._untag(tag, key)
        return entry

    @property
    def by_uri(self) -> dict[str, set[str]]:
        """URI -> keys, built on demand (for tests and debugging)."""
        out = {uri: _keys(keys) for uri, keys in self.uris.items()}
        if self.prefixes:
            for key, entry in self.entries.items():
                if type(entry._uri) is _Prefixes:
                    out.setdefault(entry.uri, set()).add(key)
        return out

    @property
    def by_tag(self) -> dict[str, set[str]]:
        return {tag: self.keys_for_tag(tag) for tag in self.tags}

    def keys_for_uri(self, uri: str) -> set[str]:
        out = _keys(self.uris.get(uri))
        cut = uri.find("/")
        if cut >= 0:
            for found in self.prefixes.get(uri[:cut], {}).values():
                key = found.key_prefix + uri[cut:]
                entry = self.entries.get(key)
                if entry is not None and entry._uri is found:
                    out.add(key)
        return out

    def keys_with_uri_prefix(self, prefix: str) -> set[str]:
        """O(n): every URI is compared."""
        out: set[str] = set()
        for uri, keys in self.uris.items():
            if uri.startswith(prefix):
                if isinstance(keys, set):
                    out |= keys
                else:
                    out.add(keys)
        # for rebuilt URIs, what the rest of the key must start with, per prefixes
        rests: dict[_Prefixes, str] = {}
        for uri_prefix, by_key in self.prefixes.items():
            if uri_prefix.startswith(prefix):
                rests.update((found, "") for found in by_key.values())
            elif prefix.startswith(uri_prefix):
                rests.update((found, prefix[len(uri_prefix):]) for found in by_key.values())
        if rests:
            for key, entry in self.entries.items():
                found = entry._uri
                if type(found) is _Prefixes:
                    rest = rests.get(found)
                    if rest is not None and key.startswith(rest, len(found.key_prefix)):
                        out.add(key)
        return out

    def keys_for_tag(self, tag: str) -> set[str]:
        keys = self.tags.get(tag)
        if isinstance(keys, _Tagged):
            return set(self._tagged(tag, keys.keys))
        return _keys(keys)
