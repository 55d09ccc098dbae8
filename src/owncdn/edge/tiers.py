"""The disk tier as the edge uses it: what is written, and objects read back.

Rules:
1. Write-through: every object the memory tier stores is also written to disk (one
   file per variant, atomic, checksummed: `edge/disk.py`). The memory tier may evict
   it; the disk keeps it, under its own S3-FIFO over file sizes.
2. A variant's disk key is its primary cache key, plus, for responses with Vary, a
   separator and the secondary key as JSON, so the variants of a primary key are
   found again after a restart from the file headers alone.
3. The file's meta blob is the stored response (status, fields as received, request
   and response times, Vary key) as JSON; freshness is computed again from it with the
   service's current policy when the object comes back.
4. A memory miss looks on disk before going to the origin. Files written by another
   worker are found with `refresh`, one open of the file the key would have.
5. Size decides the tier that serves a body (docs/cache-policy.md, "Which tier serves
   a body"): a body of at least `sendfile_min` bytes (`edge.disk_cache.sendfile_min_size`)
   is not copied into memory. A fill writes it straight to disk as it arrives, and a
   read brings it back as `DiskBody`, mapped and sent with sendfile, which the memory
   tier keeps at a nominal cost (the bytes stay in the page cache, not in the
   process). A smaller body comes back into memory (`make_body`).
6. A soft purge marks the disk copies stale (the memory copy is made stale by the
   memory tier); the marks are kept in a small file beside the objects, so they hold
   after a restart; a new copy stored clears the mark.
7. Memory: most objects have no Vary, and their disk key is their primary key, so
   `variants` holds only the disk keys that differ from their primary key (the Vary
   variants); a lookup tries the primary key itself, then those.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING

import orjson

from owncdn.core.cache import S3FIFO
from owncdn.core.http.headers import Headers
from owncdn.core.http.stored import StoredResponse, build_stored
from owncdn.core.http.vary import vary_matches
from owncdn.edge.bodies import FILE_THRESHOLD, BodyFile, DiskBody, make_body
from owncdn.edge.disk import DiskError, DiskStore, ObjectUnavailable

if TYPE_CHECKING:
    from owncdn.edge.app import Edge
    from owncdn.edge.memstore import CacheObject
    from owncdn.edge.service import ServiceRuntime

SEP = "\x1f"
SOFTENED_FILE = "softened.json"
log = logging.getLogger(__name__)


def disk_key(key: str, vary) -> str:
    return key if not vary else key + SEP + orjson.dumps(vary).decode()


def primary_key(dkey: str) -> str:
    return dkey.split(SEP, 1)[0]


def open_disk_tier(settings, share: int = 1) -> "DiskTier | None":
    """The disk tier of `edge.disk_cache`, loaded; None when not configured. With
    `share` workers on one directory, each keeps its objects within size / share."""
    if settings is None:
        return None
    tier = DiskTier(DiskStore(str(settings.path), settings.size // max(share, 1), fsync=settings.fsync),
                    settings.sendfile_min_size)
    tier.load()
    return tier


def encode_meta(obj: "CacheObject") -> bytes:
    return encode_stored(obj.meta)


def encode_stored(meta: StoredResponse) -> bytes:
    return orjson.dumps({"status": meta.status, "headers": meta.headers.items(),
                         "request_time": meta.request_time, "response_time": meta.response_time,
                         "vary": meta.vary})


class DiskTier:
    def __init__(self, store: DiskStore, sendfile_min: int = FILE_THRESHOLD) -> None:
        self.disk = store
        self.sendfile_min = sendfile_min  # rule 5: bodies this large are served from their file
        self.policy = S3FIFO(store.budget)
        self.variants: dict[str, set[str]] = {}  # primary key -> its Vary variants' disk keys
        self.evictions = 0
        self.errors = 0
        self.softened: set[str] = set()  # primary keys soft-purged while only on disk

    def __repr__(self) -> str:
        return f"<DiskTier {self.disk.root} objects={len(self.policy)} used={self.policy.used}/{self.policy.capacity}>"

    def serves(self, size: int) -> bool:
        """Rule 5: whether a body of `size` bytes is kept on disk only and sent from its file."""
        return size >= self.sendfile_min

    # -- start and stop ------------------------------------------------------------------
    def load(self) -> int:
        """Rebuild the index from disk (headers only), oldest objects first in the policy."""
        self.disk.load()
        keys = self.disk.keys()  # oldest first
        for key in keys:
            self._track(key, self.disk.get(key).file_size)
        self.softened = self._read_softened()
        return len(keys)

    # The soft-purged keys are kept in one small file next to the objects, so a soft
    # purge still holds after a restart (purges are rare: it is rewritten each time).
    def _softened_path(self) -> str:
        return os.path.join(self.disk.root, SOFTENED_FILE)

    def _read_softened(self) -> set[str]:
        try:
            with open(self._softened_path(), "rb") as f:
                return {k for k in orjson.loads(f.read()) if self.disk_keys(k)}
        except (OSError, orjson.JSONDecodeError, TypeError):
            return set()

    def _write_softened(self) -> None:
        path = self._softened_path()
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(orjson.dumps(sorted(self.softened)))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("disk tier: soft purges not saved: %s", exc)

    def _unsoften(self, key: str) -> None:
        if key in self.softened:
            self.softened.discard(key)
            self._write_softened()

    def close(self) -> None:
        self.disk.close()

    @property
    def used(self) -> int:
        return self.policy.used

    @property
    def budget(self) -> int:
        return self.policy.capacity

    @property
    def entries(self) -> "_PrimaryKeys":
        """The primary keys on disk (`len()` is the metrics' key count)."""
        return _PrimaryKeys(self)

    def disk_keys(self, key: str) -> list[str]:
        """The disk keys of primary key `key`: itself (no Vary), then its Vary variants."""
        own = [key] if key in self.policy else []
        variants = self.variants.get(key)
        return own + list(variants) if variants else own

    # -- writing -------------------------------------------------------------------------
    def save(self, obj: "CacheObject") -> None:
        self._unsoften(obj.key)
        dkey = disk_key(obj.key, obj.meta.vary)
        body = obj.body
        chunks = [body.view] if isinstance(body, BodyFile) else [body]
        try:
            entry = self.disk.put(dkey, encode_meta(obj), chunks, tags=obj.tags, uri=obj.uri)
        except (DiskError, OSError) as exc:
            self.errors += 1
            log.warning("disk tier: not stored %r: %s", obj.key, exc)
            return
        self._track(dkey, entry.file_size)

    def spool(self, key: str, uri: str, stored: StoredResponse, tags: tuple[str, ...]):
        """A writer for a body that goes straight to disk as it arrives."""
        return self.disk.writer(disk_key(key, stored.vary), encode_stored(stored), tags=tags, uri=uri)

    def adopt(self, writer, edge: "Edge", svc: "ServiceRuntime", key: str, uri: str,
              stored: StoredResponse) -> "CacheObject | None":
        """Commit a spooled body; the object, served from its file (or None)."""
        try:
            entry = writer.commit()
            self._track(entry.key, entry.file_size)
            opened = self.disk.open(entry)
        except (DiskError, OSError) as exc:
            self.errors += 1
            log.warning("disk tier: not stored %r: %s", key, exc)
            return None
        fd, opened.fd = opened.fd, -1
        return edge.make_object(svc, key, uri, stored, DiskBody(fd, opened.body_offset, opened.size))

    def revalidated(self, obj: "CacheObject") -> None:
        """The origin confirmed `obj` (304). A small body is rewritten with the new
        headers (a large one keeps its file: copying it for a 304 costs too much; its
        next revalidation after a restart is one conditional request)."""
        if isinstance(obj.body, (bytes, bytearray)) or len(obj.body) < FILE_THRESHOLD:
            self.save(obj)
        else:
            self._unsoften(obj.key)

    def _track(self, dkey: str, size: int) -> None:
        for gone in self.policy.admit(dkey, size):
            if gone != dkey:
                self.evictions += 1
            self._drop(gone)
        if dkey in self.policy:
            key = primary_key(dkey)
            if key != dkey:
                self.variants.setdefault(key, set()).add(dkey)

    def _drop(self, dkey: str) -> None:
        self.disk.remove(dkey)
        key = primary_key(dkey)
        if key == dkey:
            return
        known = self.variants.get(key)
        if known is not None:
            known.discard(dkey)
            if not known:
                del self.variants[key]

    # -- reading -------------------------------------------------------------------------
    def lookup(self, edge: "Edge", svc: "ServiceRuntime", key: str, req_headers: Headers) -> "CacheObject | None":
        dkeys = self.disk_keys(key)
        if not dkeys:
            entry = self.disk.refresh(key)  # written by another worker meanwhile?
            if entry is None:
                return None
            self._track(key, entry.file_size)
            dkeys = self.disk_keys(key)
        for dkey in dkeys:
            record = self._open(dkey)
            if record is None:
                continue
            opened, meta = record
            vary = tuple(tuple(pair) for pair in meta["vary"]) if meta["vary"] else ()
            if vary and not vary_matches(vary, req_headers):
                opened.close()
                continue
            stored = build_stored(meta["status"], Headers(meta["headers"]), vary, meta["request_time"],
                                  meta["response_time"], svc.policy)
            if key in self.softened:
                stored = replace(stored, freshness_lifetime=0.0)
            if opened.size < self.sendfile_min:  # rule 5: back into memory for good
                body = make_body([opened.read()], opened.size)
                opened.close()
            else:
                fd, opened.fd = opened.fd, -1  # the body owns the descriptor from here
                body = DiskBody(fd, opened.body_offset, opened.size)
            self.policy.hit(dkey)
            return edge.make_object(svc, key, opened.entry.uri, stored, body)
        return None

    def _open(self, dkey: str):
        entry = self.disk.get(dkey)
        if entry is None:
            self._drop(dkey)
            return None
        try:
            opened = self.disk.open(entry)
        except ObjectUnavailable as exc:
            log.warning("disk tier: %s", exc)
            self.policy.remove(dkey)
            self._drop(dkey)
            return None
        try:
            return opened, orjson.loads(opened.meta)
        except orjson.JSONDecodeError:
            opened.close()
            self.policy.remove(dkey)
            self._drop(dkey)
            return None

    # -- purge and invalidation (the memory tier's names) --------------------------------
    @property
    def by_uri(self) -> dict[str, set[str]]:
        return {uri: {primary_key(k) for k in keys} for uri, keys in self.disk.by_uri.items()}

    def keys_for_uri(self, uri: str) -> set[str]:
        return {primary_key(k) for k in self.disk.keys_for_uri(uri)}

    def keys_for_uri_prefix(self, prefix: str) -> set[str]:
        return {primary_key(k) for k in self.disk.keys_with_uri_prefix(prefix)}

    def keys_for_tag(self, tag: str) -> set[str]:
        return {primary_key(k) for k in self.disk.keys_for_tag(tag)}

    def remove_key(self, key: str) -> int:
        dkeys = self.disk_keys(key)
        self.variants.pop(key, None)
        self._unsoften(key)
        for dkey in dkeys:
            self.policy.remove(dkey)
            self.disk.remove(dkey)
        return len(dkeys)

    def remove_uri(self, uri: str) -> int:
        return sum(self.remove_key(k) for k in self.keys_for_uri(uri))

    def soften(self, key: str) -> int:
        """Mark the disk copies of `key` stale: they come back stale (revalidated, and
        still covering origin errors) until a new copy is stored, also after a restart."""
        n = len(self.disk_keys(key))
        if n and key not in self.softened:
            self.softened.add(key)
            self._write_softened()
        return n

    def configure(self, settings, share: int = 1) -> None:
        """A new `edge.disk_cache` (same path): the budget and the size rule (rule 5)."""
        self.sendfile_min = settings.sendfile_min_size
        self.shrink(settings.size // max(share, 1))

    def shrink(self, budget: int) -> None:
        for gone in self.policy.resize(budget):
            self.evictions += 1
            self._drop(gone)


class _PrimaryKeys:
    """The primary keys of a disk tier, without a map of them (rule 7)."""

    __slots__ = ("tier",)

    def __init__(self, tier: DiskTier) -> None:
        self.tier = tier

    def __len__(self) -> int:
        tier = self.tier
        variant_keys = sum(len(v) for v in tier.variants.values())
        only_variants = sum(1 for key in tier.variants if key not in tier.policy)
        return len(tier.policy) - variant_keys + only_variants

    def __contains__(self, key: object) -> bool:
        return key in self.tier.policy or key in self.tier.variants

    def __iter__(self):
        seen = set()
        for dkey in self.tier.disk.keys():
            key = primary_key(dkey)
            if key not in seen:
                seen.add(key)
                yield key
