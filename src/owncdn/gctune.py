"""The cyclic garbage collector, tuned for a long-running server process.

Rules:
1. Called once, after start-up, by the process's own command (`owncdn edge`, `owncdn
   control`), never by library code that tests or embedders run in their process:
   everything loaded so far (modules, config, indexes, the web framework) is moved
   out of the collector's sight (`gc.freeze`), and young collections run every
   `YOUNG_THRESHOLD` net allocations instead of 700.
2. Why: requests free their objects by reference counting; the collector's walks over
   the start-up heap were about 1.5% of an edge's cache hit and about a fifth of the
   control plane's main thread during a push of 1,065 files (perf, measured under load).
3. ``steady_heap()`` (the control plane's command, as Rule 1): glibc's malloc keeps
   up to ``TRIM_BYTES`` of freed memory instead of giving it back to the system as
   soon as 128 KiB are free at the top of a heap, and serves blocks below
   ``MMAP_BYTES`` from its heaps rather than from a fresh mmap each. Why: a push
   moves its bytes through buffers of 64 KiB to 2 MiB (request bodies, bundle
   pieces) that are allocated and freed at a high rate; each time the memory went
   back to the system, the next buffer paid a page fault per 4 KiB (the control
   plane: about 46,000 minor faults during the Python docs' first push, 22,000 with
   this). A no-op where there is no glibc ``mallopt``.
4. ``thaw()``, when the command's server stopped: what Rule 1 froze is handed back
   to the collector, so the interpreter's shutdown frees it. Frozen objects outlive
   the shutdown, and DuckDB's bindings then printed about 40 lines of "nanobind:
   leaked ..." at every stop of the control plane.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
TRIM_BYTES = 64 << 20
MMAP_BYTES = 4 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def quiet_collector() -> None:
    """Rule 1."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def thaw() -> None:
    """Rule 4."""
    gc.unfreeze()


def steady_heap() -> None:
    """Rule 3."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)
    mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
