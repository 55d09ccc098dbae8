"""S3-FIFO, byte-aware: which objects the edge keeps and which it frees.

Yang, Zhang, Qiu, Yue, Vinayak: "FIFO queues are all you need for cache eviction",
SOSP 2023 (https://doi.org/10.1145/3600006.3613147). The policy sees keys and sizes
only; the caller stores the bodies and frees whatever ``admit`` or ``resize``
returns.

Rules:
1. Three FIFO queues. S (small) holds about ``small_ratio`` (10%) of the byte
   capacity, M (main) the rest; both count bytes, and ``used`` = S + M never exceeds
   ``capacity`` after any call. G (ghost) holds keys only, no bytes charged: the keys
   last evicted from S, at most as many as M holds objects (at least ``GHOST_MIN``).
2. Each resident object has a 2-bit frequency, 0..3. ``hit`` adds one (capped at 3)
   and moves nothing: a hit is one dict read and at most one dict write (of the
   packed int, see Layout below).
3. ``admit`` inserts a new object with frequency 0: into M if its key is in G (it
   was wanted again soon after S dropped it), else into S.
4. Sizes: an object larger than ``capacity`` is refused (``admit`` returns
   ``[key]``). An object larger than S's byte budget goes straight to M, because in S
   it would flush every other newcomer and still be evicted at once.
5. Warm-up: while nothing has been evicted yet, a newcomer that does not fit in
   S's budget goes to M, so an empty cache fills up entirely instead of cycling
   newcomers through S (as libCacheSim's S3FIFO does).
6. Room is made one eviction at a time: from M when M is over its share or S is
   empty, else from S.
7. Evicting from S takes S's tail: frequency >= 2 (``MOVE_TO_MAIN``, "accessed more
   than once" in the paper's Algorithm 1: ``t.freq > 1``) moves it to M's head with
   frequency reset to 0 and S is tried again; otherwise the object is evicted and its
   key enters G.
8. Evicting from M takes M's tail: frequency > 0 reinserts it at M's head with
   frequency - 1; frequency 0 evicts it. Every evicted key is returned exactly once.
9. ``admit`` of a resident key replaces the object (a new version): the old one is
   dropped and the new one goes to M if the old one was in M, else through rule 3.
10. ``remove`` (purge) drops a resident object at once (exact byte accounting); its
    queue slot goes stale and is skipped when it reaches the tail. G is untouched.

Layout, chosen for memory (see bench/object_overhead.py): one dict, ``_state``,
maps key to a packed int, ``size << 3 | in_main << 2 | frequency`` (one dict slot and
one int per object instead of two dicts); the queues are deques of keys. A hit
allocates one new int until the frequency saturates at 3, then nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

MOVE_TO_MAIN = 2  # an S object needs this frequency to be promoted to M (paper: freq > 1)
MAX_FREQ = 3
GHOST_MIN = 64  # G's floor, so a cache with a near-empty M still remembers something
_IN_MAIN = 4
_FREQ = 3
_SIZE_SHIFT = 3
_COMPACT_MIN = 1024  # stale queue slots tolerated before a rebuild


class S3FIFO:
    """Byte-aware S3-FIFO over hashable keys. Not thread-safe; O(1) amortised."""

    __slots__ = (
        "capacity", "small_ratio", "_small_cap", "_main_cap",
        "_state", "_small", "_main", "_small_bytes", "_main_bytes",
        "_small_count", "_stale_small", "_stale_main", "_stale",
        "_ghost", "_ghost_q", "_ghost_head", "_evicted_once",
    )

    def __init__(self, capacity_bytes: int, small_ratio: float = 0.1) -> None:
        if not 0.0 < small_ratio < 1.0:
            raise ValueError(f"small_ratio must be between 0 and 1, got {small_ratio}")
        self.small_ratio = small_ratio
        self._state: dict[Hashable, int] = {}  # key -> size << 3 | in_main << 2 | freq
        self._small: deque = deque()
        self._main: deque = deque()
        self._small_bytes = self._main_bytes = self._small_count = 0
        self._stale_small: dict[Hashable, int] = {}
        self._stale_main: dict[Hashable, int] = {}
        self._stale = 0
        self._ghost: dict[Hashable, int] = {}  # key -> its sequence number in _ghost_q
        self._ghost_q: deque = deque()
        self._ghost_head = 0  # sequence number of _ghost_q[0]
        self._evicted_once = False
        self._set_capacity(capacity_bytes)

    # -- the hot path -----------------------------------------------------------

    def hit(self, key: Hashable) -> None:
        """Record a hit on a resident key (KeyError if it is not resident)."""
        state = self._state[key]
        if state & _FREQ != MAX_FREQ:
            self._state[key] = state + 1

    def __contains__(self, key: Hashable) -> bool:
        return key in self._state

    def __len__(self) -> int:
        return len(self._state)

    @property
    def used(self) -> int:
        return self._small_bytes + self._main_bytes

    # -- admission --------------------------------------------------------------

    def admit(self, key: Hashable, size: int) -> list:
        """Insert ``key``; return the keys the caller must free (``[key]`` if refused)."""
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        to_main = False
        if key in self._state:
            to_main = bool(self._state[key] & _IN_MAIN)
            self.remove(key)
        if size > self.capacity:
            return [key]
        if self._ghost.pop(key, None) is not None or size > self._small_cap:
            to_main = True
        evicted: list = []
        if self.used + size > self.capacity:
            self._make_room(size, evicted)
        elif not self._evicted_once and self._small_bytes + size > self._small_cap:
            to_main = True
        if to_main:
            self._state[key] = size << _SIZE_SHIFT | _IN_MAIN
            self._main.append(key)
            self._main_bytes += size
        else:
            self._state[key] = size << _SIZE_SHIFT
            self._small.append(key)
            self._small_bytes += size
            self._small_count += 1
        return evicted

    def remove(self, key: Hashable) -> bool:
        """Purge a resident key; False if it was not resident."""
        state = self._state.pop(key, None)
        if state is None:
            return False
        size = state >> _SIZE_SHIFT
        if state & _IN_MAIN:
            self._main_bytes -= size
            stale = self._stale_main
        else:
            self._small_bytes -= size
            self._small_count -= 1
            stale = self._stale_small
        stale[key] = stale.get(key, 0) + 1
        self._stale += 1
        if self._stale > _COMPACT_MIN and self._stale > len(self._state):
            self._compact()
        return True

    def resize(self, capacity_bytes: int) -> list:
        """Change the byte capacity; return the keys evicted to fit."""
        self._set_capacity(capacity_bytes)
        evicted: list = []
        if self.used > self.capacity:
            self._make_room(0, evicted)
        self._trim_ghost()
        return evicted

    # -- eviction ---------------------------------------------------------------

    def _make_room(self, size: int, evicted: list) -> None:
        self._evicted_once = True
        while self.used + size > self.capacity:
            if self._main_bytes > self._main_cap or self._small_count == 0:
                self._evict_main(evicted)
            else:
                self._evict_small(evicted)

    def _evict_small(self, evicted: list) -> None:
        small, state = self._small, self._state
        while self._small_count:
            key = small.popleft()
            if self._stale_small and self._skip_stale(self._stale_small, key):
                continue
            value = state[key]
            size = value >> _SIZE_SHIFT
            if value & _FREQ >= MOVE_TO_MAIN:
                state[key] = size << _SIZE_SHIFT | _IN_MAIN
                self._main.append(key)
                self._small_bytes -= size
                self._small_count -= 1
                self._main_bytes += size
                continue
            del state[key]
            self._small_bytes -= size
            self._small_count -= 1
            evicted.append(key)
            self._ghost_add(key)
            return

    def _evict_main(self, evicted: list) -> None:
        main, state = self._main, self._state
        while main:
            key = main.popleft()
            if self._stale_main and self._skip_stale(self._stale_main, key):
                continue
            value = state[key]
            if value & _FREQ:
                state[key] = value - 1
                main.append(key)
                continue
            del state[key]
            self._main_bytes -= value >> _SIZE_SHIFT
            evicted.append(key)
            return

    def _skip_stale(self, stale: dict, key: Hashable) -> bool:
        """True if this queue slot of ``key`` was left behind by ``remove``.

        A key's stale slots in one queue are always older than its live slot there,
        so the first ``stale[key]`` slots popped are the stale ones.
        """
        count = stale.get(key)
        if count is None:
            return False
        if count == 1:
            del stale[key]
        else:
            stale[key] = count - 1
        self._stale -= 1
        return True

    def _compact(self) -> None:
        self._small = self._live_slots(self._small, self._stale_small)
        self._main = self._live_slots(self._main, self._stale_main)
        self._stale = 0

    @staticmethod
    def _live_slots(queue: deque, stale: dict) -> deque:
        live = deque()
        for key in queue:
            count = stale.get(key)
            if count is None:
                live.append(key)
            elif count == 1:
                del stale[key]
            else:
                stale[key] = count - 1
        return live

    # -- ghost ------------------------------------------------------------------

    def _ghost_add(self, key: Hashable) -> None:
        self._ghost[key] = self._ghost_head + len(self._ghost_q)
        self._ghost_q.append(key)
        self._trim_ghost()

    def _trim_ghost(self) -> None:
        ghost, queue = self._ghost, self._ghost_q
        limit = max(len(self._state) - self._small_count, GHOST_MIN)
        while len(ghost) > limit:
            key = queue.popleft()
            if ghost.get(key) == self._ghost_head:
                del ghost[key]
            self._ghost_head += 1
        if len(queue) > 2 * len(ghost) + _COMPACT_MIN:
            self._compact_ghost()

    def _compact_ghost(self) -> None:
        ghost = self._ghost
        live = [key for i, key in enumerate(self._ghost_q, self._ghost_head) if ghost.get(key) == i]
        self._ghost_head = 0
        self._ghost_q = deque(live)
        for i, key in enumerate(live):
            ghost[key] = i

    # -- introspection ----------------------------------------------------------

    def _set_capacity(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity_bytes}")
        self.capacity = capacity_bytes
        self._small_cap = int(capacity_bytes * self.small_ratio)
        self._main_cap = capacity_bytes - self._small_cap

    def where(self, key: Hashable) -> str | None:
        """'small', 'main', 'ghost' or None: which queue holds ``key``."""
        state = self._state.get(key)
        if state is not None:
            return "main" if state & _IN_MAIN else "small"
        return "ghost" if key in self._ghost else None

    def frequency(self, key: Hashable) -> int:
        """The 2-bit frequency of a resident key (KeyError otherwise)."""
        return self._state[key] & _FREQ

    def stats(self) -> dict:
        objects = len(self._state)
        return {
            "capacity": self.capacity,
            "used": self.used,
            "objects": objects,
            "small_bytes": self._small_bytes,
            "small_objects": self._small_count,
            "small_capacity": self._small_cap,
            "main_bytes": self._main_bytes,
            "main_objects": objects - self._small_count,
            "ghost_objects": len(self._ghost),
        }

    def queues(self) -> dict[str, list]:
        """Resident keys per queue, tail (next to evict) first; for tests and debugging."""
        out = {}
        for name, queue, stale in (("small", self._small, self._stale_small),
                                   ("main", self._main, self._stale_main)):
            out[name] = list(self._live_slots(queue, dict(stale)))
        ghost = self._ghost
        out["ghost"] = [k for i, k in enumerate(self._ghost_q, self._ghost_head) if ghost.get(k) == i]
        return out

    def __repr__(self) -> str:
        s = self.stats()
        return (f"<S3FIFO used={s['used']}/{s['capacity']} small={s['small_objects']}"
                f"/{s['small_bytes']}B main={s['main_objects']}/{s['main_bytes']}B"
                f" ghost={s['ghost_objects']}>")
