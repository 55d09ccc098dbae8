"""Which cache directives apply to this cache, and how their arguments read.

Rules of this module:

Rule 1: a CDN is the target of CDN-Cache-Control (RFC 9213 §3). When a response carries
        that field, its directives are the only ones this cache obeys: Cache-Control and
        Expires are ignored for our decisions (RFC 9213 §2.2), though both are kept in
        the response for caches further down. An empty CDN-Cache-Control is ignored.
Rule 2: a delta-seconds argument that is not a non-negative integer is invalid; callers
        treat invalid freshness as "stale" (RFC 9111 §4.2.1). Values above 2**31 are
        read as 2**31 (RFC 9111 §1.2.2).
Rule 3: the qualified forms no-cache="f" and private="f" are told apart from the
        unqualified ones by their argument (``None`` means unqualified).
"""

from __future__ import annotations

from .headers import Headers, parse_cache_control, split_list

__all__ = [
    "DELTA_MAX",
    "cdn_targeted",
    "delta_seconds",
    "effective_cache_control",
    "forbids_stale",
    "qualified_fields",
    "request_cache_control",
]

DELTA_MAX = 2**31


def cdn_targeted(resp_headers: Headers) -> bool:
    """True when CDN-Cache-Control is present with at least one directive."""
    return any(split_list(v) for v in resp_headers.get_all("cdn-cache-control"))


def effective_cache_control(resp_headers: Headers) -> dict[str, str | None]:
    """The response directives this cache obeys (RFC 9213 §2.2, Rule 1)."""
    if cdn_targeted(resp_headers):
        return parse_cache_control(resp_headers.get_all("cdn-cache-control"))
    return parse_cache_control(resp_headers.get_all("cache-control"))


def request_cache_control(req_headers: Headers) -> dict[str, str | None]:
    """The request's Cache-Control directives (RFC 9111 §5.2.1)."""
    values = req_headers.get_all("cache-control")
    return parse_cache_control(values) if values else {}


def delta_seconds(value: str | None) -> int | None:
    """A delta-seconds argument as an int, None when absent or invalid."""
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return min(int(value), DELTA_MAX)


def forbids_stale(cc: dict[str, str | None]) -> bool:
    """True when the directives forbid serving this response stale (RFC 9111 §4.2.4).

    must-revalidate, proxy-revalidate and no-cache forbid it; for a shared cache
    s-maxage "implies the semantics of proxy-revalidate" (RFC 9111 §5.2.2.10).
    """
    return ("must-revalidate" in cc or "proxy-revalidate" in cc
            or "no-cache" in cc or "s-maxage" in cc)


def qualified_fields(cc: dict[str, str | None], directive: str) -> list[str]:
    """Lowercased field names listed by a qualified directive, e.g. private="set-cookie"."""
    arg = cc.get(directive)
    return [f.lower() for f in split_list(arg)] if arg else []
