"""The edge's request flow: route by Host, look up, serve, fetch, pass.

The steps of a request (DESIGN.md, data flow 3), each a method below:
1. `handle`: pick the service by Host (421 for an unknown host); pass unsafe methods
   and uncacheable requests (`pass_request`).
2. Look up the primary key and the variant matching the request's Vary'd fields.
   FRESH -> `serve` now (HIT). Stale inside stale-while-revalidate -> serve (STALE)
   and revalidate in the background. Otherwise -> `miss`.
3. `miss` joins or starts a coalesced `Fill` in the same turn of the loop as the
   lookup (a fill that ended in between would otherwise be fetched again); the client
   gets the fill's response as it streams (MISS), the revalidated stored copy
   (REVALIDATED), the stale copy when the origin failed (STALE), or a 502/504 naming
   the edge and the request id.
4. Every response carries X-Cache, X-Served-By, Age, Via, Server-Timing and
   X-Request-Id, and ends with one access-log line.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from time import perf_counter

from owncdn.core.http.cachekey import cache_key
from owncdn.core.http.conditional import evaluate_conditionals, not_modified_headers
from owncdn.core.http.forwarding import forward_request_headers, forward_response_headers
from owncdn.core.http.freshness import current_age
from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.http.invalidation import invalidated_targets
from owncdn.core.http.ranges import (
    content_range,
    if_range_allows,
    multipart_body,
    multipart_plan,
    parse_range,
    unsatisfied_range,
)
from owncdn.core.http.reuse import Reuse, reuse_decision
from owncdn.core.http.stored import StoredResponse
from owncdn.core.http.vary import vary_matches
from owncdn.edge.accesslog import AccessLog
from owncdn.edge.bodies import FileSlice, part, whole
from owncdn.edge.challenges import ACME_PATH, answer_challenge
from owncdn.edge.fetch import Fill, fetch_from_origin
from owncdn.edge.https import https_front
from owncdn.edge.health import HEALTH_PATH, answer_health, is_health_request
from owncdn.edge.memstore import CacheObject, MemoryStore
from owncdn.edge.metrics import EdgeMetrics
from owncdn.edge.protocol import Request
from owncdn.edge.purge import cache_tags
from owncdn.edge.redirect import Redirects
from owncdn.edge.tiers import open_disk_tier
from owncdn.edge.responses import connection_field, header_block, made_up_body, status_line
from owncdn.edge.service import ServiceRuntime, trust_checker
from owncdn.edge.static import serve_push
from owncdn.edge.tracing import trace_origin_request
from owncdn.edge.upstream import OriginError, OriginTimeout
from owncdn.edge.variants import Variants

CONDITIONAL_FIELDS = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since")
FILL_DROPPED = CONDITIONAL_FIELDS + ("if-range", "range")
NO_BODY_STATUS = frozenset({204, 304})
# Request fields that take a stored response off the plain-hit path (_hit).
PLAIN_HIT_BLOCKERS = CONDITIONAL_FIELDS + ("range", "cache-control", "pragma")


class RequestIds:
    """Short unique ids: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self.prefix = os.urandom(4).hex()
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return "%s-%x" % (self.prefix, self.n)


class Edge:
    def __init__(self, config, *, clock, edge_id: str, location: str, access_log: AccessLog,
                 disk_share: int = 1, geoip: str | None = None) -> None:
        self.config = config
        self.clock = clock
        self.edge_id = edge_id
        self.location = location
        self.log = access_log
        self.loop = asyncio.get_running_loop()
        self.store = MemoryStore(config.edge.memory_cache)
        self.disk_share = disk_share  # workers sharing the disk tier's directory
        self.disk = open_disk_tier(config.edge.disk_cache, disk_share)
        self.tiers = [self.store] if self.disk is None else [self.store, self.disk]
        self.fills: dict[str, Fill] = {}
        self.connections: set = set()
        self.ids = RequestIds()
        self.trusted = trust_checker(config.edge.trusted_proxies)
        self.via_name = f"{edge_id} (owncdn)"
        self.served_by = f"{edge_id} ({location})"
        self.static_fields = f"X-Served-By: {self.served_by}\r\n".encode()
        self.services = {svc.name: ServiceRuntime.from_config(svc) for svc in config.services}
        self.geoip = geoip  # --geoip; redirect services locate visitors (edge/redirect.py)
        self.redirects = Redirects.from_config(config, geoip)
        self._routes: dict[str, ServiceRuntime | None] = {}
        self._keys: dict[tuple[str, str, str], str] = {}
        self.metrics = EdgeMetrics(self)
        self.background: set[asyncio.Task] = set()
        self.draining = False  # shutting down: the health path says 503 (edge/health.py)
        self.releases = None  # pushed releases (edge/releases.py ReleaseStore), set by the server
        self.state_dir = None  # its state directory, set by the server (edge/diskspace.py)
        self.variants = Variants()  # compressed forms of pushed text files (edge/variants.py)

    @property
    def counts(self) -> dict[str, int]:
        """Responses by cache status, summed from the metrics' counters."""
        return self.metrics.by_cache()

    def __repr__(self) -> str:
        return f"<Edge {self.served_by} services={len(self.services)} {self.store!r}>"

    def apply_config(self, config) -> None:
        """Switch to a new config at once: services, routes, trusted proxies, memory
        budget. Objects of services that still exist stay stored; those of removed
        services go. Building the new services first means a failure changes nothing."""
        services = {svc.name: ServiceRuntime.from_config(svc) for svc in config.services}
        trusted = trust_checker(config.edge.trusted_proxies)
        self.redirects = Redirects.from_config(config, self.geoip, self.redirects)
        old, self.services = self.services, services
        self.config = config
        self.trusted = trusted
        self._routes.clear()
        self._keys.clear()
        self.store.budget = config.edge.memory_cache
        self.store.shrink()
        if self.disk is not None and config.edge.disk_cache is not None:
            self.disk.configure(config.edge.disk_cache, self.disk_share)  # budget, sendfile_min_size
        for name in old.keys() - services.keys():
            for tier in self.tiers:
                for key in tier.keys_for_uri_prefix(f"{name}|"):
                    tier.remove_key(key)
        for svc in old.values():
            svc.close()

    def keep(self, obj: CacheObject) -> None:
        """Store a fetched object: the memory tier, and the disk tier behind it."""
        self.store.put(obj)
        if self.disk is not None:
            self.disk.save(obj)

    def refreshed(self, obj: CacheObject) -> None:
        """A stored object the origin confirmed (304): new headers in memory; on disk,
        the soft-purge mark goes and a small copy gets the new headers too."""
        self.store.put(obj)
        if self.disk is not None:
            self.disk.revalidated(obj)

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()
        for svc in self.services.values():
            svc.close()
        self.redirects.close()
        self.variants.close()
        for task in list(self.background):
            task.cancel()

    # -- routing -----------------------------------------------------------------
    def route(self, host: str) -> ServiceRuntime | None:
        try:
            return self._routes[host]
        except KeyError:
            pass
        found = self.config.service_for_host(host)
        svc = self.services[found.name] if found is not None else None
        if len(self._routes) < 10_000:
            self._routes[host] = svc
        return svc

    def key_for(self, svc: ServiceRuntime, req: Request) -> str:
        """The primary cache key; memoised unless cookies are part of it. Its scheme is
        the one the origin is told (X-Forwarded-Proto from a trusted proxy, else the
        connection's): see core/http/cachekey.py Rule 1."""
        scheme = req.conn.scheme
        if "x-forwarded-proto" in req.headers.first and self.trusted(req.conn.client_addr):
            scheme = req.headers.get("x-forwarded-proto").strip().lower()
        if svc.key_policy.cookies:
            return cache_key(svc.name, req.host, req.target, req.headers, svc.key_policy, scheme)
        memo = (svc.name, scheme, req.host, req.target)
        key = self._keys.get(memo)
        if key is None:
            if len(self._keys) >= 100_000:
                self._keys.clear()
            key = self._keys[memo] = cache_key(svc.name, req.host, req.target, req.headers,
                                               svc.key_policy, scheme)
        return key

    # -- entry points called by the connection -----------------------------------
    def handle(self, req: Request):
        ids = self.ids
        ids.n += 1
        req.id = "%s-%x" % (ids.prefix, ids.n)
        if req.target.startswith("/.well-known/"):  # for any Host: health checks, ACME HTTP-01
            if req.target.startswith(HEALTH_PATH) and is_health_request(req):  # edge/health.py
                return answer_health(self, req)
            if req.target.startswith(ACME_PATH) and answer_challenge(self, req):  # edge/challenges.py
                return None
        svc = self.route(req.host)
        if svc is None:
            self.reply(req, 421, f"no service is configured for host {req.host!r} on this edge")
            return None
        req.service = svc.name
        if svc.front:  # one test on the hit path for the three kinds of service below
            if svc.https is not None and https_front(self, req, svc):  # redirect to https / HSTS (edge/https.py)
                return None
            if req.service in self.redirects.by_service and self.redirects.answer(self, req):  # mirrors (edge/redirect.py)
                return None
            if svc.site is not None:  # a push service: served from its release (edge/static.py)
                return serve_push(self, req, svc)
        if req.method not in ("GET", "HEAD") or not svc.cache_enabled:
            return self.pass_request(req, svc)
        headers = req.headers
        if svc.cookie_bypass and "cookie" in headers.first:
            return self.pass_request(req, svc)
        key = self.key_for(svc, req)
        obj = self.store.get(key, headers)
        if obj is None and self.disk is not None:
            obj = self.disk.lookup(self, svc, key, headers)
            if obj is not None:
                self.store.put(obj)
        now = self.clock.time()
        if obj is not None:
            if now < obj.meta.fresh_until and _plain(headers):
                return self._hit(req, obj, now)
            decision = reuse_decision(obj.meta, headers, now, svc.policy)
            if decision is Reuse.FRESH:
                return self.serve(req, obj, "HIT", now)
            if decision is Reuse.STALE_WHILE_REVALIDATE:
                self.revalidate_in_background(req, svc, key, obj)
                return self.serve(req, obj, "STALE", now)
            return self.miss(req, svc, key, obj)
        if self.store.is_pass(key, now):
            return self.pass_request(req, svc)
        # RFC 9111 §3.5: a response to an authorized request may be stored only if it
        # says so; until it does, nobody else may wait for it, so its fill is private.
        return self.miss(req, svc, key, None, private="authorization" in headers.first)

    def reject(self, req: Request, status: int, reason: str) -> None:
        req.id = self.ids.next()
        self.reply(req, status, reason)

    def crashed(self, exc: BaseException) -> None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)

    # -- responses from the store --------------------------------------------------
    def _hit(self, req: Request, obj: CacheObject, now: float):
        """The common case, kept flat: a fresh object, no conditionals, no ranges."""
        meta = obj.meta
        req.cache = "HIT"
        req.status = meta.status
        t = req.ttfb = perf_counter()
        age = meta.corrected_initial_age + (now - meta.response_time if now > meta.response_time else 0)
        tail = b"Age: %d\r\nX-Cache: HIT\r\nX-Request-Id: %s\r\nServer-Timing: cdn-cache;desc=HIT, edge;dur=%.2f\r\n%s\r\n" % (
            age, req.id.encode(), (t - req.start) * 1000, connection_field(req))
        body = obj.body
        conn = req.conn
        if conn.h2:  # HTTP/2: the stored head's encoding is remembered (edge/h2.py)
            conn.write_head(obj.head, tail)
            head = b""
        else:
            head = obj.head + tail
        if req.method == "HEAD":
            conn.write(head)
        elif type(body) is bytes and len(body) <= 16384:
            conn.write(head + body)
            req.sent = len(body)
        else:
            req.sent = len(body)
            pending = self._send_body(conn, head, whole(body))
            if pending is not None:
                return self._done_after(req, pending)
        key = (req.service, req.status, "HIT")
        pair = self.metrics.served.get(key) or self.metrics.series(*key)
        pair[0] += 1
        pair[1] += req.sent
        conn.finish(req)
        self.log.write(req, now, t)
        return None

    def _send_body(self, conn, head: bytes, body):
        """Returns what is left to await (a large disk body going out), or None."""
        if type(body) is FileSlice:
            self.metrics.file_bodies[body.file.on_disk] += 1  # which tier held it (metrics.py)
            return conn.send_file(head, body)
        conn.grow_send_buffer(len(body))
        conn.writelines((head, body))
        return None

    def _done_after(self, req: Request, pending):
        """`pending` (a future from `send_file`) resolves once the body is out; the
        request ends then. Returned for the connection (or `miss`) to wait for: no task."""
        pending.add_done_callback(lambda sent: self._body_sent(req, sent))
        return pending

    def _body_sent(self, req: Request, sent) -> None:
        if sent.cancelled() or not sent.result():  # the client went away meanwhile
            req.keep_alive = False
            req.conn.close()
        self._done(req)

    def serve(self, req: Request, obj: CacheObject, cache: str, now: float):
        """Answer from a stored object: 200, 304, 412, 206 or 416. Returns None, or
        what is left to await when a large disk body goes out in steps."""
        req.cache = cache
        meta = obj.meta
        headers = req.headers
        fields = headers.first
        age = b"Age: %d\r\n" % int(current_age(meta, now))
        for name in CONDITIONAL_FIELDS:
            if name in fields:
                code = evaluate_conditionals(req.method, headers, meta.status, meta.headers)
                if code == 304:
                    self._not_modified(req, meta, age)
                    return
                if code == 412:
                    self.reply(req, 412, "a precondition in the request failed")
                    return
                break
        if meta.status == 200 and "range" in fields and req.method == "GET":
            if if_range_allows(headers, meta.headers):
                ranges = parse_range(fields["range"], obj.size)
                if ranges == "unsatisfiable":
                    self.reply(req, 416, "range not satisfiable",
                               f"Content-Range: {unsatisfied_range(obj.size)}\r\n".encode())
                    return
                if ranges and len(ranges) == 1:
                    return self._partial(req, obj, ranges[0], age)
                if ranges:
                    return self._multipart(req, obj, ranges, age)
        return self._send(req, meta.status, obj.head, age, whole(obj.body))

    def _send(self, req: Request, status: int, head: bytes, extra: bytes, body):
        req.status = status
        tail = self._tail(req, extra)
        conn = req.conn
        if req.method == "HEAD" or status in NO_BODY_STATUS:
            conn.writelines((head, tail))
        elif len(body) <= 16384 and type(body) is not FileSlice:
            conn.write(head + tail + body)  # one small buffer is cheaper than a writev of three
            req.sent = len(body)
        else:
            req.sent = len(body)
            pending = self._send_body(conn, head + tail, body)
            if pending is not None:
                return self._done_after(req, pending)
        self._done(req)
        return None

    def _tail(self, req: Request, extra: bytes) -> bytes:
        now = perf_counter()
        req.ttfb = now
        timing = "cdn-cache;desc=%s, edge;dur=%.2f" % (req.cache, (now - req.start) * 1000)
        if req.origin_ms is not None:
            timing += ", origin;dur=%.2f" % req.origin_ms
        return b"%sX-Cache: %s\r\nX-Request-Id: %s\r\nServer-Timing: %s\r\n%s\r\n" % (
            extra, req.cache.encode(), req.id.encode(), timing.encode(), connection_field(req))

    def _not_modified(self, req: Request, meta: StoredResponse, age: bytes) -> None:
        fields = Headers(not_modified_headers(meta.headers))
        head = status_line(304) + header_block(fields) + self.static_fields
        self._send(req, 304, head, age, b"")

    def _partial(self, req: Request, obj: CacheObject, r, age: bytes):
        head = obj.head.replace(b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 206 Partial Content\r\n", 1)
        head = _replace_length(head, r.end - r.start + 1)
        extra = age + f"Content-Range: {content_range(r, obj.size)}\r\n".encode()
        return self._send(req, 206, head, extra, part(obj.body, r.start, r.end + 1))

    def _multipart(self, req: Request, obj: CacheObject, ranges, age: bytes):
        """Several ranges: one multipart/byteranges body (RFC 9110 §14.6)."""
        plan = multipart_plan(ranges, obj.size, obj.fields.get("content-type"), f"owncdn-{req.id}")
        fields = obj.fields.copy()
        fields.set("content-type", plan.content_type)
        fields.set("content-length", str(plan.content_length))
        head = status_line(206) + header_block(fields) + self.static_fields
        return self._send(req, 206, head, age, multipart_body(plan, obj.body))

    def _done(self, req: Request) -> None:
        self.metrics.response(req)
        req.conn.finish(req)
        self.log.write(req, self.clock.time(), perf_counter())

    def reply(self, req: Request, status: int, why: str, extra: bytes = b"") -> None:
        """A response the edge makes up: short text naming the edge, why and the request id."""
        if req.cache == "-":
            req.cache = "PASS"  # answered without the cache: rejects, unknown hosts
        if status >= 400 and req.body is not None and not req.body.complete:
            req.keep_alive = False
        body = made_up_body(status, why, self.served_by, req.id)
        head = status_line(status) + (
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            "Cache-Control: no-store\r\nDate: %s\r\nVia: 1.1 %s\r\n" % (
                len(body), format_http_date(self.clock.time()), self.via_name)
        ).encode() + self.static_fields + extra
        self._send(req, status, head, b"", body)

    # -- misses, revalidation, pass ---------------------------------------------------
    def make_object(self, svc: ServiceRuntime, key: str, uri: str, meta: StoredResponse, body: bytes) -> CacheObject:
        headers = self._response_fields(svc, meta.headers, meta.response_time)
        headers.set("content-length", str(len(body)))
        head = status_line(meta.status) + header_block(headers) + self.static_fields
        return CacheObject(key, uri, meta, body, head, headers, cache_tags(meta.headers))

    def _response_fields(self, svc: ServiceRuntime, headers: Headers, response_time: float) -> Headers:
        out = forward_response_headers(headers, self.via_name)
        if "date" not in out:
            out.set("date", format_http_date(response_time))
        svc.response_rules.apply(out)
        return out

    def _origin_fields(self, req: Request, svc: ServiceRuntime, for_fill: bool) -> Headers:
        fields = forward_request_headers(
            req.headers, client_addr=req.conn.client_addr, host=req.host,
            proto=getattr(req.conn, "scheme", "http"),  # "https" over TLS (edge/tls.py)
            trusted=self.trusted, via=self.via_name, origin_host=None, version=req.version,
        )
        if for_fill:
            for name in FILL_DROPPED:
                fields.remove(name)
        if "x-request-id" not in fields:
            fields.set("x-request-id", req.id)
        trace_origin_request(req, fields)  # W3C traceparent to the origin (edge/tracing.py)
        svc.request_rules.apply(fields)
        return fields

    def _uri(self, svc: ServiceRuntime, host: str, target: str) -> str:
        return f"{svc.name}|{host.lower().split(':')[0]}|{target}"

    def _start_fill(self, req: Request, svc: ServiceRuntime, key: str, stale: CacheObject | None,
                    private: bool = False) -> Fill:
        fill = Fill(self, svc, key, self._uri(svc, req.host, req.target), req.target,
                    self._origin_fields(req, svc, for_fill=True), req.headers, stale, private)
        if not private:
            self.fills[key] = fill
        fill.start()
        return fill

    def revalidate_in_background(self, req: Request, svc: ServiceRuntime, key: str, obj: CacheObject) -> None:
        if key not in self.fills:
            self._start_fill(req, svc, key, obj)

    def miss(self, req: Request, svc: ServiceRuntime, key: str, stale: CacheObject | None,
             private: bool = False):
        """Join the fill running for `key`, or start one, at once: the store was looked
        up in this same turn of the loop, so a fill cannot end (its object stored, the
        fill gone) in between and be fetched again. Returns what waits for it."""
        req.cache = "MISS"
        fill = None if private else self.fills.get(key)
        leader = fill is None
        if leader:
            fill = self._start_fill(req, svc, key, stale, private)
        return self._answer_from_fill(req, svc, fill, leader)

    async def _answer_from_fill(self, req: Request, svc: ServiceRuntime, fill: Fill, leader: bool) -> None:
        await asyncio.shield(fill.head_ready)
        req.origin_ms = fill.origin_ms
        outcome = fill.outcome
        if outcome in ("stale", "revalidated") and fill.obj is not None:
            if leader or vary_matches(fill.obj.meta.vary, req.headers):
                pending = self.serve(req, fill.obj, "STALE" if outcome == "stale" else "REVALIDATED",
                                     self.clock.time())
                if pending is not None:
                    await pending
                return
        elif outcome == "error":
            self.origin_failed(req, fill.error)
            return
        elif outcome == "pass" and leader and fill.passthrough is not None:
            await self._stream_pass(req, svc, fill.passthrough, "MISS")
            return
        elif outcome == "fetched" and (leader or fill.base == 0 and vary_matches(fill.vary, req.headers)):
            await self._stream_fill(req, svc, fill)
            if leader:
                req.origin_bytes = fill.received  # access log (formatted later, accesslog.py rule 5)
            return
        await self.pass_request(req, svc)

    def origin_failed(self, req: Request, exc: BaseException | None) -> None:
        if isinstance(exc, OriginTimeout):
            self.reply(req, 504, f"the origin did not answer in time ({exc})")
        else:
            self.reply(req, 502, f"the origin could not be reached ({exc})")

    async def _stream_fill(self, req: Request, svc: ServiceRuntime, fill: Fill) -> None:
        req.cache = "MISS"
        headers = self._response_fields(svc, fill.resp_headers, self.clock.time())
        status = fill.status
        if status == 200:
            for name in CONDITIONAL_FIELDS:
                if name in req.headers:
                    code = evaluate_conditionals(req.method, req.headers, status, headers)
                    if code == 304:
                        head = status_line(304) + header_block(Headers(not_modified_headers(headers)))
                        self._send(req, 304, head + self.static_fields, b"Age: 0\r\n", b"")
                        return
                    if code == 412:
                        self.reply(req, 412, "a precondition in the request failed")
                        return
                    break
        body = fill.read()
        length = headers.get("content-length")
        if status == 200 and length is not None and "range" in req.headers and req.method == "GET":
            size = int(length)
            if if_range_allows(req.headers, headers):
                ranges = parse_range(req.headers.get("range"), size)
                if ranges == "unsatisfiable":
                    self.reply(req, 416, "range not satisfiable",
                               f"Content-Range: {unsatisfied_range(size)}\r\n".encode())
                    return
                if ranges and len(ranges) == 1:
                    r = ranges[0]
                    status = 206
                    headers.set("content-length", str(r.end - r.start + 1))
                    headers.set("content-range", content_range(r, size))
                    body = _slice(body, r.start, r.end + 1)
        await self._stream(req, status, headers, body, b"Age: 0\r\n")

    async def _stream_pass(self, req: Request, svc: ServiceRuntime, resp, cache: str) -> None:
        req.cache = cache
        headers = self._response_fields(svc, Headers.from_raw(resp.headers), self.clock.time())
        age = headers.get("age")
        extra = b"Age: %s\r\n" % (age or "0").encode("latin-1")
        try:
            await self._stream(req, resp.status, headers, None if resp.no_body else resp.body(), extra)
        finally:
            resp.close()
            self.metrics.origin_body(svc.name, req.sent)
            req.origin_bytes = req.sent  # access log (accesslog.py rule 5)

    async def _stream(self, req: Request, status: int, headers: Headers, body, extra: bytes) -> None:
        """Send a head, then body chunks as they come, with the framing the client needs."""
        conn = req.conn
        chunked = False
        no_body = req.method == "HEAD" or status in NO_BODY_STATUS or 100 <= status < 200
        if "content-length" not in headers and not no_body:
            if req.version == "1.1":
                chunked = True
                extra += b"Transfer-Encoding: chunked\r\n"
            else:
                req.keep_alive = False
        head = status_line(status) + header_block(headers) + self.static_fields
        req.status = status
        conn.writelines((head, self._tail(req, extra)))
        try:
            if body is not None and not no_body:
                async for chunk in body:
                    if chunked:
                        conn.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                    else:
                        conn.write(chunk)
                    req.sent += len(chunk)
                    await conn.drain()
                if chunked:
                    conn.write(b"0\r\n\r\n")
        except (OriginError, ConnectionError) as exc:
            req.keep_alive = False  # the response cannot be completed: close to signal it
            req.cache += "-ABORTED" if not isinstance(exc, OriginError) else ""
            conn.close()
        finally:
            if body is not None and hasattr(body, "aclose"):
                await body.aclose()
        self._done(req)

    async def pass_request(self, req: Request, svc: ServiceRuntime) -> None:
        """Forward the request as it is; nothing is stored."""
        req.cache = "PASS"
        fields = self._origin_fields(req, svc, for_fill=False)
        body = None
        if "content-length" in req.headers or "transfer-encoding" in req.headers:
            if "content-length" not in req.headers:
                fields.set("transfer-encoding", "chunked")
            body = self._request_body(req)
        t0 = perf_counter()
        try:
            resp, _ = await fetch_from_origin(svc, req.method, req.target, fields, body, metrics=self.metrics)
        except OriginError as exc:
            self.origin_failed(req, exc)
            return
        req.origin_ms = (perf_counter() - t0) * 1000
        if req.method not in ("GET", "HEAD", "OPTIONS", "TRACE") and resp.status < 400:
            self._invalidate(req, svc, resp)
        await self._stream_pass(req, svc, resp, "PASS")

    async def _request_body(self, req: Request):
        if req.expect_continue:
            req.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        async for chunk in req.body:
            yield chunk

    def _invalidate(self, req: Request, svc: ServiceRuntime, resp) -> None:
        headers = Headers.from_raw(resp.headers)
        for target in invalidated_targets(req.method, resp.status, req.target, headers, req.host):
            uri = self._uri(svc, req.host, target)
            for tier in self.tiers:
                tier.remove_uri(uri)


def _plain(headers: Headers) -> bool:
    """No field that takes a stored response off the plain-hit path; remembered on
    the Headers, which repeated request heads share (protocol.py rule 6)."""
    notes = headers.notes
    if notes is None:
        notes = headers.notes = {}
    plain = notes.get("plain")
    if plain is None:
        fields = headers.first
        plain = notes["plain"] = not any(name in fields for name in PLAIN_HIT_BLOCKERS)
    return plain


def _replace_length(head: bytes, length: int) -> bytes:
    start = head.find(b"\r\nContent-Length: ")
    end = head.find(b"\r\n", start + 2)
    return head[:start] + b"\r\nContent-Length: %d" % length + head[end:]


async def _slice(chunks, start: int, stop: int):
    """Bytes [start, stop) of a chunk stream; closes the stream when done."""
    pos = 0
    try:
        async for chunk in chunks:
            end = pos + len(chunk)
            if end > start and pos < stop:
                yield chunk[max(0, start - pos):stop - pos]
            pos = end
            if pos >= stop:
                break
    finally:
        await chunks.aclose()
