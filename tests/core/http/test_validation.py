"""Tests for owncdn.core.http.validation: conditional requests to the origin and
freshening with 304 (RFC 9111 §3.2, §4.3)."""

from __future__ import annotations

import pytest

from owncdn.core.http.freshness import current_age
from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.http.policy import CachePolicy
from owncdn.core.http.reuse import Reuse, reuse_decision
from owncdn.core.http.stored import make_stored
from owncdn.core.http.validation import apply_304, conditional_headers, selected_by_304

NOW = 1_700_000_000.0
LM = format_http_date(NOW - 86400)
P = CachePolicy()


def d(offset: float) -> str:
    return format_http_date(NOW + offset)


def stored(*headers, req=()):
    return make_stored(200, Headers(headers), Headers(req), NOW - 1, NOW, P)


@pytest.mark.parametrize("headers, expected", [
    # RFC 9111 §4.3.1: "When the stored response has an ETag ... send If-None-Match"
    ([("ETag", '"v1"')], [("if-none-match", '"v1"')]),
    ([("ETag", 'W/"v1"')], [("if-none-match", 'W/"v1"')]),
    # RFC 9111 §4.3.1: the "Last-Modified ... can be used in an If-Modified-Since"
    ([("Last-Modified", LM)], [("if-modified-since", LM)]),
    ([("ETag", '"v1"'), ("Last-Modified", LM)],
     [("if-none-match", '"v1"'), ("if-modified-since", LM)]),
    # no validators: nothing to make the request conditional with (Date is not used)
    ([("Date", d(0))], []),
])
def test_conditional_headers(headers, expected):
    assert conditional_headers(stored(*headers)) == expected


@pytest.mark.parametrize("stored_headers, resp, expected", [
    # RFC 9111 §4.3.4: "If the new response contains a strong validator ... then that
    # strong validator identifies the selected representation for update"
    ([("ETag", '"v1"')], [("ETag", '"v1"')], True),
    ([("ETag", '"v1"')], [("ETag", '"v2"')], False),
    ([("ETag", 'W/"v1"')], [("ETag", '"v1"')], False),  # strong needs strong
    # "If the new response contains a weak validator and that validator corresponds to one
    # of the cache's stored responses"
    ([("ETag", '"v1"')], [("ETag", 'W/"v1"')], True),
    ([("Last-Modified", LM)], [("Last-Modified", LM)], True),
    ([("Last-Modified", LM)], [("Last-Modified", d(0))], False),
    ([], [("ETag", '"v1"')], False),
    # "If the new response does not include any form of validator ... and there is only
    # one stored response, ... that stored response is identified for update"
    ([("ETag", '"v1"')], [("Date", d(0))], True),
])
def test_selected_by_304(stored_headers, resp, expected):
    assert selected_by_304(stored(*stored_headers), Headers(resp)) is expected


def test_304_replaces_fields_and_refreshes_freshness():
    # RFC 9111 §3.2: "the cache MUST add each header field in the provided response to the
    # stored response, replacing field values that are already present"
    s = stored(("Date", d(0)), ("Cache-Control", "max-age=60"), ("ETag", '"v1"'),
               ("Content-Type", "text/plain"), ("Content-Length", "5"), ("X-Old", "kept"))
    later = NOW + 120
    assert reuse_decision(s, Headers(), later, P) is Reuse.REVALIDATE
    fresh = apply_304(s, Headers([("Date", format_http_date(later)), ("ETag", '"v1"'),
                                   ("Cache-Control", "max-age=300"), ("X-New", "1")]),
                      later - 1, later, Headers(), P)
    assert fresh.headers.get("cache-control") == "max-age=300"
    assert fresh.headers.get("x-old") == "kept" and fresh.headers.get("x-new") == "1"
    assert fresh.headers.get("content-type") == "text/plain"
    assert fresh.freshness_lifetime == 300
    assert fresh.cc == {"max-age": "300"}
    assert fresh.response_time == later and fresh.request_time == later - 1
    assert reuse_decision(fresh, Headers(), later + 10, P) is Reuse.FRESH
    assert s.headers.get("cache-control") == "max-age=60"  # the old entry is untouched


@pytest.mark.parametrize("update, field, expected", [
    # RFC 9111 §3.2: except "the Content-Length header field"
    ([("Content-Length", "0")], "content-length", "5"),
    # ... and except hop-by-hop fields (RFC 9111 §3.1)
    ([("Connection", "close"), ("Keep-Alive", "timeout=1")], "keep-alive", None),
    ([("Connection", "X-Hop"), ("X-Hop", "1")], "x-hop", None),
    # RFC 9213 §2.2: a 304's CDN-Cache-Control replaces the stored one and now applies
    ([("CDN-Cache-Control", "max-age=900")], "cdn-cache-control", "max-age=900"),
    # Age describes the message: the stored Age does not survive revalidation
    ([], "age", None),
    ([("Age", "7")], "age", "7"),
])
def test_304_update_exceptions(update, field, expected):
    s = stored(("Date", d(0)), ("Content-Length", "5"), ("Age", "30"), ("ETag", '"a"'))
    fresh = apply_304(s, Headers(update), NOW + 10, NOW + 10, Headers(), P)
    assert fresh.headers.get(field) == expected


def test_304_recomputes_age_from_new_times():
    # RFC 9111 §4.2.3 after §4.3.4: the freshened response's age starts from the 304
    s = stored(("Date", d(0)), ("Age", "500"), ("Cache-Control", "max-age=600"))
    fresh = apply_304(s, Headers([("Date", d(1000))]), NOW + 1000, NOW + 1000, Headers(), P)
    assert current_age(fresh, NOW + 1000) == 0
    assert current_age(fresh, NOW + 1100) == 100


def test_304_keeps_the_secondary_key():
    s = stored(("Vary", "Accept-Encoding"), ("Cache-Control", "max-age=1"),
               req=[("Accept-Encoding", "gzip")])
    fresh = apply_304(s, Headers([("Cache-Control", "max-age=60")]), NOW + 5, NOW + 5,
                      Headers([("Accept-Encoding", "gzip")]), P)
    assert fresh.vary == s.vary == (("accept-encoding", "gzip"),)


def test_304_with_cdn_cache_control_switches_directives():
    # RFC 9213 §2.2: once the targeted field is present, Cache-Control no longer counts
    s = stored(("Date", d(0)), ("Cache-Control", "max-age=10"))
    fresh = apply_304(s, Headers([("Date", d(20)), ("CDN-Cache-Control", "max-age=3600")]),
                      NOW + 20, NOW + 20, Headers(), P)
    assert fresh.freshness_lifetime == 3600
    assert fresh.headers.get("cache-control") == "max-age=10"


def test_private_fields_stay_out_after_304():
    # RFC 9111 §5.2.2.7: a shared cache "MUST NOT store the specified field names"
    s = stored(("Cache-Control", 'max-age=10, private="X-User"'), ("X-User", "alice"))
    assert "x-user" not in s.headers
    fresh = apply_304(s, Headers([("X-User", "bob")]), NOW + 20, NOW + 20, Headers(), P)
    assert "x-user" not in fresh.headers
