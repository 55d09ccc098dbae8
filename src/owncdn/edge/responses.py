"""Response heads as bytes: built once per stored object, a few fields per request.

Rules:
1. A stored object's head (status line, stored fields, X-Served-By, Via) is built at
   store time; per request only Age, X-Cache, Server-Timing, X-Request-Id and
   Connection are appended.
2. Field names go out in their usual capitalisation; values as received.
3. Responses the edge makes up (4xx/5xx) are short text naming the edge, why, and
   the request id that is also in the access log.
4. Fields that depend on the connection rather than the object (Strict-Transport-
   Security over HTTPS, `Request.added`) go out with Connection, per request.
"""

from __future__ import annotations

from http import HTTPStatus

from owncdn.core.http.headers import Headers

# Never copied from a stored or origin response into ours: hop-by-hop fields and
# the ones the edge sets per request.
SKIP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "age", "x-cache", "x-served-by", "server-timing", "x-request-id",
    "proxy-authenticate", "proxy-authorization",
})

_SPECIAL = {
    "etag": "ETag", "www-authenticate": "WWW-Authenticate", "x-xss-protection": "X-XSS-Protection",
    "content-md5": "Content-MD5", "dnt": "DNT", "cdn-cache-control": "CDN-Cache-Control",
    "te": "TE",
}
_names: dict[str, bytes] = {}


def field_name(name: str) -> bytes:
    """`content-type` -> b`Content-Type` (memoised)."""
    out = _names.get(name)
    if out is None:
        text = _SPECIAL.get(name) or "-".join(p[:1].upper() + p[1:] for p in name.split("-"))
        out = _names[name] = text.encode("latin-1")
    return out


def status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("latin-1"))


def header_block(headers: Headers, skip: frozenset[str] = SKIP) -> bytes:
    return b"".join(
        field_name(n) + b": " + v.encode("latin-1") + b"\r\n" for n, v in headers.items() if n not in skip
    )


def connection_field(req) -> bytes:
    """Connection, and the fields the edge adds to this request's response (Rule 4)."""
    if not req.keep_alive:
        return b"Connection: close\r\n" + req.added
    if req.version == "1.0":
        return b"Connection: keep-alive\r\n" + req.added
    return req.added


def made_up_body(status: int, why: str, edge: str, request_id: str) -> bytes:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    return (
        f"{status} {phrase}\n{why}\nedge: {edge}\nrequest id: {request_id}\n"
    ).encode("utf-8", "replace")
