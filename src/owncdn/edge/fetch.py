"""Origin fetches: retries across a service's origins, and coalesced cache fills.

Rules:
1. `fetch_from_origin` tries the service's origins in turn. A request is retried
   on the next origin only when it is idempotent and no response byte arrived
   (connect errors, a stale keep-alive connection, a first-byte timeout for GET/HEAD).
2. A `Fill` is one origin fetch for one cache key. Clients that miss on the key
   while it runs join it instead of asking the origin again (request coalescing).
3. A fill whose response is storable reads the body at the origin's pace, keeps
   every chunk, streams them to all joined clients, and stores the object at the
   end. A fill whose response turns out not to be shareable is handed to the
   client that started it alone (`passthrough`); joined clients fetch for
   themselves.
4. A storable response that grows past the size limit stops being stored; from
   then on chunks every client has read are dropped and reading waits for the
   slowest client, so memory stays bounded.
5. A fill with a stale copy revalidates it: a 304 refreshes the stored headers;
   an origin failure falls back to the stale copy when stale-if-error allows.
6. With a disk tier, a body too large for memory, or large enough to be served
   from its file (`DiskTier.serves`, edge/tiers.py rule 5), by Content-Length or
   growing past either size while its start is still kept, is written to disk as it
   arrives and committed at the end; the memory tier then keeps the file, not the
   bytes, and memory behaves as in rule 4 meanwhile. A fetch that fails midway
   aborts the write: nothing partial is ever stored.
7. A disk tier that cannot take a body (no space, an I/O error, over its budget)
   never fails the response: the write is aborted and counted, the body is kept in
   memory when all of it still is and it fits, and otherwise just not stored.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING

from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.http.reuse import stale_if_error_allowed
from owncdn.core.http.storable import storability
from owncdn.core.http.stored import make_stored
from owncdn.core.http.validation import apply_304, conditional_headers
from owncdn.core.http.vary import vary_key
from owncdn.edge.bodies import make_body
from owncdn.edge.disk import DiskError
from owncdn.edge.purge import cache_tags
from owncdn.edge.upstream import (
    OriginConnectError,
    OriginError,
    OriginResponse,
    OriginTimeout,
    send_request,
)

if TYPE_CHECKING:
    from owncdn.edge.app import Edge
    from owncdn.edge.memstore import CacheObject
    from owncdn.edge.metrics import EdgeMetrics
    from owncdn.edge.service import ServiceRuntime

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
ERROR_STATUSES = frozenset({500, 502, 503, 504})
PASS_MARK_SECONDS = 60.0
UNSTORED_BUFFER = 4 << 20
log = logging.getLogger(__name__)


async def fetch_from_origin(
    svc: "ServiceRuntime", method: str, target: str, headers: Headers, body=None, start: int = 0,
    metrics: "EdgeMetrics | None" = None,
) -> tuple[OriginResponse, int]:
    """Send to the first origin that answers; returns the response and the origin's index.
    Each attempt is counted in `metrics` (outcome and time to the response head)."""
    idempotent = method in IDEMPOTENT and body is None
    attempts = 1 + (svc.retries if idempotent else 0)
    n = len(svc.pools)
    tries = i = 0
    while True:
        pool = svc.pools[(start + i) % n]
        fields = headers.items()
        if svc.origin_host == "origin":
            fields = [("host", pool.address.host_header)] + [(k, v) for k, v in fields if k != "host"]
        try:
            return await _send_counted(svc.name, pool, method, target, fields, body, metrics), (start + i) % n
        except OriginConnectError as exc:
            if exc.reused and body is None:
                continue  # the origin closed an idle connection: try a fresh one, same origin
            last: OriginError = exc
        except OriginTimeout as exc:
            if not idempotent:
                raise
            last = exc
        tries += 1
        if tries >= attempts:
            raise last
        i += 1


async def _send_counted(service: str, pool, method: str, target: str, fields, body,
                        metrics: "EdgeMetrics | None") -> OriginResponse:
    """`send_request`, with its outcome and time to the response head counted in `metrics`
    (not an idle keep-alive connection the origin had closed: that is retried at once)."""
    if metrics is None:
        return await send_request(pool, method, target, fields, body)
    t0 = perf_counter()
    try:
        resp = await send_request(pool, method, target, fields, body)
    except OriginError as exc:
        if not (isinstance(exc, OriginConnectError) and exc.reused and body is None):
            metrics.origin_failed(service, isinstance(exc, OriginTimeout))
        raise
    metrics.origin_response(service, perf_counter() - t0)
    return resp


class Fill:
    """One coalesced origin fetch for a cache key."""

    def __init__(self, edge: "Edge", svc: "ServiceRuntime", key: str, uri: str, target: str,
                 headers: Headers, req_headers: Headers, stale: "CacheObject | None" = None,
                 private: bool = False) -> None:
        self.edge = edge
        self.svc = svc
        self.key = key
        self.uri = uri
        self.target = target
        self.headers = headers          # what goes to the origin
        self.req_headers = req_headers  # the starting client's request fields
        self.stale = stale
        self.private = private  # not joinable by other clients (Authorization)
        self.loop = asyncio.get_running_loop()
        self.head_ready = self.loop.create_future()
        self.status = 0
        self.resp_headers = Headers()
        self.vary: tuple | None = ()
        self.outcome = ""        # fetched | revalidated | stale | pass | error
        self.error: Exception | None = None
        self.passthrough: OriginResponse | None = None
        self.obj: "CacheObject | None" = None
        self.storing = False
        self.spool = None        # a disk-tier writer, for bodies too large for memory
        self.no_disk = False     # the disk tier failed to take this body (Rule 7)
        self.chunks: list[bytes] = []
        self.base = 0            # absolute index of chunks[0]
        self.complete = False
        self.origin_ms: float | None = None
        self.received = 0        # body bytes read from the origin so far
        self.readers: dict[object, int] = {}
        self.had_readers = False
        self._more: asyncio.Future | None = None
        self._room: asyncio.Future | None = None
        self.task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<Fill {self.key!r} {self.outcome or 'pending'} chunks={self.base + len(self.chunks)}>"

    def start(self) -> None:
        self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._fetch()
        except asyncio.CancelledError:
            self._fail(ConnectionError("fill cancelled"))
            raise
        except Exception as exc:  # noqa: BLE001 - every failure must reach the waiting clients
            self._fail(exc)
        finally:
            if self.spool is not None:
                self.spool.abort()  # an unfinished body never becomes an object on disk
            if self.edge.fills.get(self.key) is self:
                del self.edge.fills[self.key]

    def _fail(self, exc: Exception) -> None:
        self.error = exc
        if not self.head_ready.done():
            self.outcome = "error"
            self.head_ready.set_result(None)
        self._wake()

    async def _fetch(self) -> None:
        fields = self.headers
        if self.stale is not None:
            fields = fields.copy()
            for name, value in conditional_headers(self.stale.meta):
                fields.set(name, value)
        clock = self.edge.clock
        request_time = clock.time()
        t0 = perf_counter()
        try:
            resp, _ = await fetch_from_origin(self.svc, "GET", self.target, fields, metrics=self.edge.metrics)
        except OriginError as exc:
            if self._fall_back_to_stale():
                return
            raise exc
        self.origin_ms = (perf_counter() - t0) * 1000
        response_time = clock.time()
        headers = Headers.from_raw(resp.headers)
        if "date" not in headers:  # RFC 9110 §6.6.1: a cache adds the Date it received the response
            headers.set("date", format_http_date(response_time))
        if self.stale is not None:
            if resp.status == 304:
                resp.close() if not resp.no_body else await _drain(resp)
                self._refresh(headers, request_time, response_time)
                return
            if resp.status in ERROR_STATUSES and self._fall_back_to_stale():
                resp.close()
                return
        self._take(resp, headers, request_time, response_time)
        if self.storing:
            await self._read_body(resp)

    def _fall_back_to_stale(self) -> bool:
        stale = self.stale
        if stale is None:
            return False
        if not stale_if_error_allowed(stale.meta, self.req_headers, self.edge.clock.time(), self.svc.policy):
            return False
        self.obj = stale
        self.outcome = "stale"
        self.head_ready.set_result(None)
        return True

    def _refresh(self, headers: Headers, request_time: float, response_time: float) -> None:
        stale = self.stale
        meta = apply_304(stale.meta, headers, request_time, response_time, self.req_headers, self.svc.policy)
        self.obj = self.edge.make_object(self.svc, self.key, self.uri, meta, stale.body)
        self.edge.refreshed(self.obj)
        self.outcome = "revalidated"
        self.head_ready.set_result(None)

    def _take(self, resp: OriginResponse, headers: Headers, request_time: float, response_time: float) -> None:
        self.status = resp.status
        self.resp_headers = headers
        reason = None if self.svc.cache_enabled else "caching disabled"
        reason = reason or storability("GET", resp.status, self.req_headers, headers, self.svc.policy)
        self.vary = vary_key(headers, self.req_headers)
        if reason is None and self.vary is None:
            reason = "vary *"
        too_large = self._too_large(headers.get("content-length"))
        if reason is None and too_large and not self._fits_disk(headers.get("content-length")):
            reason = "too large"
        if reason is None:
            self.storing = True
            self.outcome = "fetched"
            self._meta_times = (request_time, response_time)
            if too_large or self._for_disk(headers.get("content-length")):
                self._start_spool()
        else:
            self.outcome = "pass"
            self.passthrough = resp
            self.pass_reason = reason
            if resp.status < 500 and not self.private:  # a private fill speaks for one client only
                self.edge.store.mark_pass(self.key, self.edge.clock.time() + PASS_MARK_SECONDS)
        self.head_ready.set_result(None)

    def size_limit(self) -> int:
        limit = self.edge.store.budget // 2
        if self.svc.max_object_size is not None:
            limit = min(limit, self.svc.max_object_size)
        return limit

    def _too_large(self, content_length: str | None) -> bool:
        try:
            return content_length is not None and int(content_length) > self.size_limit()
        except ValueError:
            return True

    def _fits_disk(self, content_length: str | None) -> bool:
        """Whether a body too large for memory can go to the disk tier instead."""
        disk = self.edge.disk
        if disk is None or self.no_disk:
            return False
        limit = disk.budget // 2
        if self.svc.max_object_size is not None:
            limit = min(limit, self.svc.max_object_size)
        try:
            return content_length is None or int(content_length) <= limit
        except ValueError:
            return False

    def _for_disk(self, content_length: str | None) -> bool:
        """Whether a body that fits memory is still served from its disk-tier file (Rule 6)."""
        disk = self.edge.disk
        return (disk is not None and content_length is not None and disk.serves(int(content_length))
                and self._fits_disk(content_length))

    def _stored(self):
        request_time, response_time = self._meta_times
        return make_stored(self.status, self.resp_headers, self.req_headers, request_time,
                           response_time, self.svc.policy)

    def _start_spool(self) -> None:
        """Write the body to the disk tier as it arrives (Rule 6); memory keeps only
        what readers have not passed yet."""
        try:
            self.spool = self.edge.disk.spool(self.key, self.uri, self._stored(), cache_tags(self.resp_headers))
            for chunk in self.chunks:
                self.spool.write(chunk)
        except (DiskError, OSError) as exc:
            self._disk_failed(exc)

    def _spool_write(self, chunk: bytes) -> None:
        try:
            self.spool.write(chunk)
        except (DiskError, OSError) as exc:
            self._disk_failed(exc)

    def _disk_failed(self, exc: Exception) -> None:
        """Rule 7: keep the body in memory if all of it is still here and fits, else pass it on."""
        if self.spool is not None:
            self.spool.abort()
            self.spool = None
        self.no_disk = True
        self.edge.disk.errors += 1
        log.warning("disk tier: not stored %r: %s", self.key, exc)
        if self.base or self.received > self.size_limit() or self._too_large(self.resp_headers.get("content-length")):
            self.storing = False

    async def _read_body(self, resp: OriginResponse) -> None:
        size = 0
        limit = self.size_limit()
        disk = self.edge.disk
        to_disk = disk.sendfile_min if disk is not None else limit + 1  # Rule 6
        async for chunk in resp.body():
            size += len(chunk)
            self.received = size  # the leading request logs it as origin_bytes (app.py miss)
            self.edge.metrics.origin_body(self.svc.name, len(chunk))
            self.chunks.append(chunk)
            if self.spool is not None:
                self._spool_write(chunk)
            elif self.storing and (size > limit or size >= to_disk):  # a body of unknown length grew
                if self._fits_disk(None) and self.base == 0:
                    self._start_spool()
                elif size > limit:
                    self.storing = False
                    self.edge.store.mark_pass(self.key, self.edge.clock.time() + PASS_MARK_SECONDS)
            self._wake()
            if not self.storing or self.spool is not None:
                await self._trim_and_wait()
        self.complete = True
        if self.spool is not None:
            spool, self.spool = self.spool, None
            self.obj = self.edge.disk.adopt(spool, self.edge, self.svc, self.key, self.uri, self._stored())
            if self.obj is not None:
                self.edge.store.put(self.obj)  # the file, at a nominal cost (memstore.py)
        elif self.storing:
            self.obj = self.edge.make_object(self.svc, self.key, self.uri, self._stored(),
                                             make_body(self.chunks, size))
            self.edge.keep(self.obj)
        self._wake()

    async def _trim_and_wait(self) -> None:
        """Drop chunks every reader has passed; wait while the rest is too large.

        Before the first reader arrives nothing is dropped; once every reader has
        left, nobody wants the rest and the fetch ends.
        """
        while True:
            if not self.readers and self.had_readers:
                raise ConnectionError("every client left")
            if self.readers:
                low = min(self.readers.values())
                if low > self.base:
                    del self.chunks[:low - self.base]
                    self.base = low
            if sum(map(len, self.chunks)) <= UNSTORED_BUFFER:
                return
            self._room = self.loop.create_future()
            try:
                async with asyncio.timeout(self.svc.pools[0].timeouts.idle):  # owncdn/waiting.py: not wait_for
                    await self._room
            except asyncio.TimeoutError:
                raise ConnectionError("clients stopped reading") from None
            finally:
                self._room = None

    def _wake(self) -> None:
        if self._more is not None and not self._more.done():
            self._more.set_result(None)

    async def read(self, start: int = 0):
        """Yield the body's chunks from absolute chunk index 0 as they arrive."""
        if start < self.base:
            raise ConnectionError("the start of this response is no longer kept")
        me = object()
        pos = start
        self.readers[me] = pos
        self.had_readers = True
        try:
            while True:
                while pos - self.base < len(self.chunks):
                    chunk = self.chunks[pos - self.base]
                    pos += 1
                    self.readers[me] = pos
                    if self._room is not None and not self._room.done():
                        self._room.set_result(None)
                    yield chunk
                if self.complete:
                    return
                if self.error is not None:
                    raise self.error
                if self._more is None or self._more.done():
                    self._more = self.loop.create_future()
                await asyncio.shield(self._more)
        finally:
            del self.readers[me]
            if self._room is not None and not self._room.done():
                self._room.set_result(None)


async def _drain(resp: OriginResponse) -> None:
    async for _ in resp.body():
        pass
