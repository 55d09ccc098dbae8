"""Revalidating a stored response with the origin (RFC 9111 §4.3).

Rules of this module:

Rule 1: a conditional request carries If-None-Match with the stored ETag and
        If-Modified-Since with the stored Last-Modified (RFC 9111 §4.3.1); never a
        date the origin did not send.
Rule 2: a 304 refreshes a stored response only when its validators select it
        (RFC 9111 §4.3.4): a strong ETag in the 304 must equal the stored one; a weak
        one or a Last-Modified must match; a 304 without validators selects it.
Rule 3: refreshing adds each field of the 304 to the stored headers, replacing fields
        of the same name, except hop-by-hop fields and Content-Length (RFC 9111 §3.2).
        Age and Date describe the message, not the representation: the stored ones are
        dropped even when the 304 lacks them (the age then starts from response_time).
        Directives, freshness and age are recomputed with the new times; the Vary
        secondary key stays the one computed when the response was stored.
"""

from __future__ import annotations

from .etags import parse_etag, strong_match, weak_match
from .headers import Headers, parse_http_date, strip_hop_by_hop
from .policy import CachePolicy
from .stored import StoredResponse, build_stored

__all__ = ["apply_304", "conditional_headers", "merge_headers", "selected_by_304"]

_NOT_UPDATED = frozenset({"content-length"})
_ALWAYS_REPLACED = frozenset({"age", "date"})


def conditional_headers(stored: StoredResponse) -> list[tuple[str, str]]:
    """Validator fields to add to the request sent to the origin (Rule 1)."""
    out = []
    if stored.etag is not None:
        out.append(("if-none-match", stored.etag))
    if stored.last_modified is not None:
        out.append(("if-modified-since", stored.last_modified))
    return out


def selected_by_304(stored: StoredResponse, resp_headers: Headers) -> bool:
    """Whether a 304's validators identify ``stored`` for update (Rule 2).

    False means the origin validated some other representation: fetch it unconditionally.
    """
    new_tag = parse_etag(resp_headers.get("etag"))
    if new_tag is not None:
        old_tag = parse_etag(stored.etag)
        if old_tag is None:
            return False
        return strong_match(new_tag, old_tag) if not new_tag[0] else weak_match(new_tag, old_tag)
    last_modified = resp_headers.get("last-modified")
    if last_modified is not None:
        new_date = parse_http_date(last_modified)
        return new_date is not None and new_date == parse_http_date(stored.last_modified)
    return True


def merge_headers(stored_headers: Headers, update: Headers) -> Headers:
    """Stored headers with the update's fields replacing same-named ones (Rule 3)."""
    update = strip_hop_by_hop(update)
    names = {n for n, _ in update if n not in _NOT_UPDATED} | _ALWAYS_REPLACED
    merged = Headers([(n, v) for n, v in stored_headers if n not in names])
    for n, v in update:
        if n in names:
            merged.add(n, v)
    return merged


def apply_304(stored: StoredResponse, resp_headers: Headers, request_time: float,
              response_time: float, req_headers: Headers, policy: CachePolicy) -> StoredResponse:
    """A new StoredResponse refreshed by a 304 (Rule 3).

    ``req_headers`` is the request that was revalidated; the stored secondary key is kept
    (the 304 answered a request that already matched it).
    """
    headers = merge_headers(stored.headers, resp_headers)
    return build_stored(stored.status, headers, stored.vary, request_time, response_time,
                        policy)
