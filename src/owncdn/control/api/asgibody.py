"""Request bodies read through ASGI, fed to a sink in worker-thread steps.

    body = RawBody.attach(request) or AsgiBody(request)
    result = await body.run(sink)   # sink.feed(view) per batch, sink.end(), sink.finish()

How a directory blob store takes an upload that cannot be read raw (``rawbody`` Rule
1: TLS, HTTP/1.0 as nginx's ``proxy_pass`` sends by default, a chunked body, ASGI
test transports): through the same sinks (``uploadsink.py``), so a bundle lands in
one pack and its blobs are offered to waiting edges before its flush, whichever way
it came. ``AsgiBody`` has ``RawBody``'s interface (``run``, ``call``, ``unlocked``).

Rules:
1. The body's pieces are gathered into batches of ``FEED_BYTES`` (the last one
   shorter); each batch is fed in a worker thread (one of ``FEEDERS``, shared by all
   uploads) while the next is gathered, one feed at a time, in order. The sink gets a read-only view of the batch, valid until
   ``feed`` returns. The event loop never writes a file.
2. ``feed`` or ``end`` raising (a refused body): the rest of the body is read and
   dropped, so the refusal reaches the client, then the error is raised (as
   ``rawbody`` Rule 4). ``finish()`` runs in a worker thread however the body ended
   (also when the client went away or the request was cancelled, after the feed
   running then returned) and its result is ``run``'s.
3. ``call(fn, *args)`` (from the sink, in a worker thread) awaits the coroutine
   ``fn(*args)`` on the event loop; ``unlocked(fn, *args)`` calls ``fn(*args)`` in
   the worker thread (``rawbody`` Rule 6; there is no turn to let go here).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor

from starlette.requests import Request

__all__ = ["FEED_BYTES", "FEEDERS", "AsgiBody"]

FEED_BYTES = 1 << 20
FEEDERS = 8  # threads feeding sinks, for all uploads
_FEEDERS = ThreadPoolExecutor(FEEDERS, thread_name_prefix="asgi-feed")


class AsgiBody:
    def __init__(self, request: Request) -> None:
        self.request = request
        self.loop = asyncio.get_running_loop()
        self.fed = 0  # bytes handed to the sink

    def __repr__(self) -> str:
        return f"<AsgiBody {self.fed} bytes fed>"

    async def run(self, sink):
        """Rules 1 and 2."""
        step: Future | None = None  # the feed in a worker thread
        error: BaseException | None = None
        try:
            batch = bytearray()
            async for piece in self.request.stream():
                if error is not None:
                    continue  # Rule 2: read and dropped
                batch += piece
                if len(batch) >= FEED_BYTES:
                    error = await _settled(step)
                    step = None if error is not None else self._step(sink, batch, False)
                    batch = bytearray()
            if error is None:
                error = await _settled(step)
                step = None if error is not None else self._step(sink, batch, True)
                error = await _settled(step)
            step = None
        finally:
            if step is not None:  # the client went away or the request was cancelled:
                await asyncio.wait([asyncio.wrap_future(step)])  # the feed ends first
                _settled_now(step)
            result = await asyncio.shield(asyncio.wrap_future(_FEEDERS.submit(sink.finish)))
        if error is not None:
            raise error
        return result

    def _step(self, sink, batch: bytearray, last: bool) -> Future:
        return _FEEDERS.submit(self._feed, sink, batch, last)

    def _feed(self, sink, batch: bytearray, last: bool) -> None:
        """In a worker thread."""
        if batch:
            self.fed += len(batch)
            sink.feed(memoryview(batch).toreadonly())
        if last:
            sink.end()

    def call(self, fn, *args):
        """Rule 3."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result()

    def unlocked(self, fn, *args):
        """Rule 3."""
        return fn(*args)


async def _settled(step: Future | None) -> BaseException | None:
    """What the feed raised (an ``Exception``; None if it returned). Cancelled, the
    wait ends and the feed runs on (``run`` waits for it before ``finish``)."""
    if step is None:
        return None
    try:
        await asyncio.wrap_future(step)
    except Exception as exc:  # noqa: BLE001 - Rule 2: raised once the body was read
        return exc
    return None


def _settled_now(step: Future) -> None:
    if step.done() and not step.cancelled():
        step.exception()  # retrieved: the error that ends the request is another
