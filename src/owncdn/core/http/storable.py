"""Whether a response may be stored by this shared cache (RFC 9111 §3).

Rules of this module:

Rule 1: only responses to GET are stored; the edge stores complete 200-style responses
        and never 206 or 304 (those update or are served from a stored response).
Rule 2: no-store (in the request's Cache-Control or the effective response directives)
        and unqualified private forbid storing (§5.2.1.5, §5.2.2.5, §5.2.2.7). With
        must-understand, no-store is ignored when the status code is understood
        (§5.2.2.3).
Rule 3: a response to a request with Authorization is stored only when public,
        s-maxage or must-revalidate allow it (§3.5).
Rule 4: Set-Cookie and Vary: * make a response not worth storing for a shared cache,
        unless the policy opts in (Set-Cookie) or private="set-cookie" drops the field.
Rule 5: a status code that is not heuristically cacheable needs explicit freshness
        (s-maxage, max-age, Expires - ignored under CDN-Cache-Control) or public (§3).
Rule 6: the first failing rule is reported as a short reason; None means storable.
"""

from __future__ import annotations

from .directives import (
    cdn_targeted,
    effective_cache_control,
    qualified_fields,
    request_cache_control,
)
from .freshness import HEURISTICALLY_CACHEABLE
from .headers import Headers
from .policy import CachePolicy

__all__ = ["UNDERSTOOD_STATUS", "storability"]

# Final status codes RFC 9110 defines and whose caching rules this cache implements.
UNDERSTOOD_STATUS = frozenset({
    200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308,
    400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416,
    417, 421, 422, 426, 500, 501, 502, 503, 504, 505,
})


def storability(method: str, status: int, req_headers: Headers, resp_headers: Headers,
                policy: CachePolicy) -> str | None:
    """None if the response may be stored, else why not (Rules 1-6)."""
    if method != "GET":
        return f"method {method} not cached"
    if status < 200 or status in (206, 304):
        return f"status {status} not stored"
    cc = effective_cache_control(resp_headers)
    return (_directive_reason(status, cc, req_headers)
            or _field_reason(cc, resp_headers, policy)
            or _freshness_reason(status, cc, resp_headers))


def _directive_reason(status: int, cc: dict[str, str | None],
                      req_headers: Headers) -> str | None:
    if "no-store" in request_cache_control(req_headers):
        return "request no-store"
    if "must-understand" in cc:
        if status not in UNDERSTOOD_STATUS:
            return "must-understand"
    elif "no-store" in cc:
        return "no-store"
    if "private" in cc and not qualified_fields(cc, "private"):
        return "private"
    if "authorization" in req_headers and not (
            "public" in cc or "s-maxage" in cc or "must-revalidate" in cc):
        return "authorization"
    return None


def _field_reason(cc: dict[str, str | None], resp_headers: Headers,
                  policy: CachePolicy) -> str | None:
    if ("set-cookie" in resp_headers and not policy.share_set_cookie
            and "set-cookie" not in qualified_fields(cc, "private")):
        return "set-cookie"
    if "*" in resp_headers.get_list("vary"):
        return "vary *"
    if policy.max_object_size is not None:
        length = resp_headers.get("content-length", "")
        if length.isdigit() and int(length) > policy.max_object_size:
            return "too large"
    return None


def _freshness_reason(status: int, cc: dict[str, str | None],
                      resp_headers: Headers) -> str | None:
    if status in HEURISTICALLY_CACHEABLE or "public" in cc:
        return None
    if "s-maxage" in cc or "max-age" in cc:
        return None
    if "expires" in resp_headers and not cdn_targeted(resp_headers):
        return None
    return f"status {status} not cacheable without explicit freshness"
