"""What a successful unsafe request invalidates (RFC 9111 §4.4).

Rules of this module:

Rule 1: a non-error response (2xx, 3xx) to an unsafe method invalidates the target URI.
        Safe methods are GET, HEAD, OPTIONS and TRACE (RFC 9110 §9.2.1).
Rule 2: it also invalidates the URIs in Location and Content-Location, but only when they
        are on the same host as the target URI, "to help prevent denial-of-service
        attacks" (RFC 9111 §4.4).
Rule 3: the result is a list of origin-form targets without duplicates; the edge drops
        every key for each of them on that host, whatever the Vary or cookie key.
"""

from __future__ import annotations

from .headers import Headers
from .targets import origin_form, resolve_same_host

__all__ = ["SAFE_METHODS", "invalidated_targets"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def invalidated_targets(method: str, status: int, request_target: str,
                        resp_headers: Headers, host: str) -> list[str]:
    """Origin-form targets to invalidate on ``host`` after this exchange."""
    if method in SAFE_METHODS or not 200 <= status < 400:
        return []
    targets = [origin_form(request_target)]
    for field in ("location", "content-location"):
        value = resp_headers.get(field)
        if value:
            resolved = resolve_same_host(value, request_target, host)
            if resolved is not None and resolved not in targets:
                targets.append(resolved)
    return targets
