"""Freshness lifetime and age of a stored response (RFC 9111 §4.2).

Rules of this module:

Rule 1: the freshness lifetime comes from the first source present, in this order
        (RFC 9111 §4.2.1): s-maxage, max-age, Expires minus Date; then the policy's
        default_ttl; then the heuristic. CDN-Cache-Control replaces Cache-Control and
        makes Expires ignored (RFC 9213 §2.2).
Rule 2: invalid explicit freshness (max-age=abc, Expires: 0) means "already stale"
        (RFC 9111 §4.2.1, §5.3); it does not fall through to a later source.
Rule 3: the heuristic is 10% of (Date - Last-Modified) (RFC 9111 §4.2.2), only for
        heuristically cacheable status codes (RFC 9110 §15.1) or responses marked public.
Rule 4: the policy clamps last: min_ttl raises (except for no-cache responses), then
        max_ttl caps.
Rule 5: age follows RFC 9111 §4.2.3 to the letter; its store-time part
        (corrected_initial_age) is computed once, so current_age costs one subtraction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .directives import cdn_targeted, delta_seconds
from .headers import Headers, parse_http_date
from .policy import CachePolicy

if TYPE_CHECKING:
    from .stored import StoredResponse

__all__ = [
    "HEURISTIC_FRACTION",
    "HEURISTICALLY_CACHEABLE",
    "corrected_initial_age",
    "current_age",
    "explicit_lifetime",
    "freshness_lifetime",
    "heuristic_lifetime",
]

# RFC 9110 §15.1: "Responses with status codes that are defined as heuristically
# cacheable (e.g., 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, and 501 in this
# specification) can be reused by a cache with heuristic expiration".
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
HEURISTIC_FRACTION = 0.1


def freshness_lifetime(status: int, resp_headers: Headers, cc: dict[str, str | None],
                       policy: CachePolicy, response_time: float) -> float:
    """Seconds the response stays fresh after its generation (Rules 1-4)."""
    lifetime = explicit_lifetime(resp_headers, cc, response_time)
    if lifetime is None:
        if policy.default_ttl is not None:
            lifetime = policy.default_ttl
        elif status in HEURISTICALLY_CACHEABLE or "public" in cc:
            lifetime = heuristic_lifetime(resp_headers, response_time)
        else:
            lifetime = 0.0
    return _clamp(lifetime, cc, policy)


def _clamp(lifetime: float, cc: dict[str, str | None], policy: CachePolicy) -> float:
    if "no-cache" not in cc:
        lifetime = max(lifetime, policy.min_ttl)
    if policy.max_ttl is not None:
        lifetime = min(lifetime, policy.max_ttl)
    return max(lifetime, 0.0)


def explicit_lifetime(resp_headers: Headers, cc: dict[str, str | None],
                      response_time: float) -> float | None:
    """The origin's explicit freshness, or None when it gave none (Rules 1-2)."""
    for directive in ("s-maxage", "max-age"):
        if directive in cc:
            seconds = delta_seconds(cc[directive])
            return 0.0 if seconds is None else float(seconds)
    if "expires" not in resp_headers or cdn_targeted(resp_headers):
        return None
    expires = parse_http_date(resp_headers.get("expires"))
    if expires is None:
        return 0.0
    return max(0.0, expires - _date_value(resp_headers, response_time))


def heuristic_lifetime(resp_headers: Headers, response_time: float) -> float:
    """10% of the time since Last-Modified, measured at Date (Rule 3); 0 without it."""
    last_modified = parse_http_date(resp_headers.get("last-modified"))
    if last_modified is None:
        return 0.0
    return max(0.0, (_date_value(resp_headers, response_time) - last_modified)
               * HEURISTIC_FRACTION)


def _date_value(resp_headers: Headers, response_time: float) -> float:
    date = parse_http_date(resp_headers.get("date"))
    return response_time if date is None else date


def corrected_initial_age(resp_headers: Headers, request_time: float,
                          response_time: float) -> float:
    """The store-time part of RFC 9111 §4.2.3.

    apparent_age = max(0, response_time - date_value)
    corrected_age_value = age_value + (response_time - request_time)
    corrected_initial_age = max(apparent_age, corrected_age_value)
    """
    date_value = _date_value(resp_headers, response_time)
    apparent_age = max(0.0, response_time - date_value)
    age_value = delta_seconds(resp_headers.get("age", "").strip()) or 0
    response_delay = max(0.0, response_time - request_time)
    return max(apparent_age, age_value + response_delay)


def current_age(stored: StoredResponse, now: float) -> float:
    """RFC 9111 §4.2.3: corrected_initial_age + resident_time (now - response_time)."""
    return stored.corrected_initial_age + max(0.0, now - stored.response_time)
