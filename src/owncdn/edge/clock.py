"""Wall-clock time for cache decisions; tests pass `owncdn.testing.FakeClock` instead."""

from __future__ import annotations

import time


class SystemClock:
    def time(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "<SystemClock>"
