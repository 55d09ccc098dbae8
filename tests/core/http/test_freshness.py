"""Tests for owncdn.core.http.freshness: lifetime sources and precedence, heuristics,
policy clamps (RFC 9111 §4.2.1, §4.2.2) and the age calculation (RFC 9111 §4.2.3)."""

from __future__ import annotations

import pytest

from owncdn.core.http.directives import effective_cache_control
from owncdn.core.http.freshness import current_age, freshness_lifetime
from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.http.policy import CachePolicy
from owncdn.core.http.stored import make_stored

NOW = 1_700_000_000.0
DAY = 86400.0


def d(offset: float) -> str:
    """An HTTP date ``offset`` seconds from NOW."""
    return format_http_date(NOW + offset)


def lifetime(headers, status=200, policy=CachePolicy()):
    h = Headers(headers)
    return freshness_lifetime(status, h, effective_cache_control(h), policy, NOW)


@pytest.mark.parametrize("headers, status, expected", [
    # RFC 9111 §4.2.1: "If the cache is shared and the s-maxage response directive is
    # present, use its value"
    ([("Cache-Control", "s-maxage=30")], 200, 30),
    # RFC 9111 §4.2.1: s-maxage takes precedence over max-age for a shared cache
    ([("Cache-Control", "max-age=600, s-maxage=30")], 200, 30),
    # RFC 9111 §4.2.1: "or use the value of max-age if it is present"
    ([("Cache-Control", "max-age=600")], 200, 600),
    # RFC 9111 §5.3: "If a response includes a Cache-Control header field with the max-age
    # directive, a recipient MUST ignore the Expires header field"
    ([("Cache-Control", "max-age=600"), ("Date", d(0)), ("Expires", d(60))], 200, 600),
    # RFC 9111 §4.2.1: "Otherwise, if the Expires response header field is present, use its
    # value minus the value of the Date response header field"
    ([("Date", d(0)), ("Expires", d(3600))], 200, 3600),
    ([("Date", d(-100)), ("Expires", d(3600))], 200, 3700),
    # RFC 9111 §4.2.1: "(using the time the message was received if it is not present)"
    ([("Expires", d(120))], 200, 120),
    # RFC 9111 §5.3: "A cache recipient MUST interpret invalid date formats, especially the
    # value "0", as representing a time in the past (i.e., "already expired")"
    ([("Date", d(0)), ("Expires", "0")], 200, 0),
    ([("Date", d(0)), ("Expires", d(-60))], 200, 0),
    # RFC 9111 §4.2.1: "consider responses that have invalid freshness information (e.g., a
    # max-age directive with non-integer content) to be stale"
    ([("Cache-Control", "max-age=abc"), ("Expires", d(3600))], 200, 0),
    ([("Cache-Control", "max-age=-5")], 200, 0),
    ([("Cache-Control", "max-age=1.5")], 200, 0),
    # RFC 9111 §1.2.2: delta-seconds beyond what can be represented are 2^31
    ([("Cache-Control", "max-age=99999999999999999999")], 200, 2**31),
    # RFC 9111 §4.2.1: first occurrence of a duplicated directive is used
    ([("Cache-Control", "max-age=10"), ("Cache-Control", "max-age=20")], 200, 10),
    # RFC 9111 §4.2.2: "caches are encouraged to use a heuristic expiration value that is no
    # more than some fraction of the interval since that time. A typical setting of this
    # fraction might be 10%."
    ([("Date", d(0)), ("Last-Modified", d(-10 * DAY))], 200, DAY),
    ([("Last-Modified", d(-1000))], 404, 100),          # heuristically cacheable 404
    ([("Date", d(0)), ("Last-Modified", d(60))], 200, 0),  # LM in the future
    ([("Date", d(0))], 200, 0),                          # no Last-Modified: no heuristic
    # RFC 9110 §15.1: only heuristically cacheable status codes get heuristic freshness ...
    ([("Date", d(0)), ("Last-Modified", d(-1000))], 302, 0),
    ([("Date", d(0)), ("Last-Modified", d(-1000))], 500, 0),
    # RFC 9111 §4.2.2: ... or responses "marked as explicitly cacheable (e.g., with a public
    # response directive)"
    ([("Cache-Control", "public"), ("Date", d(0)), ("Last-Modified", d(-1000))], 302, 100),
    # RFC 9111 §4.2.2: "a cache MUST NOT use heuristics ... when an explicit expiration time
    # is present"
    ([("Cache-Control", "max-age=5"), ("Last-Modified", d(-10 * DAY))], 200, 5),
])
def test_freshness_sources_and_precedence(headers, status, expected):
    assert lifetime(headers, status) == expected


@pytest.mark.parametrize("headers, expected", [
    # RFC 9213 §2.2: a cache that is targeted "MUST ... use the targeted field instead of
    # Cache-Control and Expires"
    ([("CDN-Cache-Control", "max-age=600"), ("Cache-Control", "max-age=10")], 600),
    ([("CDN-Cache-Control", "max-age=600"), ("Cache-Control", "s-maxage=10")], 600),
    ([("CDN-Cache-Control", "s-maxage=30, max-age=600")], 30),
    # Expires is ignored too: with no freshness in CDN-Cache-Control, we fall to heuristics
    ([("CDN-Cache-Control", "public"), ("Date", d(0)), ("Expires", d(3600))], 0),
    ([("CDN-Cache-Control", "public"), ("Date", d(0)), ("Expires", d(3600)),
      ("Last-Modified", d(-1000))], 100),
    # RFC 9213 §2.2: an empty targeted field is ignored ("which would be ignored")
    ([("CDN-Cache-Control", ""), ("Cache-Control", "max-age=10")], 10),
    ([("CDN-Cache-Control", ""), ("Date", d(0)), ("Expires", d(60))], 60),
])
def test_cdn_cache_control_takes_precedence(headers, expected):
    assert lifetime(headers) == expected


@pytest.mark.parametrize("headers, status, policy, expected", [
    # default_ttl replaces the heuristic when the origin gives no explicit freshness
    ([("Last-Modified", d(-10 * DAY))], 200, CachePolicy(default_ttl=300), 300),
    ([], 200, CachePolicy(default_ttl=300), 300),
    # ... but never explicit freshness, even max-age=0 or an invalid Expires
    ([("Cache-Control", "max-age=0")], 200, CachePolicy(default_ttl=300), 0),
    ([("Expires", "0")], 200, CachePolicy(default_ttl=300), 0),
    # min_ttl is a floor ...
    ([("Cache-Control", "max-age=10")], 200, CachePolicy(min_ttl=60), 60),
    ([("Cache-Control", "max-age=100")], 200, CachePolicy(min_ttl=60), 100),
    # ... that never applies to no-cache responses (policy Rule 2)
    ([("Cache-Control", "no-cache, max-age=10")], 200, CachePolicy(min_ttl=60), 10),
    # max_ttl is a cap, applied after the floor
    ([("Cache-Control", "max-age=100000")], 200, CachePolicy(max_ttl=3600), 3600),
    ([("Date", d(0)), ("Last-Modified", d(-100 * DAY))], 200, CachePolicy(max_ttl=3600), 3600),
    ([("Cache-Control", "max-age=1")], 200, CachePolicy(min_ttl=600, max_ttl=300), 300),
    # CDN-Cache-Control is clamped the same way
    ([("CDN-Cache-Control", "max-age=5")], 200, CachePolicy(min_ttl=30), 30),
])
def test_policy_ttls(headers, status, policy, expected):
    assert lifetime(headers, status, policy) == expected


def stored_with(headers, request_time, response_time):
    return make_stored(200, Headers(headers), Headers(), request_time, response_time,
                       CachePolicy())


@pytest.mark.parametrize("headers, request_time, response_time, now, expected", [
    # RFC 9111 §4.2.3: current_age = corrected_initial_age + resident_time
    ([("Date", d(0))], NOW, NOW, NOW, 0),
    ([("Date", d(0))], NOW, NOW, NOW + 50, 50),
    # apparent_age = max(0, response_time - date_value)
    ([("Date", d(-30))], NOW, NOW, NOW, 30),
    # date in the future (clock skew): apparent_age clamps to 0
    ([("Date", d(300))], NOW, NOW, NOW + 5, 5),
    # corrected_age_value = age_value + response_delay
    ([("Date", d(0)), ("Age", "100")], NOW, NOW, NOW, 100),
    ([("Date", d(0)), ("Age", "100")], NOW - 2, NOW, NOW + 10, 112),
    # corrected_initial_age = max(apparent_age, corrected_age_value)
    ([("Date", d(-500)), ("Age", "100")], NOW - 2, NOW, NOW, 500),
    ([("Date", d(-5)), ("Age", "100")], NOW - 2, NOW, NOW, 102),
    # response_delay alone counts even with no Age ("response_delay" is always added)
    ([("Date", d(0))], NOW - 3, NOW, NOW, 3),
    # no Date: date_value is the time of receipt
    ([], NOW - 1, NOW, NOW + 9, 10),
    # an invalid Age is ignored
    ([("Date", d(0)), ("Age", "soon")], NOW, NOW, NOW, 0),
    ([("Date", d(0)), ("Age", "-5")], NOW, NOW, NOW, 0),
    # RFC 9111 §5.1: "If a cache receives a value larger than the largest positive integer
    # it can represent, or if any of its age calculations overflows, it MUST transmit an
    # Age header field with a value of 2147483648"
    ([("Date", d(0)), ("Age", "99999999999999")], NOW, NOW, NOW, 2**31),
    # now before response_time (a clock step): resident_time never negative
    ([("Date", d(0))], NOW, NOW, NOW - 10, 0),
])
def test_current_age(headers, request_time, response_time, now, expected):
    assert current_age(stored_with(headers, request_time, response_time), now) == expected
