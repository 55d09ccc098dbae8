"""Blobs arriving: an upload in progress streamed, as it is written, to the edges that
wait for it (``GET /v1/blobs/{sha256}/arriving?wait=S``).

A push announces its release before it uploads (``releases.py`` Rule 8), and the edges
prefetch the small blobs with waiting bundle fetches (``blobs.py`` Rule 4b). A blob too
large for a bundle (a release's image or archive) came to the edges only once its
upload was stored and the release created, so its upload and its fan-out ran one after
the other. Here an edge asks for it while it is uploaded and gets its bytes as they are
written.

Rules:
1. A raw ``PUT /v1/blobs/{sha256}`` (``RawBody``, a directory store) registers a
   ``Growing`` record for the app (one per blob at a time: a second upload of the same
   blob meanwhile is not streamed) before it reads its body, and wakes the hub topic
   the waiting fetches follow. ``BlobSink`` tells it the temp file once made, the
   bytes written so far (``advance``), and the end (``end``): ``verified`` (all the
   blob's bytes written and they hash to its name) or ``failed`` (a wrong hash, a
   client gone, a store error).
2. ``arriving``: a blob growing is streamed as chunked coding, each chunk what was
   written since the last, straight from the temp file to the socket (``sendfile.py``,
   the file opened once, so its rename into the store does not matter); a temp file
   gone before it could be opened was renamed into the store (the blob verified and
   flushed), and what is left comes from there (a flush that failed cuts the stream,
   as below). The last chunk goes only once the upload is verified; a failed upload
   closes the connection before it, also when every byte was sent: the reader, which
   checks the blob's hash anyway, sees a cut answer and keeps nothing it cannot
   verify. Otherwise the stored blob is answered as ``GET /v1/blobs/{sha256}``
   answers; with neither, the request waits for one (woken by the hub, re-checked
   every ``hub.RECHECK_SECONDS``) up to ``wait`` seconds, then 404. A stream that
   caught up with its upload waits to be woken (``Growing.changed``): each
   ``advance`` and the ``end`` wake the streams waiting then, from the writer's
   thread, on each stream's loop; nothing polls (it looked every 4 ms before, and
   the edges got what was written up to 4 ms late). A waiter looks again after
   ``STREAM_RECHECK_SECONDS`` regardless, which only a lost wake-up would need.
3. Streaming needs the raw socket (plain TCP, HTTP/1.1: ``RawSender``); elsewhere (TLS,
   ASGI transports) the request waits for the stored blob instead.
4. The bytes streamed before the end are not verified yet (they are what the uploader
   sent): ``blob_reader`` tokens only, as for every blob download, and the reader
   verifies (edges do: ``edge/blobdownload.py``).
"""

from __future__ import annotations

import asyncio
import os
import threading
from contextlib import suppress

from starlette.responses import Response

from owncdn.control.blobs import BlobError
from owncdn.waiting import wait_event

__all__ = ["Growing", "GrowingResponse", "STREAM_RECHECK_SECONDS", "end_growing", "growing_blobs", "start_growing"]

STREAM_RECHECK_SECONDS = 1.0  # Rule 2: a stream waiting to be woken looks again after this anyway
_MADE = threading.Lock()


class Growing:
    """Rule 1: one upload in progress, as its writer tells it (any thread)."""

    __slots__ = ("sha", "size", "path", "written", "state", "_lock", "_waiters")

    def __init__(self, sha: str, size: int) -> None:
        self.sha, self.size = sha, size
        self.path: str | None = None  # the temp file, once made (before the first advance)
        self.written = 0  # bytes in it, in order
        self.state = "writing"  # then "verified" or "failed"
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def __repr__(self) -> str:
        return f"<Growing {self.sha[:12]} {self.written}/{self.size} {self.state}>"

    def advance(self, written: int) -> None:
        """The writer (any thread): ``written`` bytes are in the temp file now."""
        self.written = written
        self._wake()

    def end(self, state: str) -> None:
        """The writer: the upload ended ``verified`` or ``failed``."""
        self.state = state
        self._wake()

    def _wake(self) -> None:
        if not self._waiters:  # a waiter appends before it looks (``changed``): none missed
            return
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, woken in waiters:
            with suppress(RuntimeError):  # its loop closed: nobody to wake
                loop.call_soon_threadsafe(woken.set)

    async def changed(self, written: int, state: str) -> None:
        """Rule 2: return once ``written`` or ``state`` differ from these (or after
        ``STREAM_RECHECK_SECONDS``)."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.append(waiter)
        try:
            if self.written == written and self.state == state:
                await wait_event(waiter[1], STREAM_RECHECK_SECONDS)
        finally:
            with self._lock, suppress(ValueError):
                self._waiters.remove(waiter)


def growing_blobs(app) -> dict[str, Growing]:
    """The app's uploads in progress, by blob."""
    table = getattr(app.state, "growing_blobs", None)
    if table is None:
        with _MADE:
            table = getattr(app.state, "growing_blobs", None)
            if table is None:
                table = app.state.growing_blobs = {}
    return table


def start_growing(app, sha: str, size: int) -> Growing:
    """Rule 1: the record of an upload about to be read (registered unless the blob
    is growing already; then nobody streams this one)."""
    growing = Growing(sha, size)
    if growing_blobs(app).setdefault(sha, growing) is growing:
        ctx = getattr(app.state, "owncdn", None)
        if ctx is not None:
            from .blobs import BLOBS_TOPIC

            ctx.hub.notify(BLOBS_TOPIC)
    return growing


def end_growing(app, growing: Growing) -> None:
    """The upload is over: forgotten (a stream that has the record follows it to its end)."""
    if growing.state == "writing":
        growing.end("failed")
    table = growing_blobs(app)
    if table.get(growing.sha) is growing:
        del table[growing.sha]


class _OpenFile:
    """The temp file, opened once, as ``RawSender.chunk`` reads a store (``open_run``)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def open_run(self, parts, i: int) -> tuple[int, int, int, int]:
        _, _, offset, count = parts[i]
        return os.dup(self.fd), offset, count, 1


class GrowingResponse(Response):
    """Rule 2: a growing blob, chunked, as it is written."""

    media_type = "application/octet-stream"

    def __init__(self, blobs, growing: Growing, sender) -> None:
        self.blobs, self.growing, self.sender = blobs, growing, sender
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"application/octet-stream"), (b"transfer-encoding", b"chunked"),
                            (b"cache-control", b"no-store")]

    async def __call__(self, scope, receive, send) -> None:
        growing, sender, fd, sent = self.growing, self.sender, -1, 0
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            while True:
                state = growing.state
                if state == "failed":
                    await sender.cut()  # Rule 2: before the body's end
                    return
                if sent >= growing.size:  # every byte sent: the body ends once the upload is verified
                    if state == "verified":
                        break
                    await growing.changed(growing.written, state)
                    continue
                if fd < 0 and growing.path is not None:
                    try:
                        fd = os.open(growing.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    except FileNotFoundError:  # verified and renamed into the store meanwhile: read from there
                        growing.path = None
                written = growing.written
                if fd >= 0 and written > sent:
                    if not await sender.chunk(_OpenFile(fd), [(b"", growing.sha, sent, written - sent)]):
                        return  # the client went away
                    sent = written
                    continue
                if state == "verified" and fd < 0 and growing.path is None:
                    try:
                        if not await sender.chunk(self.blobs, [(b"", growing.sha, sent, growing.size - sent)]):
                            return
                    except (BlobError, OSError):  # its flush failed: not stored after all
                        await sender.cut()
                        return
                    sent = growing.size
                    break
                await growing.changed(written, state)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if fd >= 0:
                os.close(fd)
            sender.close()
