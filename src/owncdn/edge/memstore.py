"""The memory tier: stored objects under a byte budget, kept by S3-FIFO.

Rules:
1. Objects live under their primary cache key; one key holds one variant per
   secondary (Vary) key, newest replacing an older one with the same variant key.
2. What stays and what goes is the policy's decision (`owncdn.core.cache.S3FIFO`,
   byte-aware: see docs/cache-policy.md): a hit only bumps a counter; an insert
   past the budget returns the keys to drop. The budget counts body and head bytes.
3. A second index by URI (service, host, target) serves invalidation after unsafe
   methods (RFC 9111 §4.4) and purge by URL or prefix.
4. "Pass" markers remember for a while that a key's response was not storable, so
   later requests go straight to the origin instead of queueing behind a fetch
   (Varnish calls this hit-for-miss).
5. A third index by tag (the origin's Cache-Tag / Surrogate-Key fields) serves purge
   by tag. A soft purge keeps an object but makes it stale, so the next request
   revalidates it and a failing origin can still be covered by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from owncdn.core.cache import S3FIFO
from owncdn.core.http.headers import Headers
from owncdn.core.http.stored import StoredResponse
from owncdn.core.http.vary import vary_matches


DISK_BODY_COST = 64 * 1024


@dataclass(slots=True, eq=False)
class CacheObject:
    key: str
    uri: str
    meta: StoredResponse
    body: bytes
    head: bytes  # status line and fields, without the blank line and per-request fields
    fields: Headers  # the fields in `head`
    tags: tuple[str, ...] = ()
    size: int = 0
    cost: int = 0

    def __post_init__(self) -> None:
        self.size = len(self.body)
        # A body in a disk-tier file lives in the page cache: the memory tier charges a
        # nominal share for the open file and its mapping, not the body's size.
        body_cost = DISK_BODY_COST if getattr(self.body, "on_disk", False) else self.size
        self.cost = body_cost + len(self.head) + 256

    def __repr__(self) -> str:
        return f"<CacheObject {self.key!r} status={self.meta.status} size={self.size}>"


def _unindex(index: dict, name: str, key: str) -> None:
    keys = index.get(name)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[name]


@dataclass
class MemoryStore:
    budget: int
    entries: dict = field(default_factory=dict)
    by_uri: dict = field(default_factory=dict)
    by_tag: dict = field(default_factory=dict)
    pass_until: dict = field(default_factory=dict)
    evictions: int = 0
    policy: S3FIFO = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.policy = S3FIFO(self.budget)

    def __repr__(self) -> str:
        return f"<MemoryStore keys={len(self.entries)} used={self.used}/{self.budget}>"

    @property
    def used(self) -> int:
        return self.policy.used

    def get(self, key: str, req_headers: Headers) -> CacheObject | None:
        variants = self.entries.get(key)
        if variants is None:
            return None
        self.policy.hit(key)
        for obj in variants:
            vary = obj.meta.vary
            if not vary or vary_matches(vary, req_headers):
                return obj
        return None

    def put(self, obj: CacheObject) -> bool:
        """Store `obj` if the policy admits it; returns whether it did."""
        key = obj.key
        variants = [v for v in self.entries.get(key, ()) if v.meta.vary != obj.meta.vary] + [obj]
        cost = sum(v.cost for v in variants)
        evicted = self.policy.admit(key, cost)  # a resident key is replaced, keeping its queue
        if key in evicted:  # not admitted (larger than the tier)
            self._drop(key)
            return False
        self._drop_all(evicted)
        old = self.entries.get(key, ())
        for gone in old:
            if gone not in variants:
                self._unindex_object(key, gone)
        self.entries[key] = variants
        self.by_uri.setdefault(obj.uri, set()).add(key)
        for tag in obj.tags:
            self.by_tag.setdefault(tag, set()).add(key)
        self.pass_until.pop(key, None)
        return True

    def shrink(self) -> None:
        """Evict down to the budget (after the budget changed)."""
        self._drop_all(self.policy.resize(self.budget))

    def _drop_all(self, keys: list) -> None:
        for key in keys:
            if self._drop(key):
                self.evictions += 1

    def _drop(self, key: str) -> int:
        variants = self.entries.pop(key, None)
        if variants is None:
            return 0
        for obj in variants:
            self._unindex_object(key, obj)
        return len(variants)

    def _unindex_object(self, key: str, obj: CacheObject) -> None:
        _unindex(self.by_uri, obj.uri, key)
        for tag in obj.tags:
            _unindex(self.by_tag, tag, key)

    def remove_key(self, key: str) -> int:
        self.policy.remove(key)
        return self._drop(key)

    def remove_uri(self, uri: str) -> int:
        return sum(self.remove_key(k) for k in list(self.by_uri.get(uri, ())))

    def keys_for_uri(self, uri: str) -> set[str]:
        return set(self.by_uri.get(uri, ()))

    def keys_for_uri_prefix(self, prefix: str) -> set[str]:
        return {k for uri, keys in self.by_uri.items() if uri.startswith(prefix) for k in keys}

    def keys_for_tag(self, tag: str) -> set[str]:
        return set(self.by_tag.get(tag, ()))

    def soften(self, key: str) -> int:
        """Make every variant of `key` stale now (a soft purge)."""
        variants = self.entries.get(key, ())
        for obj in variants:
            obj.meta = replace(obj.meta, freshness_lifetime=0.0)
        return len(variants)

    def clear(self) -> int:
        n = sum(len(v) for v in self.entries.values())
        for key in list(self.entries):
            self.policy.remove(key)
        self.entries.clear()
        self.by_uri.clear()
        self.by_tag.clear()
        return n

    def mark_pass(self, key: str, until: float) -> None:
        self.pass_until[key] = until
        if len(self.pass_until) > 100_000:
            self.pass_until.pop(next(iter(self.pass_until)))

    def is_pass(self, key: str, now: float) -> bool:
        until = self.pass_until.get(key)
        if until is None:
            return False
        if until <= now:
            del self.pass_until[key]
            return False
        return True
