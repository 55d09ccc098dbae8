"""Answering a client's conditional request from a stored response (RFC 9110 §13).

Rules of this module:

Rule 1: preconditions are evaluated only when the response would otherwise be 2xx
        (RFC 9110 §13.2.1), in the order of RFC 9110 §13.2.2:
          1. If-Match: false -> 412 (strong comparison; "*" is true).
          2. else If-Unmodified-Since (valid date): Last-Modified later -> 412.
          3. If-None-Match: true (weak comparison; "*" matches) -> 304 for GET/HEAD,
             412 for other methods.
          4. else, GET/HEAD only, If-Modified-Since (valid, single date): not modified
             since -> 304. Without Last-Modified the stored Date is used (RFC 9111 §4.3.2).
        If-Range is handled with Range (ranges.if_range_allows).
Rule 2: an invalid date makes its header field ignored (RFC 9110 §13.1.3, §13.1.4).
Rule 3: a 304 carries only the fields that describe the cached response's validity
        (RFC 9110 §15.4.5); everything else is left to the stored copy.
"""

from __future__ import annotations

from .etags import parse_etag, parse_etag_list, strong_match, weak_match
from .headers import Headers, parse_http_date

__all__ = ["NOT_MODIFIED_FIELDS", "evaluate_conditionals", "not_modified_headers"]

_CONDITIONAL_FIELDS = frozenset({
    "if-match", "if-none-match", "if-modified-since", "if-unmodified-since",
})

NOT_MODIFIED_FIELDS = frozenset({
    "cache-control", "cdn-cache-control", "content-location", "date", "etag", "expires",
    "last-modified", "vary",
})


def evaluate_conditionals(method: str, req_headers: Headers, status: int,
                          resp_headers: Headers) -> int | None:
    """304, 412 or None (serve normally) for a request against a stored response."""
    if not 200 <= status < 300 or not any(n in _CONDITIONAL_FIELDS for n, _ in req_headers):
        return None
    safe = method in ("GET", "HEAD")
    if "if-match" in req_headers:
        if not _etag_condition(req_headers.get_all("if-match"), resp_headers, strong=True):
            return 412
    elif _modified_since(req_headers.get("if-unmodified-since"), resp_headers, fallback=False):
        return 412
    if "if-none-match" in req_headers:
        if _etag_condition(req_headers.get_all("if-none-match"), resp_headers, strong=False):
            return 304 if safe else 412
    elif safe and _not_modified_since(req_headers.get_all("if-modified-since"), resp_headers):
        return 304
    return None


def _etag_condition(values: list[str], resp_headers: Headers, *, strong: bool) -> bool:
    """Whether any listed entity tag (or "*") matches the response's ETag."""
    etag = resp_headers.get("etag")
    if (etag and etag[-1] == '"' and len(values) == 1 and values[0].strip() == etag
            and (not strong or etag[0] == '"')):
        return True                 # the common case: the client echoes our ETag
    if any(v.strip() == "*" for v in values):
        return True
    current = parse_etag(etag)
    if current is None:
        return False
    compare = strong_match if strong else weak_match
    return any(compare(tag, current) for tag in parse_etag_list(values))


def _last_modified(resp_headers: Headers, fallback: bool) -> float | None:
    value = parse_http_date(resp_headers.get("last-modified"))
    if value is None and fallback:
        value = parse_http_date(resp_headers.get("date"))
    return value


def _modified_since(value: str | None, resp_headers: Headers, *, fallback: bool) -> bool:
    """True when the representation changed after the date in ``value``."""
    since = parse_http_date(value)
    modified = _last_modified(resp_headers, fallback)
    return since is not None and modified is not None and modified > since


def _not_modified_since(values: list[str], resp_headers: Headers) -> bool:
    if len(values) != 1:
        return False                # absent, or "more than one member": ignored
    since = parse_http_date(values[0])
    modified = _last_modified(resp_headers, fallback=True)
    return since is not None and modified is not None and modified <= since


def not_modified_headers(resp_headers: Headers) -> list[tuple[str, str]]:
    """The stored response's fields a 304 sends (Rule 3)."""
    return [(n, v) for n, v in resp_headers if n in NOT_MODIFIED_FIELDS]
