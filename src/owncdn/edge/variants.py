"""The compressed forms of pushed files this edge made (``core/content/compress.py``).

    variants = Variants(forms=FormFiles(root / "forms"))   # forms=None: in memory only
    data = variants.get(sha, "br")      # bytes; NOT_WORTH; or None: not made (yet)
    made = variants.make(sha, "br", read, size)   # an asyncio future, shared by its askers

Rules:
1. A form is made once per blob and coding, whichever release or path names the blob,
   in one thread of its own (``make``): a burst of first requests for many files
   compresses them one after another and never holds up the event loop. Asked again
   while being made, the same future is given. At most ``PENDING`` are queued; more
   are not made this time (their files go out as they are).
2. ``read()`` gives the file's bytes, in that thread. A form not worth sending
   (``compress.worth_it``) is remembered as ``NOT_WORTH``: the file goes out as it is
   and is not compressed again. A read that fails (the blob collected meanwhile) gives
   None and is not remembered.
3. The forms are kept in memory, at most ``budget`` bytes (each counted with
   ``ENTRY_BYTES`` more, so forms not worth sending count too); past it the oldest go
   first. With ``forms`` (``formfiles.py``: the edge's release store has one) each form
   made is also kept on disk, and ``make`` reads it back from there, in the same
   thread, before it compresses anything: a form that left memory, or one made before
   the edge restarted, is read again instead of made again (``loaded`` counts those).
   The forms of a site larger than the budget were compressed again at every turn of
   its visitors through it; a restart made every form again.
4. ``close()`` drops what is queued; a form being made finishes and is dropped.
5. ``make(..., background=True)`` (a release's warm-up: ``static.py`` rule 6) makes the
   form in a second thread of its own at the lowest CPU priority (``nice`` 19 for that
   thread, where the system allows it), at most ``BACKGROUND`` queued: what visitors
   ask for is made first and served without waiting behind it. A visitor asking for a
   form being made there shares its future (Rule 1).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from owncdn.core.content.compress import compress, worth_it

from .formfiles import FormFiles

__all__ = ["BACKGROUND", "BUDGET", "ENTRY_BYTES", "NOT_WORTH", "PENDING", "Variants"]

BUDGET = 64 << 20
ENTRY_BYTES = 128
PENDING = 256
BACKGROUND = 64  # Rule 5
NOT_WORTH = b""  # Rule 2 (an empty form is never worth sending: the files compressed are not empty)


class Variants:
    """Rules 1-5."""

    def __init__(self, budget: int = BUDGET, forms: FormFiles | None = None) -> None:
        self.budget = budget
        self.forms = forms  # Rule 3: where forms are kept on disk; None: in memory only
        self.held: dict[tuple[str, str], bytes] = {}  # in the order made (Rule 3)
        self.bytes = 0
        self.making: dict[tuple[str, str], asyncio.Future] = {}
        self.made = {"br": 0, "gzip": 0}  # forms made, for the metrics
        self.loaded = 0  # forms read back from disk (Rule 3), counted in the pool's thread
        self._loading: set[tuple[str, str]] = set()  # read back, until _done saw them
        self.saved = 0  # bytes the forms made are smaller than their files
        self._pool: ThreadPoolExecutor | None = None
        self._idle: ThreadPoolExecutor | None = None  # Rule 5
        self._queued = 0  # of them, in _idle

    def __repr__(self) -> str:
        return f"<Variants {len(self.held)} held, {self.bytes} bytes, {len(self.making)} being made>"

    def get(self, sha: str, coding: str) -> bytes | None:
        return self.held.get((sha, coding))

    def make(self, sha: str, coding: str, read: Callable[[], bytes], size: int,
             background: bool = False) -> asyncio.Future | None:
        """Rule 1: the future of the form (its bytes, ``NOT_WORTH``, or None: Rule 2);
        None when too many are queued. ``background``: Rule 5."""
        key = (sha, coding)
        future = self.making.get(key)
        if future is not None:
            return future
        if len(self.making) >= PENDING or (background and self._queued >= BACKGROUND):
            return None
        if background:
            if self._idle is None:
                self._idle = ThreadPoolExecutor(1, thread_name_prefix="owncdn-compress-idle", initializer=_lowest_priority)
            pool = self._idle
            self._queued += 1
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="owncdn-compress")
            pool = self._pool
        future = asyncio.get_running_loop().run_in_executor(pool, self._make, read, sha, coding)
        self.making[key] = future
        future.add_done_callback(lambda done: self._done(key, done, size, background))
        return future

    def _done(self, key: tuple[str, str], done: asyncio.Future, size: int, background: bool = False) -> None:
        if background:
            self._queued -= 1
        if self.making.get(key) is done:
            del self.making[key]
        loaded = key in self._loading
        self._loading.discard(key)
        if done.cancelled() or (self._pool is None and self._idle is None) or done.exception() is not None \
                or done.result() is None:
            return  # (a compressor that raised: its askers send the file as it is)
        data = done.result()
        self.held[key] = data
        self.bytes += len(data) + ENTRY_BYTES
        if data and not loaded:  # made here, worth sending
            self.made[key[1]] = self.made.get(key[1], 0) + 1
            self.saved += size - len(data)
        while self.bytes > self.budget and self.held:  # Rule 3
            oldest = next(iter(self.held))
            self.bytes -= len(self.held.pop(oldest)) + ENTRY_BYTES

    def _make(self, read: Callable[[], bytes], sha: str, coding: str) -> bytes | None:
        """Rules 2 and 3, in the pool's thread."""
        forms = self.forms
        if forms is not None:
            kept = forms.read(sha, coding)
            if kept is not None:
                self._loading.add((sha, coding))
                self.loaded += 1
                return kept
        try:
            data = read()
        except OSError:
            return None
        out = compress(data, coding)
        form = out if worth_it(len(data), len(out)) else NOT_WORTH
        if forms is not None:
            forms.write(sha, coding, form)
        return form

    def close(self) -> None:
        """Rule 4."""
        for pool in (self._pool, self._idle):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._idle = None
        self.making.clear()

    def metric_families(self, prefix: str):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        made = CounterMetricFamily(prefix + "push_compressed_forms", "Compressed forms of pushed text files made "
                                   "by this edge, by coding.", labels=["coding"])
        for coding, n in sorted(self.made.items()):
            made.add_metric([coding], n)
        yield made
        yield CounterMetricFamily(prefix + "push_compressed_forms_loaded", "Compressed forms read back from this "
                                  "edge's disk instead of made again (made before a restart, or dropped from "
                                  "memory).", value=self.loaded)
        yield GaugeMetricFamily(prefix + "push_compressed_forms_making", "Compressed forms being made or queued "
                                "(for visitors, and a release's warm-up in the background).", value=len(self.making))
        yield GaugeMetricFamily(prefix + "push_compressed_bytes", "Bytes of compressed forms held in memory.",
                                value=sum(map(len, self.held.values())))
        yield CounterMetricFamily(prefix + "push_compressed_saved_bytes", "Bytes the forms made are smaller than "
                                  "their files (once per form made, not per response).", value=self.saved)


def _lowest_priority() -> None:
    """Rule 5, in the background thread: ``nice`` 19 for this thread alone (Linux
    schedules threads as tasks); elsewhere, or where it is refused, as it is."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass
