"""ACME HTTP-01 on the edge: ``GET /.well-known/acme-challenge/<token>`` for any Host.

The control plane is the only ACME client; it publishes each token and its key
authorization on the ``acme_http`` state channel, and every edge answers the CA.

Rules:
1. ``acme_http_handler`` keeps the tokens the channel sends (and drops deleted ones).
2. A GET or HEAD for a known token, on plain HTTP, for any Host (the CA asks for the
   name being validated, which may not be a configured hostname yet), is answered 200
   with the key authorization as ``text/plain`` (RFC 8555 section 8.3), never cached.
3. An unknown token falls through to the normal request flow, so a service's origin
   can still answer its own challenges.
"""

from __future__ import annotations

from owncdn.core.http.headers import format_http_date
from owncdn.edge.responses import status_line

__all__ = ["ACME_PATH", "acme_http_handler", "answer_challenge"]

ACME_PATH = "/.well-known/acme-challenge/"


def tokens(edge) -> dict[str, str]:
    found = getattr(edge, "acme_tokens", None)
    if found is None:
        found = edge.acme_tokens = {}
    return found


async def acme_http_handler(agent, http, data: dict) -> None:
    """Rule 1 (the ``acme_http`` channel of ``edge/sync.py``)."""
    known = tokens(agent.edge)
    if data.get("deleted"):
        known.pop(data["key"], None)
    else:
        known[data["key"]] = data["key_authorization"]


def answer_challenge(edge, req) -> bool:
    """Rule 2; False (nothing sent) for anything else (Rule 3)."""
    if req.method not in ("GET", "HEAD") or getattr(req.conn, "scheme", "http") != "http":
        return False
    value = tokens(edge).get(req.target[len(ACME_PATH):].partition("?")[0])
    if value is None:
        return False
    body = value.encode()
    req.cache = "PASS"
    head = status_line(200) + (
        "Content-Type: text/plain\r\nContent-Length: %d\r\nCache-Control: no-store\r\nDate: %s\r\n" % (
            len(body), format_http_date(edge.clock.time()))).encode() + edge.static_fields
    edge._send(req, 200, head, b"", body)
    return True
