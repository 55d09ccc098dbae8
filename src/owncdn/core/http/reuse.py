"""May a stored response answer this request, and how (RFC 9111 §4, §4.2.4; RFC 5861).

Rules of this module:

Rule 1: a response whose effective directives include no-cache is always revalidated
        first (RFC 9111 §5.2.2.4).
Rule 2: when the policy honours client directives, request no-cache, Pragma: no-cache
        (only without request Cache-Control), max-age and min-fresh can demand a
        revalidation, and max-stale can accept a stale response (RFC 9111 §5.2.1).
        max-age=0 always revalidates.
Rule 3: a response is fresh while freshness_lifetime > current_age (RFC 9111 §4.2).
Rule 4: a stale response is never served without contacting the origin when
        must-revalidate, proxy-revalidate, s-maxage or no-cache apply (RFC 9111 §4.2.4,
        §5.2.2.10). Otherwise it is served while revalidating in the background for
        staleness < the stale-while-revalidate window (response directive, else the
        policy's default) (RFC 5861 §3).
Rule 5: on origin failure a stale response may be served for staleness < the
        stale-if-error window: the response's directive, else the policy's default, or
        the request's own stale-if-error when that is larger (RFC 5861 §4). Rule 4's
        prohibitions apply here too; a still-fresh response may always be used, except
        under no-cache.
"""

from __future__ import annotations

import enum

from .directives import delta_seconds, forbids_stale, request_cache_control
from .freshness import current_age
from .headers import Headers
from .policy import CachePolicy
from .stored import StoredResponse

__all__ = ["Reuse", "only_if_cached", "reuse_decision", "stale_if_error_allowed", "staleness"]


class Reuse(enum.Enum):
    FRESH = "fresh"
    """Serve the stored response as it is."""
    STALE_WHILE_REVALIDATE = "stale-while-revalidate"
    """Serve the stored response now; revalidate it in the background."""
    REVALIDATE = "revalidate"
    """Contact the origin (conditionally when the response has validators) first."""


def staleness(stored: StoredResponse, now: float) -> float:
    """Seconds past the freshness lifetime (negative while fresh)."""
    return current_age(stored, now) - stored.freshness_lifetime


def reuse_decision(stored: StoredResponse, req_headers: Headers, now: float,
                   policy: CachePolicy) -> Reuse:
    """How ``stored`` may answer a request at ``now`` (Rules 1-4)."""
    fields = req_headers.first
    if now < stored.fresh_until and "cache-control" not in fields and "pragma" not in fields:
        return Reuse.FRESH  # the common case, decided without computing the age
    if "no-cache" in stored.cc:
        return Reuse.REVALIDATE
    age = current_age(stored, now)
    stale_for = age - stored.freshness_lifetime
    req_cc = _client_directives(req_headers, policy)
    if req_cc and _client_demands_validation(req_cc, age, stale_for):
        return Reuse.REVALIDATE
    if stale_for < 0:
        return Reuse.FRESH
    if forbids_stale(stored.cc):
        return Reuse.REVALIDATE
    if req_cc and _client_accepts_stale(req_cc, stale_for):
        return Reuse.STALE_WHILE_REVALIDATE
    if stale_for < _window(stored.cc, "stale-while-revalidate", policy.stale_while_revalidate):
        return Reuse.STALE_WHILE_REVALIDATE
    return Reuse.REVALIDATE


def only_if_cached(req_headers: Headers) -> bool:
    """Whether the client wants only a stored response (RFC 9111 §5.2.1.7): when the
    decision is REVALIDATE (or nothing is stored) the edge answers 504 instead of asking
    the origin."""
    return "cache-control" in req_headers and "only-if-cached" in request_cache_control(
        req_headers)


def _client_directives(req_headers: Headers, policy: CachePolicy) -> dict[str, str | None]:
    if not policy.honor_client_no_cache or (
            "cache-control" not in req_headers and "pragma" not in req_headers):
        return {}
    req_cc = request_cache_control(req_headers)
    if not req_cc and "no-cache" in (v.lower() for v in req_headers.get_list("pragma")):
        return {"no-cache": None}   # RFC 9111 §5.4: Pragma only counts without Cache-Control
    return req_cc


def _client_demands_validation(req_cc: dict[str, str | None], age: float,
                               stale_for: float) -> bool:
    if "no-cache" in req_cc:
        return True
    if "max-age" in req_cc:
        max_age = delta_seconds(req_cc["max-age"])
        if max_age is not None and (max_age == 0 or age > max_age):
            return True
    if "min-fresh" in req_cc:
        min_fresh = delta_seconds(req_cc["min-fresh"])
        if min_fresh is not None and -stale_for < min_fresh:
            return True
    return False


def _client_accepts_stale(req_cc: dict[str, str | None], stale_for: float) -> bool:
    if "max-stale" not in req_cc:
        return False
    arg = req_cc["max-stale"]
    if arg is None:
        return True                 # RFC 9111 §5.2.1.2: no value = any staleness
    max_stale = delta_seconds(arg)
    return max_stale is not None and stale_for <= max_stale


def _window(cc: dict[str, str | None], directive: str, default: float) -> float:
    if directive in cc:
        seconds = delta_seconds(cc[directive])
        return 0.0 if seconds is None else float(seconds)
    return default


def stale_if_error_allowed(stored: StoredResponse, req_headers: Headers, now: float,
                           policy: CachePolicy) -> bool:
    """Whether ``stored`` may answer because the origin failed (Rule 5)."""
    if "no-cache" in stored.cc:
        return False                # never used without successful validation
    stale_for = staleness(stored, now)
    if stale_for < 0:
        return True                 # still fresh: not a stale response at all
    if forbids_stale(stored.cc):
        return False
    window = _window(stored.cc, "stale-if-error", policy.stale_if_error)
    req_window = delta_seconds(request_cache_control(req_headers).get("stale-if-error"))
    if req_window is not None:
        window = max(window, float(req_window))
    return stale_for < window
