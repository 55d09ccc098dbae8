"""The demo origin: a few pages with the cache headers real sites send.

Rules:

1. ``/``, ``/style.css`` and ``/download/big.bin`` are cacheable (a minute, a day,
   an hour); ``/api/time`` is ``no-store``.
2. ``ECHO_PATH`` (``/__owncdn/echo``, any query) answers with the request as the
   origin received it, as JSON: ``method``, ``path`` and ``headers`` (a list of
   ``[name, value]`` pairs in the order received), ``no-store`` so every request
   reaches the origin. ``owncdn check`` reads it to see that ``Host`` and
   ``X-Forwarded-For`` arrive as configured. It shows only what the visitor and
   the edge sent; add the same path to your own origin to check a real deployment.
"""

from __future__ import annotations

import hashlib
import json
import time

from owncdn.testing.origin import FakeOrigin, Reply

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>owncdn demo</title><link rel="stylesheet" href="/style.css"></head>
<body><h1>Served through owncdn</h1>
<p>This page comes from the demo origin, cached by the edge for 60 seconds.
Ask twice with <code>curl -sI</code> and watch <code>X-Cache</code> turn from MISS to HIT.</p>
</body></html>
"""
STYLE = b"body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; }\n"


def _etag(body: bytes) -> str:
    return '"%s"' % hashlib.sha256(body).hexdigest()[:16]


def _time(_req) -> Reply:
    body = ('{"origin_time": %.3f}\n' % time.time()).encode()
    return Reply(200, body, {"Content-Type": "application/json", "Cache-Control": "no-store"})


ECHO_PATH = "/__owncdn/echo"


def echo(req) -> Reply:
    """Rule 2: the request as received."""
    body = json.dumps({"method": req.method, "path": req.path,
                       "headers": [[k, v] for k, v in req.raw_headers]}, indent=1).encode() + b"\n"
    return Reply(200, body, {"Content-Type": "application/json", "Cache-Control": "no-store"})


def demo_origin() -> FakeOrigin:
    origin = FakeOrigin()
    origin.route("/", body=PAGE, headers={
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "public, max-age=60",
        "ETag": _etag(PAGE)})
    origin.route("/style.css", body=STYLE, headers={
        "Content-Type": "text/css", "Cache-Control": "public, max-age=86400, stale-while-revalidate=60",
        "ETag": _etag(STYLE)})
    big = bytes(range(256)) * (4 * 4096)  # 4 MiB
    origin.route("/download/big.bin", body=big, headers={
        "Content-Type": "application/octet-stream", "Cache-Control": "public, max-age=3600",
        "ETag": _etag(big)})
    origin.route("/api/time", handler=_time)
    origin.route(ECHO_PATH, handler=echo)
    return origin
