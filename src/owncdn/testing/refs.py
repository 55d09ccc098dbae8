"""Checking that objects are freed by reference counting alone, for tests.

    with collector_off():            # a reference cycle now keeps its objects alive
        ...
        assert await freed_after(conn, writer.close)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

__all__ = ["collector_off", "freed_after"]


@contextlib.contextmanager
def collector_off():
    """The cyclic garbage collector disabled inside the block (restored after)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


async def freed_after(obj, action, timeout: float = 2.0) -> bool:
    """Whether ``obj`` is freed within ``timeout`` seconds of ``action()``; the caller
    must hold no other reference to it."""
    ref = weakref.ref(obj)
    del obj
    action()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while ref() is not None and loop.time() < deadline:
        await asyncio.sleep(0.01)
    return ref() is None
