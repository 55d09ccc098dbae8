"""Admission and eviction policies for the edge's cache, pure and byte-aware.

A policy tracks keys and sizes only: it never sees bodies, sockets or clocks. The
store asks it two things: ``hit(key)`` on every cache hit (O(1), no allocation) and
``admit(key, size)`` on every store, which answers with the keys the store must free.

- ``s3fifo``  S3-FIFO (Yang et al., SOSP 2023): a small FIFO that filters one-hit
              wonders, a main FIFO with 2-bit frequency reinsertion, and a ghost
              queue of keys recently evicted from the small FIFO. The default.
- ``lru``     least recently used, the baseline every benchmark compares against.
- ``trace``   request traces for replaying through a policy: a seeded Zipf
              generator, a parser for ``time id size`` / ``id size`` lines, and
              ``replay`` which counts object and byte misses.

Both policies share one interface (``hit``, ``admit``, ``remove``, ``resize``,
``in``, ``len``, ``used``, ``capacity``, ``stats``), so the store can take either.
See docs/cache-policy.md for why S3-FIFO and what it measured.
"""

from owncdn.core.cache.lru import LRU
from owncdn.core.cache.s3fifo import S3FIFO

__all__ = ["LRU", "S3FIFO"]
