"""Tests for owncdn.core.http.reuse: fresh / stale-while-revalidate / revalidate, and
stale-if-error (RFC 9111 §4, §4.2.4, §5.2; RFC 5861)."""

from __future__ import annotations

import pytest

from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.http.policy import CachePolicy
from owncdn.core.http.reuse import Reuse, only_if_cached, reuse_decision, stale_if_error_allowed
from owncdn.core.http.stored import make_stored

NOW = 1_700_000_000.0
F, SWR, REV = Reuse.FRESH, Reuse.STALE_WHILE_REVALIDATE, Reuse.REVALIDATE
P = CachePolicy()


def stored(cc: str | None = None, *extra: tuple[str, str], policy: CachePolicy = P):
    """A response received at NOW with Date NOW, so its age is (now - NOW)."""
    headers = [("Date", format_http_date(NOW)), *extra]
    if cc is not None:
        headers.append(("Cache-Control", cc))
    return make_stored(200, Headers(headers), Headers(), NOW, NOW, policy)


@pytest.mark.parametrize("cc, req, after, expected", [
    # RFC 9111 §4.2: "A fresh response is one whose age has not yet exceeded its freshness
    # lifetime"; "fresh if ... freshness_lifetime > current_age"
    ("max-age=100", [], 0, F),
    ("max-age=100", [], 99, F),
    ("max-age=100", [], 100, REV),
    ("max-age=100", [], 500, REV),
    ("max-age=0", [], 0, REV),
    # RFC 9111 §5.2.2.4: no-cache: "the response MUST NOT be used to satisfy any other
    # request without forwarding it for validation and receiving a successful response"
    ("no-cache, max-age=100", [], 0, REV),
    ('no-cache="set-cookie", max-age=100', [], 0, REV),  # qualified treated as unqualified
    # RFC 9111 §5.2.1.4: request no-cache: "the client prefers that a stored response not be
    # used to satisfy the request without successful validation"
    ("max-age=100", [("Cache-Control", "no-cache")], 0, REV),
    # RFC 9111 §5.4: Pragma: no-cache "when the Cache-Control header field is not present"
    ("max-age=100", [("Pragma", "no-cache")], 0, REV),
    ("max-age=100", [("Pragma", "no-cache"), ("Cache-Control", "max-stale")], 0, F),
    # RFC 9111 §5.2.1.1: request max-age: "the client prefers a response whose age is less
    # than or equal to the specified number of seconds"
    ("max-age=100", [("Cache-Control", "max-age=0")], 0, REV),
    ("max-age=100", [("Cache-Control", "max-age=30")], 20, F),
    ("max-age=100", [("Cache-Control", "max-age=30")], 30, F),
    ("max-age=100", [("Cache-Control", "max-age=30")], 31, REV),
    ("max-age=100", [("Cache-Control", "max-age=bogus")], 31, F),
    # RFC 9111 §5.2.1.3: min-fresh: "the client prefers a response whose freshness lifetime
    # is no less than its current age plus the specified time"
    ("max-age=100", [("Cache-Control", "min-fresh=30")], 70, F),
    ("max-age=100", [("Cache-Control", "min-fresh=30")], 71, REV),
    # RFC 9111 §5.2.1.2: max-stale: "the client will accept a response that has exceeded
    # its freshness lifetime by no more than the specified number of seconds"; without a
    # value, "the client will accept a stale response of any age"
    ("max-age=100", [("Cache-Control", "max-stale=50")], 150, SWR),
    ("max-age=100", [("Cache-Control", "max-stale=50")], 151, REV),
    ("max-age=100", [("Cache-Control", "max-stale")], 10_000, SWR),
    # ... but never against the origin's prohibitions (RFC 9111 §4.2.4)
    ("max-age=100, must-revalidate", [("Cache-Control", "max-stale")], 150, REV),
    # RFC 5861 §3: stale-while-revalidate: "caches MAY serve the response in which it
    # appears after it becomes stale, up to the indicated number of seconds"
    ("max-age=100, stale-while-revalidate=60", [], 100, SWR),
    ("max-age=100, stale-while-revalidate=60", [], 159, SWR),
    ("max-age=100, stale-while-revalidate=60", [], 160, REV),
    ("max-age=100, stale-while-revalidate=invalid", [], 100, REV),
    # RFC 9111 §4.2.4: "A cache MUST NOT generate a stale response if it is prohibited by an
    # explicit in-protocol directive (e.g., by a no-cache response directive, a
    # must-revalidate response directive, or an applicable s-maxage or proxy-revalidate
    # response directive)"
    ("max-age=100, stale-while-revalidate=60, must-revalidate", [], 120, REV),
    ("max-age=100, stale-while-revalidate=60, proxy-revalidate", [], 120, REV),
    # RFC 9111 §5.2.2.10: s-maxage "also implies the semantics of proxy-revalidate"
    ("s-maxage=100, stale-while-revalidate=60", [], 120, REV),
    ("s-maxage=100, stale-while-revalidate=60", [], 50, F),
    # must-revalidate changes nothing while fresh
    ("max-age=100, must-revalidate", [], 50, F),
    # a client that revalidates overrides SWR: it waits for the origin
    ("max-age=100, stale-while-revalidate=60", [("Cache-Control", "no-cache")], 120, REV),
])
def test_reuse_decision(cc, req, after, expected):
    assert reuse_decision(stored(cc), Headers(req), NOW + after, P) is expected


@pytest.mark.parametrize("cc, req, policy, after, expected", [
    # the policy's SWR window applies when the response gives none
    ("max-age=100", [], CachePolicy(stale_while_revalidate=30), 120, SWR),
    ("max-age=100", [], CachePolicy(stale_while_revalidate=30), 130, REV),
    # the response's own window wins over the policy's, even when smaller
    ("max-age=100, stale-while-revalidate=5", [], CachePolicy(stale_while_revalidate=30), 110, REV),
    # a window of 0 means none, even at the exact moment of expiry
    ("max-age=100", [], CachePolicy(stale_while_revalidate=0), 100, REV),
    # honor_client_no_cache=False: client directives are ignored for reuse
    ("max-age=100", [("Cache-Control", "no-cache")], CachePolicy(honor_client_no_cache=False), 0, F),
    ("max-age=100", [("Pragma", "no-cache")], CachePolicy(honor_client_no_cache=False), 0, F),
    ("max-age=100", [("Cache-Control", "max-age=0")], CachePolicy(honor_client_no_cache=False), 5, F),
    ("max-age=100", [("Cache-Control", "max-stale")], CachePolicy(honor_client_no_cache=False), 200, REV),
    # the response's no-cache holds whatever the policy
    ("no-cache, max-age=100", [], CachePolicy(honor_client_no_cache=False), 0, REV),
])
def test_reuse_decision_policy(cc, req, policy, after, expected):
    assert reuse_decision(stored(cc, policy=policy), Headers(req), NOW + after, policy) is expected


@pytest.mark.parametrize("headers, after, expected", [
    # RFC 9213 §2.2: CDN-Cache-Control replaces Cache-Control for this cache
    ([("CDN-Cache-Control", "max-age=600"), ("Cache-Control", "no-cache")], 100, F),
    ([("CDN-Cache-Control", "max-age=60"), ("Cache-Control", "max-age=600")], 100, REV),
    ([("CDN-Cache-Control", "max-age=60, stale-while-revalidate=60"),
      ("Cache-Control", "max-age=60, must-revalidate")], 100, SWR),
    ([("CDN-Cache-Control", "max-age=60, must-revalidate"),
      ("Cache-Control", "max-age=60, stale-while-revalidate=60")], 100, REV),
])
def test_reuse_with_cdn_cache_control(headers, after, expected):
    assert reuse_decision(stored(None, *headers), Headers(), NOW + after, P) is expected


@pytest.mark.parametrize("cc, req, policy, after, expected", [
    # RFC 5861 §4: stale-if-error: "when an error is encountered, a cached stale response MAY
    # be used to satisfy the request ... up to the indicated number of seconds"
    ("max-age=100, stale-if-error=60", [], P, 150, True),
    ("max-age=100, stale-if-error=60", [], P, 160, False),
    # a fresh response can always be served
    ("max-age=100, stale-if-error=0", [], P, 50, True),
    # the policy's default window (1 day by default) when the response gives none
    ("max-age=100", [], P, 100 + 86399, True),
    ("max-age=100", [], P, 100 + 86400, False),
    ("max-age=100", [], CachePolicy(stale_if_error=0), 101, False),
    # RFC 5861 §4: in a request, "indicates that the client is willing to accept a stale
    # response if the origin errors" within the given seconds
    ("max-age=100, stale-if-error=10", [("Cache-Control", "stale-if-error=300")], P, 200, True),
    ("max-age=100", [("Cache-Control", "stale-if-error=300")], CachePolicy(stale_if_error=0), 450, False),
    # RFC 9111 §4.2.4: no stale response against must-revalidate, proxy-revalidate,
    # s-maxage or no-cache - not even on error
    ("max-age=100, must-revalidate, stale-if-error=600", [], P, 150, False),
    ("max-age=100, proxy-revalidate", [], P, 150, False),
    ("s-maxage=100, stale-if-error=600", [], P, 150, False),
    ("no-cache, stale-if-error=600", [], P, 0, False),
    # RFC 9111 §5.2.2.2: must-revalidate: "the cache MUST generate an error message
    # rather than reuse the stale response" when it cannot reach the origin
    ("max-age=100, must-revalidate", [("Cache-Control", "stale-if-error=600")], P, 150, False),
])
def test_stale_if_error_allowed(cc, req, policy, after, expected):
    s = stored(cc, policy=policy)
    assert stale_if_error_allowed(s, Headers(req), NOW + after, policy) is expected


@pytest.mark.parametrize("req, expected", [
    # RFC 9111 §5.2.1.7: only-if-cached: "the client only wishes to obtain a stored
    # response"; a cache that cannot supply one "SHOULD respond with a 504"
    ([("Cache-Control", "only-if-cached")], True),
    ([("Cache-Control", "max-age=0, ONLY-IF-CACHED")], True),
    ([("Cache-Control", "no-cache")], False),
    ([], False),
])
def test_only_if_cached(req, expected):
    assert only_if_cached(Headers(req)) is expected


@pytest.mark.parametrize("cc, after, expected", [
    # a response that is still fresh is not stale: must-revalidate allows using it
    ("max-age=100, must-revalidate", 50, True),
    ("s-maxage=100", 50, True),
    # RFC 9111 §5.2.2.4: a no-cache response is never used without successful validation
    ("no-cache, max-age=100", 50, False),
])
def test_stale_if_error_while_fresh(cc, after, expected):
    assert stale_if_error_allowed(stored(cc), Headers(), NOW + after, P) is expected


from hypothesis import given, settings, strategies as st  # noqa: E402

from owncdn.core.http.freshness import current_age  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(max_age=st.integers(0, 10_000), age_header=st.integers(0, 20_000),
       delay=st.floats(0, 5), after=st.floats(-10, 30_000))
def test_fresh_until_agrees_with_the_age_calculation(max_age, age_header, delay, after):
    # RFC 9111 §4.2: fresh while current_age < freshness_lifetime. The fast path
    # (now < fresh_until) must decide exactly as the age calculation would.
    s = make_stored(200, Headers([("Date", format_http_date(NOW)), ("Age", str(age_header)),
                                  ("Cache-Control", f"max-age={max_age}")]),
                    Headers(), NOW, NOW + delay, P)
    now = NOW + delay + after
    fresh_by_age = current_age(s, now) < s.freshness_lifetime
    assert (reuse_decision(s, Headers(), now, P) is F) == fresh_by_age
