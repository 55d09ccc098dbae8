"""Serving a push service from its live release (``Service.mode == "push"``).

What to answer is decided by ``owncdn.core.content.site`` (paths, redirects, 404
page, precompressed siblings, fields); this module sends it, like a cache hit.

Rules:
1. Only GET and HEAD (405 with ``Allow`` otherwise). A push service whose first
   release has not reached this edge answers 503 saying so; nothing goes to an origin.
2. A file's response head (without Date) is built once per request target and
   Accept-Encoding value, and kept with the live release (``Live.memo``, bounded); a
   new release starts with an empty memo, and a new config (new service rules)
   builds heads anew. An answer without Vary (a file with no precompressed sibling)
   is the same for every Accept-Encoding: it is kept once for the target
   (``ANY_CODING``) and serves them all.
3. Conditional requests, ranges (one part, or multipart/byteranges), HEAD and 416
   follow ``core.http.conditional`` and ``core.http.ranges``, as for cached objects;
   ETag and Last-Modified come from the release (site rule 3). A request with Range
   gets the plain file, never a compressed sibling (its Vary still names
   Accept-Encoding).
4. Bodies below ``FILE_THRESHOLD`` are read into memory once; larger blobs are mapped
   (``DiskBody``: the blob's file, or its pack from the blob's offset, ``blobhold.py``
   rule 1) and go out with ``sendfile``. Open blobs are kept per release, at
   most ``OPEN_BLOBS`` (an old one closes when its last response is sent). A switch
   hands the bodies of blobs the new release also names to it (``releases.py`` rule
   5), so they are not read again.
5. Every response says ``X-Cache: PUSH`` and ends with an access-log line and the
   metrics, as other responses do.
6. A release that goes live (switched by ``releasesync``, which warms it
   ``WARM_DELAY`` after its acknowledgement, or loaded at start) is
   warmed in the background (``warm_release``) so its first visitors do not pay what
   later ones do not: the head of each file's usual URL (``/dir/`` for an index,
   ``/page`` for ``page.html`` with pretty URLs, else ``/path``) is built for answers
   without Vary (rule 2), and the small bodies are read (rule 4; files read in a
   thread, the memo filled on the loop, a few files per turn of the loop). At most
   ``WARM_FILES`` files per release. Measured before: the first request for a pushed
   file on an edge took 0.3-0.7 ms more than the next one (resolving the path,
   building the head, opening and reading the blob).
7. A text file without precompressed siblings goes out in the edge's own ``br`` or
   ``gzip`` form when Accept-Encoding prefers one (``site`` Rule 2, ``FileAnswer.compress``).
   The form is made once per blob and coding (``variants.py``); the first request for
   a file of at most ``WAIT_BYTES`` waits for it (about 1 ms for 100 KB of HTML). The
   forms of larger files (a single-page app's JavaScript bundle, a search index) are
   made when the release is warmed (rule 6), in the background at the lowest CPU
   priority (``variants`` Rule 5), as their first visitor would not wait for them: a
   request before that gets the file as it is. The form's head is built once
   per prepared answer (``Prepared.variant``), like the file's (rule 2).
8. A release with a ``_redirects`` or ``_headers`` file at its top answers with their
   rules as well as the service's (``core/content/redirectsfile.py``, ``headersfile.py``):
   the files are read and parsed once per live release and service rules (``Live.site``).
   Their bad lines (which `owncdn push` refuses, so only another client sends them) are
   left out, logged once.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import quote

from owncdn.core.content.compress import CODINGS as MADE
from owncdn.core.content.compress import compressible
from owncdn.core.content.negotiate import CODINGS
from owncdn.core.content.headersfile import FILE as HEADERS_FILE
from owncdn.core.content.headersfile import headers_file_rules
from owncdn.core.content.redirectsfile import FILE as REDIRECTS_FILE
from owncdn.core.content.redirectsfile import redirects_file_rules
from owncdn.core.content.site import (FileAnswer, RedirectAnswer, SiteRules, answer, compressed, siblings,
                                      with_file_rules)
from owncdn.core.http.conditional import evaluate_conditionals, not_modified_headers
from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.http.ranges import (
    content_range,
    if_range_allows,
    multipart_body,
    multipart_plan,
    parse_range,
    unsatisfied_range,
)
from owncdn.edge.bodies import FILE_THRESHOLD, DiskBody, part, whole
from owncdn.edge.responses import header_block, status_line

if TYPE_CHECKING:
    from owncdn.edge.app import Edge
    from owncdn.edge.protocol import Request
    from owncdn.edge.releases import Live
    from owncdn.edge.service import ServiceRuntime

__all__ = ["release_rules", "serve_push", "warm_release"]

log = logging.getLogger(__name__)

CACHE = "PUSH"
MEMO_ENTRIES = 4096
OPEN_BLOBS = 256
SMALL_BYTES = 32 << 20  # small bodies kept in memory per release
CONDITIONAL_FIELDS = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since")
ANY_CODING = object()  # rule 2: the memo key of an answer that is the same for every Accept-Encoding
WARM_FILES = 1024      # rule 6
WARM_BATCH = 16        # rule 6: heads built per turn of the event loop
WAIT_BYTES = 1 << 20   # rule 7: a first request waits for the compressed form of a file up to this size


class Prepared:
    """A file answer with its head bytes (Rule 2)."""

    __slots__ = ("ans", "head", "fields", "svc", "variant")

    def __init__(self, ans: FileAnswer, head: bytes, fields: Headers, svc: "ServiceRuntime") -> None:
        self.ans = ans
        self.head = head
        self.fields = fields
        self.svc = svc  # built with this service's rules; a new config builds anew
        self.variant: Prepared | None = None  # rule 7: the compressed form's, once made


def serve_push(edge: "Edge", req: "Request", svc: "ServiceRuntime"):
    """Answer ``req`` for push service ``svc``; returns None or what is left to await."""
    req.cache = CACHE
    if req.method not in ("GET", "HEAD"):
        edge.reply(req, 405, f"{req.method} is not allowed on a pushed site", b"Allow: GET, HEAD\r\n")
        return None
    store = edge.releases
    live = store.live.get(svc.name) if store is not None else None
    if live is None:
        edge.reply(req, 503, f"no release of service {svc.name!r} has reached this edge yet "
                             f"(push one with `owncdn push --service {svc.name}`)", b"Retry-After: 5\r\n")
        return None
    first = req.headers.first
    # A range request gets the plain file: ranges of a compressed sibling are of little use.
    accept = None if "range" in first else first.get("accept-encoding")
    memo = live.memo
    prepared = memo.get((req.target, ANY_CODING))
    if prepared is None or prepared.svc is not svc:
        prepared = memo.get((req.target, accept))
    if prepared is None or prepared.svc is not svc:
        found = answer(release_rules(store, live, svc), live.files, req.target, accept, live.released_at)
        if type(found) is not FileAnswer:
            if type(found) is RedirectAnswer:
                location = found.location.encode("latin-1", "replace")
                edge.reply(req, found.status, f"moved to {found.location}", b"Location: %s\r\n" % location)
            else:
                edge.reply(req, found.status, found.reason)
            return None
        prepared = _remember(edge, svc, live, req.target, accept, found)
    coding = prepared.ans.compress
    if coding is not None:  # rule 7
        data = edge.variants.get(prepared.ans.sha256, coding)
        if data is not None:
            return _send_form(edge, req, svc, store, live, prepared, data)
        made = edge.variants.make(prepared.ans.sha256, coding, partial(store.read_blob, prepared.ans.sha256),
                                  prepared.ans.size)
        if made is not None and prepared.ans.size <= WAIT_BYTES:
            return _when_made(edge, req, svc, store, live, prepared, made)
    return _send_plain(edge, req, store, live, prepared)


def release_rules(store, live: "Live", svc: "ServiceRuntime") -> SiteRules:
    """Rule 8: the service's rules with those of the release's ``_redirects`` and ``_headers`` files."""
    cached = live.site
    if cached is not None and cached[0] is svc.site:
        return cached[1]
    found = {}
    for name, parse in ((REDIRECTS_FILE, redirects_file_rules), (HEADERS_FILE, headers_file_rules)):
        entry = live.files.get(name)
        if entry is None:
            continue
        try:
            found[name], problems = parse(store.read_blob(entry.sha256).decode("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            problems = [f"{name}: cannot be read here ({exc})"]
        for problem in problems:
            log.warning("service %s, release %s: %s (left out)", svc.name, live.target.number, problem)
    rules = with_file_rules(svc.site, found.get(REDIRECTS_FILE, ()), found.get(HEADERS_FILE, ()))
    live.site = (svc.site, rules)
    return rules


def _send_plain(edge: "Edge", req: "Request", store, live: "Live", prepared: Prepared):
    try:
        body = _body(store, live, prepared.ans)
    except OSError as exc:
        edge.reply(req, 503, f"file {prepared.ans.file} of the release cannot be read here ({exc.strerror})")
        return None
    return _send_file(edge, req, prepared, body)


async def _when_made(edge: "Edge", req: "Request", svc: "ServiceRuntime", store, live: "Live", prepared: Prepared,
                     made: asyncio.Future) -> None:
    """Rule 7: the first request for a file, once its compressed form is made."""
    try:
        data = await asyncio.shield(made)
    except Exception:  # noqa: BLE001 - a compressor's failure: the file as it is
        data = None
    pending = _send_form(edge, req, svc, store, live, prepared, data)
    if pending is not None:
        await pending


def _send_form(edge: "Edge", req: "Request", svc: "ServiceRuntime", store, live: "Live", prepared: Prepared,
               data: bytes | None):
    """Rule 7: the compressed form ``data`` of ``prepared``'s file; the file as it is when
    there is none worth sending (None, ``NOT_WORTH``). Its head is built once per size."""
    if not data:
        return _send_plain(edge, req, store, live, prepared)
    variant = prepared.variant
    if variant is None or variant.ans.size != len(data):
        variant = prepared.variant = _prepare(edge, svc, compressed(prepared.ans, prepared.ans.compress, len(data)))
    return _send_file(edge, req, variant, data)


def _remember(edge: "Edge", svc: "ServiceRuntime", live: "Live", target: str, accept: str | None,
              found: FileAnswer) -> Prepared:
    """Rule 2: the prepared answer, kept for this target (and this Accept-Encoding if it varies)."""
    prepared = _prepare(edge, svc, found)
    if len(live.memo) >= MEMO_ENTRIES:
        live.memo.clear()
    varies = any(name == "vary" for name, _ in found.fields)
    live.memo[(target, accept) if varies else (target, ANY_CODING)] = prepared
    return prepared


def _is_sibling(path: str, files) -> bool:
    """A precompressed sibling (``app.js.gz`` next to ``app.js``): served under its file's URL."""
    return any(path.endswith(suffix) and path[:-len(suffix)] in files for suffix in CODINGS.values())


def _usual_target(rules, path: str) -> str:
    """Rule 6: the URL a link to manifest ``path`` usually takes."""
    directory, _, name = path.rpartition("/")
    if name == rules.index:
        url = f"{directory}/" if directory else ""
    elif rules.pretty_urls and name.endswith(".html"):
        url = path[:-5]
    else:
        url = path
    return "/" + quote(url, safe="/-._~!$&'()*+,;=:@")


async def warm_release(edge: "Edge", service: str) -> int:
    """Rule 6: build the usual heads and read the small bodies of ``service``'s live
    release; returns how many heads were built."""
    store = edge.releases
    live = store.live.get(service) if store is not None else None
    svc = edge.services.get(service)
    if live is None or svc is None or svc.site is None:
        return 0
    found = []
    files = live.files
    for i, path in enumerate(p for p in files if not _is_sibling(p, files)):
        if i == WARM_FILES:
            break
        if i % WARM_BATCH == WARM_BATCH - 1:
            await asyncio.sleep(0)   # let requests in between
            if store.live.get(service) is not live or edge.services.get(service) is not svc:
                return len(found)    # a newer release (warmed on its own) or a new config: stop
        target = _usual_target(svc.site, path)
        if (target, ANY_CODING) in live.memo:
            continue
        ans = answer(release_rules(store, live, svc), live.files, target, None, live.released_at)
        if type(ans) is FileAnswer and ans.status == 200 and not any(n == "vary" for n, _ in ans.fields):
            _remember(edge, svc, live, target, None, ans)
            found.append(ans)
    small = [a for a in found if a.size < FILE_THRESHOLD and a.sha256 not in live.bodies]
    bodies = await asyncio.to_thread(_read_small, store, small, SMALL_BYTES - live.small_bytes)
    for sha, body in bodies.items():
        if sha not in live.bodies and live.small_bytes + len(body) <= SMALL_BYTES:
            live.small_bytes += len(body)
            live.bodies[sha] = body
    if svc.site.compress:  # rule 7: the forms a first visitor would not wait for, made now
        for sha, size in await asyncio.to_thread(_large_texts, live.files):
            for coding in MADE:
                if edge.variants.get(sha, coding) is None and edge.variants.make(
                        sha, coding, partial(store.read_blob, sha), size, background=True) is None:
                    return len(found)  # as many as may wait (variants Rule 5): the rest on request
    return len(found)


def _large_texts(files) -> list[tuple[str, int]]:
    """Rule 7 (in a thread): the blobs of the text files above ``WAIT_BYTES`` that the
    edge compresses (no precompressed sibling), each once."""
    out: dict[str, int] = {}
    for path, entry in files.items():
        if (entry.size > WAIT_BYTES and compressible(path, entry.size) and not _is_sibling(path, files)
                and not siblings(files, path)):
            out[entry.sha256] = entry.size
    return list(out.items())


def _read_small(store, answers: list[FileAnswer], budget: int) -> dict[str, bytes]:
    """Rule 6 (in a thread): the bodies of small files, up to ``budget`` bytes."""
    out: dict[str, bytes] = {}
    for ans in answers:
        if ans.size > budget:
            continue
        try:
            out[ans.sha256] = store.read_blob(ans.sha256)
        except OSError:
            continue   # read at the first request, which then says why it cannot
        budget -= ans.size
    return out


def _prepare(edge: "Edge", svc: "ServiceRuntime", ans: FileAnswer) -> Prepared:
    fields = Headers(ans.fields)
    fields.set("content-length", str(ans.size))
    fields.set("via", f"1.1 {edge.via_name}")
    svc.response_rules.apply(fields)
    head = status_line(ans.status) + header_block(fields) + edge.static_fields
    return Prepared(ans, head, fields, svc)


def _body(store, live: "Live", ans: FileAnswer):
    """Rule 4."""
    bodies = live.bodies
    body = bodies.get(ans.sha256)
    if body is not None:
        return body
    if ans.size < FILE_THRESHOLD:
        body = store.read_blob(ans.sha256)
        if live.small_bytes + len(body) <= SMALL_BYTES:
            live.small_bytes += len(body)
            bodies[ans.sha256] = body
        return body
    fd, base = store.open_blob(ans.sha256)
    body = DiskBody(fd, base, ans.size)
    if live.open_blobs >= OPEN_BLOBS:
        for sha in [s for s, b in bodies.items() if type(b) is DiskBody][:OPEN_BLOBS // 4]:
            del bodies[sha]
            live.open_blobs -= 1
    bodies[ans.sha256] = body
    live.open_blobs += 1
    return body


_DATE = [-1, b""]  # the Date field of the current second


def _date_field(now: float) -> bytes:
    second = int(now)
    if _DATE[0] != second:
        _DATE[0], _DATE[1] = second, b"Date: %s\r\n" % format_http_date(second).encode()
    return _DATE[1]


def _send_file(edge: "Edge", req: "Request", prepared: Prepared, body):
    """Rule 3: 200 / 404 page, 304, 412, 206, 416."""
    ans = prepared.ans
    fields = prepared.fields
    headers = req.headers
    first = headers.first
    date = _date_field(edge.clock.time())
    if ans.status == 200:
        for name in CONDITIONAL_FIELDS:
            if name in first:
                code = evaluate_conditionals(req.method, headers, 200, fields)
                if code == 304:
                    head = status_line(304) + header_block(Headers(not_modified_headers(fields))) + edge.static_fields
                    return edge._send(req, 304, head, date, b"")
                if code == 412:
                    edge.reply(req, 412, "a precondition in the request failed")
                    return None
                break
        if "range" in first and req.method == "GET":
            return _ranges(edge, req, prepared, body, date)
    return edge._send(req, ans.status, prepared.head, date, whole(body))


def _ranges(edge: "Edge", req: "Request", prepared: Prepared, body, date: bytes):
    fields, size = prepared.fields, prepared.ans.size
    dated = fields.copy()
    dated.set("date", date[6:-2].decode())
    if not if_range_allows(req.headers, dated):
        return edge._send(req, 200, prepared.head, date, whole(body))
    ranges = parse_range(req.headers.first["range"], size)
    if ranges is None:
        return edge._send(req, 200, prepared.head, date, whole(body))
    if ranges == "unsatisfiable":
        edge.reply(req, 416, "range not satisfiable", f"Content-Range: {unsatisfied_range(size)}\r\n".encode())
        return None
    out = fields.copy()
    if len(ranges) == 1:
        r = ranges[0]
        out.set("content-length", str(r.length))
        out.set("content-range", content_range(r, size))
        head = status_line(206) + header_block(out) + edge.static_fields
        return edge._send(req, 206, head, date, part(body, r.start, r.end + 1))
    plan = multipart_plan(ranges, size, fields.get("content-type"), f"owncdn-{req.id}")
    out.set("content-type", plan.content_type)
    out.set("content-length", str(plan.content_length))
    head = status_line(206) + header_block(out) + edge.static_fields
    return edge._send(req, 206, head, date, multipart_body(plan, body))
