"""Diagnostics on the edge's admin listener: cache state of a URL, and probes.

``owncdn explain`` and ``owncdn probe`` reach every edge through the control plane,
which learns each edge's admin address from its health answer (``edge/health.py``
Rule 4) and fans out.

Rules:
1. ``GET /cache?url=URL`` (read-only, like ``/stats``) answers JSON: the service the
   URL's host routes to on this edge, and every stored variant of the URL in each
   tier. A memory variant has its status, age, TTL left (seconds until stale,
   negative once stale), ``stale``, tags, size and the Vary values it was stored
   for; a disk-tier copy is listed as present (its details are read only when it
   is served). Nothing is loaded or changed by asking. For a push service it answers
   instead how the live release answers the URL (``release``): its number, the status,
   the file sent or the Location, the rule that decided (``from -> to (status)`` and
   whether ``cdn.yaml`` or the release's ``_redirects`` file holds it; none for a file
   found at its path or a pretty URL's other spelling), and how a browser would get
   the file (``br``, ``gzip``: the edge's form or a precompressed sibling).
2. ``POST /probe`` with ``{"url", "timeout"?, "host"?}`` fetches the URL from this edge, as a
   visitor near this edge would (the system's resolver, a new connection, no
   redirects followed), and answers ``{status, ttfb_ms, total_ms, bytes, error,
   x_cache, served_by}``. Time to first byte ends when the response head has
   arrived; total when the body has. The body is read and dropped, at most
   ``PROBE_MAX_BYTES``.
3. A probe makes this edge send requests, so it needs ``Authorization: Bearer`` with
   the token the control plane sends on the ``admin`` state channel
   (``owncdn.control.diagnostics``); without one (an edge that never met a control
   plane) probes are refused with 403. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import parse_qs, urlsplit

import orjson

from owncdn.core.content.site import FileAnswer, RedirectAnswer, answer
from owncdn.core.http.headers import Headers
from owncdn.edge.static import release_rules

__all__ = ["admin_handler", "answer_admin", "cache_state", "probe"]

PROBE_MAX_BYTES = 64 * 1024 * 1024
PROBE_TIMEOUT = 10.0


def cache_state(edge, url: str) -> dict:
    """Rule 1."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    svc = edge.route(host)
    out: dict = {"edge": edge.edge_id, "location": edge.location, "url": url, "service": None, "variants": []}
    if svc is None:
        out["why"] = f"no service for host {host!r} on this edge"
        return out
    out["service"] = svc.name
    if svc.site is not None:
        out["why"] = "a push service: served from its release, not the cache"
        out["release"] = _release_answer(edge, svc, target)
        return out
    uri = edge._uri(svc, host, target)
    now = edge.clock.time()
    for key in sorted(edge.store.keys_for_uri(uri)):
        for obj in edge.store.entries.get(key, ()):
            meta = obj.meta
            age = meta.corrected_initial_age + max(0.0, now - meta.response_time)
            ttl_left = meta.fresh_until - now
            out["variants"].append({
                "tier": "memory", "key": key, "status": meta.status, "age": round(age, 1),
                "ttl_left": None if ttl_left == float("-inf") else round(ttl_left, 1),
                "stale": now >= meta.fresh_until, "tags": list(obj.tags), "size": obj.size,
                "vary": None if meta.vary is None else [list(pair) for pair in meta.vary],
            })
    if edge.disk is not None:
        for key in sorted(edge.disk.keys_for_uri(uri)):
            out["variants"].append({"tier": "disk", "key": key})
    return out


BROWSER = "gzip, deflate, br, zstd"  # what a browser's Accept-Encoding says over HTTPS


def _release_answer(edge, svc, target: str) -> dict | None:
    """Rule 1, for a push service: how its live release answers ``target``."""
    store = edge.releases
    live = store.live.get(svc.name) if store is not None else None
    if live is None:
        return None
    rules = release_rules(store, live, svc)
    got = answer(rules, live.files, target, BROWSER, live.released_at)
    out: dict = {"number": live.target.number, "status": got.status}
    if type(got) is RedirectAnswer:
        out["location"] = got.location
    elif type(got) is FileAnswer:
        fields = dict(got.fields)
        out.update(file=got.file, size=got.size, coding=got.compress or fields.get("content-encoding"))
    else:
        out["reason"] = got.reason
    rule = getattr(got, "rule", None)
    if rule is not None:
        source = "cdn.yaml" if any(r is rule for r in svc.site.redirects) else "_redirects"
        out["rule"] = f"{rule.source} -> {rule.target} ({rule.status}, {source})"
    return out


async def probe(url: str, timeout: float = PROBE_TIMEOUT, host: str | None = None) -> dict:
    """Rule 2 (``host``: a Host to send instead of the URL's)."""
    import httpx

    from owncdn.tlstrust import verified

    result = {"url": url, "status": None, "ttfb_ms": None, "total_ms": None, "bytes": 0, "error": "",
              "x_cache": None, "served_by": None}
    limits = httpx.Limits(max_keepalive_connections=0)
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False, verify=verified()) as http:
            headers = {"User-Agent": "owncdn-probe", **({"Host": host} if host else {})}
            async with http.stream("GET", url, headers=headers) as resp:
                result["ttfb_ms"] = round((time.perf_counter() - started) * 1000, 2)
                result["status"] = resp.status_code
                result["x_cache"] = resp.headers.get("x-cache")
                result["served_by"] = resp.headers.get("x-served-by")
                async for chunk in resp.aiter_raw():
                    result["bytes"] += len(chunk)
                    if result["bytes"] >= PROBE_MAX_BYTES:
                        break
        result["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
    except httpx.TimeoutException:
        result["error"] = f"timeout after {timeout:g}s"
    except (httpx.HTTPError, OSError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return result


def _authorized(edge, headers: Headers) -> bool:
    """Rule 3."""
    expected = getattr(edge, "admin_token", None)
    given = headers.get("authorization") or ""
    scheme, _, token = given.partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), expected)


def answer_admin(admin, req):
    """Answer ``/cache`` and ``/probe`` on the admin listener; None (nothing sent) for
    other paths. ``admin`` is the listener's app (``edge/server.py`` ``AdminApp``)."""
    path, _, query = req.target.partition("?")
    edge = admin.edge
    if path == "/cache" and req.method == "GET":
        url = (parse_qs(query).get("url") or [""])[0]
        if not url.startswith(("http://", "https://")):
            return admin._send(req, 400, b'{"error": "expected ?url=http(s)://..."}\n', b"application/json") or True
        return admin._send(req, 200, orjson.dumps(cache_state(edge, url)), b"application/json") or True
    if path == "/probe" and req.method == "POST":
        return _answer_probe(admin, req)
    return None


async def _answer_probe(admin, req) -> None:
    body = bytearray()
    if req.body is not None:
        async for chunk in req.body:
            body += chunk
            if len(body) > 65536:
                return admin._send(req, 413, b'{"error": "body too large"}\n', b"application/json")
    if not _authorized(admin.edge, req.headers):
        return admin._send(req, 403, b'{"error": "a probe needs the control plane\'s admin token"}\n',
                           b"application/json")
    try:
        spec = orjson.loads(bytes(body) or b"{}")
        url = spec["url"]
        timeout = float(spec.get("timeout", PROBE_TIMEOUT))
        host = spec.get("host")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not 0 < timeout <= 60:
            raise ValueError
        if host is not None and (not isinstance(host, str) or not host or any(c in host for c in "\r\n ")):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return admin._send(req, 400, b'{"error": "expected {\\"url\\": \\"http(s)://...\\", \\"timeout\\"?: 0..60}"}\n',
                           b"application/json")
    result = await probe(url, timeout, host)
    result.update(edge=admin.edge.edge_id, location=admin.edge.location)
    admin._send(req, 200, orjson.dumps(result), b"application/json")


async def admin_handler(agent, http, data: dict) -> None:
    """The ``admin`` state channel (``edge/sync.py`` Rule 7): the probe token (Rule 3)."""
    if data.get("deleted"):
        agent.edge.admin_token = None
    else:
        agent.edge.admin_token = data.get("token")
