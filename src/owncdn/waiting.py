"""Waiting with a time limit without losing a cancellation.

    if await wait_event(self.wake, 5.0):   # True: set; False: 5 s passed
        ...
    async with asyncio.timeout(seconds):   # a future or a coroutine: the same, inline
        result = await future

``asyncio.wait_for`` on Python 3.11 runs what it waits for as a task of its own, and
when the waiting task is cancelled just as that finishes (an event set in the same
turn of the loop as the ``cancel``), it returns the result and the cancellation is
lost (CPython gh-86296, fixed in 3.12). A loop that waits this way and is stopped by
cancelling it then waits again, and whoever awaits its end waits forever: an edge's
log shipper, woken by the edge's last requests as the edge closed, kept a test fleet
from stopping (1 run in about 50 on this machine; one CI run hung until its limit).

Rules:
1. ``wait_event`` waits in the calling task under ``asyncio.timeout`` (so does code
   that waits for anything else with a limit), which tells its own expiry from a cancellation from outside:
   a ``cancel`` always ends the caller with ``CancelledError``, whatever else happened
   in the same turn.
2. ``timeout`` ``None`` waits without a limit; an event already set returns at once.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Whether ``event`` was set within ``timeout`` seconds (Rules 1-2)."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
