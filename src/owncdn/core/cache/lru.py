"""Least recently used, byte-aware: the baseline S3-FIFO is measured against.

Rules:
1. One recency order; ``hit`` moves the key to the most recent end, ``admit``
   inserts at that end.
2. Room is made by evicting from the least recent end until ``used + size`` fits;
   an object larger than ``capacity`` is refused (``admit`` returns ``[key]``).
3. ``admit`` of a resident key replaces it (new size, most recent).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class LRU:
    """Byte-aware LRU with the same interface as ``S3FIFO``."""

    __slots__ = ("capacity", "used", "_order", "_move")

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity_bytes}")
        self.capacity = capacity_bytes
        self.used = 0
        self._order: OrderedDict[Hashable, int] = OrderedDict()  # key -> size, oldest first
        self._move = self._order.move_to_end

    def hit(self, key: Hashable) -> None:
        self._move(key)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)

    def admit(self, key: Hashable, size: int) -> list:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.remove(key)
        if size > self.capacity:
            return [key]
        evicted = self._evict_until(self.capacity - size)
        self._order[key] = size
        self.used += size
        return evicted

    def remove(self, key: Hashable) -> bool:
        size = self._order.pop(key, None)
        if size is None:
            return False
        self.used -= size
        return True

    def resize(self, capacity_bytes: int) -> list:
        if capacity_bytes < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity_bytes}")
        self.capacity = capacity_bytes
        return self._evict_until(capacity_bytes)

    def _evict_until(self, limit: int) -> list:
        evicted = []
        order = self._order
        while self.used > limit:
            key, size = order.popitem(last=False)
            self.used -= size
            evicted.append(key)
        return evicted

    def where(self, key: Hashable) -> str | None:
        return "lru" if key in self._order else None

    def stats(self) -> dict:
        return {"capacity": self.capacity, "used": self.used, "objects": len(self._order)}

    def queues(self) -> dict[str, list]:
        """Resident keys, least recent first."""
        return {"lru": list(self._order)}

    def __repr__(self) -> str:
        return f"<LRU used={self.used}/{self.capacity} objects={len(self._order)}>"
