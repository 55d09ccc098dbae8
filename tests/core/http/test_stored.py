"""Tests for owncdn.core.http.stored: what make_stored computes once, at store time."""

from __future__ import annotations

from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.http.policy import CachePolicy
from owncdn.core.http.stored import make_stored

NOW = 1_700_000_000.0


def test_make_stored_precomputes_what_a_hit_needs():
    resp = Headers([("Date", format_http_date(NOW - 10)), ("ETag", '"v"'),
                    ("Last-Modified", format_http_date(NOW - 100)),
                    ("Cache-Control", "max-age=60"), ("CDN-Cache-Control", "max-age=600"),
                    ("Vary", "Accept-Encoding"), ("Connection", "close"),
                    ("Transfer-Encoding", "chunked")])
    req = Headers([("Accept-Encoding", "gzip")])
    s = make_stored(200, resp, req, NOW - 1, NOW, CachePolicy())
    # RFC 9213 §2.2: the targeted field supplies the directives; Cache-Control is kept
    assert s.cc == {"max-age": "600"}
    assert s.headers.get("cache-control") == "max-age=60"
    assert s.freshness_lifetime == 600
    # RFC 9111 §3.1: hop-by-hop fields are not stored
    assert "connection" not in s.headers and "transfer-encoding" not in s.headers
    assert s.vary == (("accept-encoding", "gzip"),)
    assert (s.etag, s.last_modified) == ('"v"', format_http_date(NOW - 100))
    assert s.has_validator
    # RFC 9111 §4.2.3: apparent_age 10 beats response_delay 1
    assert s.corrected_initial_age == 10


def test_qualified_private_fields_are_not_stored():
    # RFC 9111 §5.2.2.7: "a shared cache MUST NOT store the specified field names"
    resp = Headers([("Cache-Control", 'max-age=60, private="Set-Cookie, X-User"'),
                    ("Set-Cookie", "s=1"), ("X-User", "alice"), ("Content-Type", "a/b")])
    s = make_stored(200, resp, Headers(), NOW, NOW, CachePolicy())
    assert s.headers.items() == [("cache-control", 'max-age=60, private="Set-Cookie, X-User"'),
                                 ("content-type", "a/b")]
    assert "set-cookie" in resp  # the caller's headers are untouched


def test_no_validator():
    s = make_stored(200, Headers(), Headers(), NOW, NOW, CachePolicy())
    assert not s.has_validator and s.vary == () and s.freshness_lifetime == 0
