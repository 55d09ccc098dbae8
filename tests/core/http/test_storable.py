"""Tests for owncdn.core.http.storable (RFC 9111 §3, §3.5, §5.2)."""

from __future__ import annotations

import pytest

from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.http.policy import CachePolicy
from owncdn.core.http.storable import storability

NOW = 1_700_000_000.0
AUTH = [("Authorization", "Bearer x")]


def d(offset: float) -> str:
    return format_http_date(NOW + offset)


@pytest.mark.parametrize("method, status, req, resp, expected", [
    # RFC 9111 §3: "the request method is understood by the cache" - the edge stores GET
    ("GET", 200, [], [], None),
    ("HEAD", 200, [], [], "method HEAD not cached"),
    ("POST", 200, [], [("Cache-Control", "max-age=60")], "method POST not cached"),
    # RFC 9111 §3: "the response status code is final"
    ("GET", 100, [], [], "status 100 not stored"),
    # the edge stores complete responses only; 304 updates, never stored
    ("GET", 206, [], [("Cache-Control", "max-age=60")], "status 206 not stored"),
    ("GET", 304, [], [("Cache-Control", "max-age=60")], "status 304 not stored"),
    # RFC 9110 §15.1: heuristically cacheable codes need no explicit freshness
    ("GET", 203, [], [], None),
    ("GET", 204, [], [], None),
    ("GET", 300, [], [], None),
    ("GET", 301, [], [], None),
    ("GET", 308, [], [], None),
    ("GET", 404, [], [], None),
    ("GET", 405, [], [], None),
    ("GET", 410, [], [], None),
    ("GET", 414, [], [], None),
    ("GET", 501, [], [], None),
    # RFC 9111 §3: other codes need "an Expires header field", "a max-age response
    # directive", "an s-maxage response directive" or "a public response directive"
    ("GET", 302, [], [], "status 302 not cacheable without explicit freshness"),
    ("GET", 500, [], [], "status 500 not cacheable without explicit freshness"),
    ("GET", 503, [], [("Retry-After", "5")], "status 503 not cacheable without explicit freshness"),
    ("GET", 302, [], [("Cache-Control", "max-age=60")], None),
    ("GET", 307, [], [("Cache-Control", "s-maxage=60")], None),
    ("GET", 500, [], [("Expires", d(60))], None),
    ("GET", 403, [], [("Cache-Control", "public")], None),
    # RFC 9213 §2.2: Expires is ignored when CDN-Cache-Control is present ...
    ("GET", 302, [], [("CDN-Cache-Control", "no-transform"), ("Expires", d(60))],
     "status 302 not cacheable without explicit freshness"),
    # ... and CDN-Cache-Control's max-age counts as explicit freshness
    ("GET", 302, [], [("CDN-Cache-Control", "max-age=60")], None),
    # RFC 9111 §5.2.2.5: no-store: "a cache MUST NOT store any part of either the
    # immediate request or the response"
    ("GET", 200, [], [("Cache-Control", "no-store")], "no-store"),
    ("GET", 200, [], [("Cache-Control", "max-age=60, NO-STORE")], "no-store"),
    # RFC 9111 §5.2.1.5: request no-store: "MUST NOT store any part of either this request
    # or any response to it"
    ("GET", 200, [("Cache-Control", "no-store")], [("Cache-Control", "max-age=60")],
     "request no-store"),
    # RFC 9111 §5.2.2.7: unqualified private: "a shared cache MUST NOT store the response"
    ("GET", 200, [], [("Cache-Control", "private, max-age=60")], "private"),
    # qualified private: "a shared cache MUST NOT store the specified field names, whereas
    # it MAY store the remainder of the response message"
    ("GET", 200, [], [("Cache-Control", 'private="x-user", max-age=60')], None),
    # RFC 9111 §5.2.2.4: no-cache "allows a cache to store a response"
    ("GET", 200, [], [("Cache-Control", "no-cache")], None),
    # RFC 9111 §5.2.2.6: no-transform is about transforming, not storing
    ("GET", 200, [], [("Cache-Control", "no-transform, max-age=60")], None),
    # RFC 9111 §5.2.3: "A cache MUST ignore unrecognized cache directives"
    ("GET", 200, [], [("Cache-Control", "immutable, x-ext=1, max-age=60")], None),
    # RFC 9111 §5.2.2.3: must-understand: a cache that understands the status code
    # "SHOULD ignore the no-store directive"; one that does not must not store
    ("GET", 200, [], [("Cache-Control", "must-understand, no-store, max-age=60")], None),
    ("GET", 299, [], [("Cache-Control", "must-understand, no-store, max-age=60")],
     "must-understand"),
    # RFC 9213 §2.2: CDN-Cache-Control directives replace Cache-Control's for this cache
    ("GET", 200, [], [("CDN-Cache-Control", "max-age=60"), ("Cache-Control", "no-store")], None),
    ("GET", 200, [], [("CDN-Cache-Control", "no-store"), ("Cache-Control", "max-age=60")],
     "no-store"),
    ("GET", 200, [], [("CDN-Cache-Control", "max-age=60"), ("Cache-Control", "private")], None),
    # RFC 9111 §3.5: "A shared cache MUST NOT use a cached response to a request with an
    # Authorization header field ... unless the response contains a Cache-Control field
    # with a response directive ... that allows it to be stored by a shared cache"
    ("GET", 200, AUTH, [("Cache-Control", "max-age=60")], "authorization"),
    ("GET", 200, AUTH, [], "authorization"),
    ("GET", 200, AUTH, [("Cache-Control", "public")], None),
    ("GET", 200, AUTH, [("Cache-Control", "s-maxage=60")], None),
    ("GET", 200, AUTH, [("Cache-Control", "must-revalidate, max-age=60")], None),
    ("GET", 200, AUTH, [("CDN-Cache-Control", "public, max-age=60")], None),
    # Set-Cookie: a shared cache would hand one user's cookie to everyone
    ("GET", 200, [], [("Cache-Control", "max-age=60"), ("Set-Cookie", "s=1")], "set-cookie"),
    ("GET", 200, [], [("Cache-Control", 'max-age=60, private="Set-Cookie"'), ("Set-Cookie", "s=1")],
     None),
    # RFC 9111 §4.1: "A stored response with a Vary header field value containing a member
    # "*" always fails to match" - not worth storing
    ("GET", 200, [], [("Cache-Control", "max-age=60"), ("Vary", "Accept, *")], "vary *"),
    ("GET", 200, [], [("Vary", "Accept-Encoding")], None),
])
def test_storability(method, status, req, resp, expected):
    assert storability(method, status, Headers(req), Headers(resp), CachePolicy()) == expected


@pytest.mark.parametrize("resp, policy, expected", [
    ([("Set-Cookie", "s=1")], CachePolicy(share_set_cookie=True), None),
    ([("Set-Cookie", "s=1")], CachePolicy(share_set_cookie=False), "set-cookie"),
    ([("Content-Length", "2000")], CachePolicy(max_object_size=1000), "too large"),
    ([("Content-Length", "1000")], CachePolicy(max_object_size=1000), None),
    ([], CachePolicy(max_object_size=1000), None),  # unknown length: the edge checks as it reads
    # RFC 9111 §3 / policy Rule 2: no TTL setting makes no-store or private storable
    ([("Cache-Control", "no-store")], CachePolicy(min_ttl=600, default_ttl=600), "no-store"),
    ([("Cache-Control", "private")], CachePolicy(min_ttl=600), "private"),
])
def test_storability_policy(resp, policy, expected):
    assert storability("GET", 200, Headers(), Headers(resp), policy) == expected
