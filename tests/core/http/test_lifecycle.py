"""Timelines through the whole module, varnishtest-style: an origin response is stored at
NOW, then requests arrive on a fake clock and each row says what the edge may do.

Each step is (seconds after NOW, request headers, expected Reuse, stale-if-error allowed).
"""

from __future__ import annotations

import pytest

from owncdn.core.http import (
    CachePolicy,
    Headers,
    Reuse,
    apply_304,
    format_http_date,
    make_stored,
    reuse_decision,
    stale_if_error_allowed,
    storability,
)

NOW = 1_700_000_000.0
F, SWR, REV = Reuse.FRESH, Reuse.STALE_WHILE_REVALIDATE, Reuse.REVALIDATE

SCENARIOS = {
    # RFC 5861 §3 example: "Cache-Control: max-age=600, stale-while-revalidate=30"
    # "indicates that it is fresh for 600 seconds, and it may continue to be served stale
    # for up to an additional 30 seconds while an asynchronous validation is attempted"
    "rfc5861 swr example": (
        "max-age=600, stale-while-revalidate=30", CachePolicy(stale_if_error=0),
        [(0, [], F, True), (599, [], F, True), (600, [], SWR, False), (629, [], SWR, False),
         (630, [], REV, False)]),
    # RFC 5861 §4 example: "Cache-Control: max-age=600, stale-if-error=1200" - "fresh for
    # 600 seconds, and that it may be used if an error is encountered after becoming stale
    # for an additional 1200 seconds"
    "rfc5861 sie example": (
        "max-age=600, stale-if-error=1200", CachePolicy(),
        [(300, [], F, True), (700, [], REV, True), (1799, [], REV, True),
         (1800, [], REV, False)]),
    # must-revalidate turns both windows off once stale (RFC 9111 §5.2.2.2)
    "must-revalidate": (
        "max-age=60, must-revalidate, stale-while-revalidate=60, stale-if-error=600",
        CachePolicy(), [(30, [], F, True), (61, [], REV, False)]),
    # a reload (Cache-Control: no-cache) goes to the origin even when fresh
    "client reload": (
        "max-age=600", CachePolicy(),
        [(10, [("Cache-Control", "no-cache")], REV, True), (10, [], F, True)]),
    # the operator's defaults stretch a response that says nothing
    "policy defaults": (
        None, CachePolicy(default_ttl=60, stale_while_revalidate=10, stale_if_error=100),
        [(59, [], F, True), (65, [], SWR, True), (75, [], REV, True), (161, [], REV, False)]),
}


@pytest.mark.parametrize("cc, policy, steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_timeline(cc, policy, steps):
    headers = Headers([("Date", format_http_date(NOW)), ("ETag", '"v1"')])
    if cc:
        headers.add("Cache-Control", cc)
    assert storability("GET", 200, Headers(), headers, policy) is None
    stored = make_stored(200, headers, Headers(), NOW, NOW, policy)
    for after, req, reuse, sie in steps:
        at = NOW + after
        assert (after, reuse_decision(stored, Headers(req), at, policy)) == (after, reuse)
        assert (after, stale_if_error_allowed(stored, Headers(req), at, policy)) == (after, sie)


def test_revalidation_round_trip():
    # RFC 9111 §4.3.3-§4.3.4: a 304 freshens the stored response; it is fresh again
    policy = CachePolicy()
    stored = make_stored(200, Headers([("Date", format_http_date(NOW)),
                                       ("Cache-Control", "max-age=60"), ("ETag", '"v1"')]),
                         Headers(), NOW, NOW, policy)
    t = NOW + 100
    assert reuse_decision(stored, Headers(), t, policy) is REV
    refreshed = apply_304(stored, Headers([("Date", format_http_date(t)), ("ETag", '"v1"')]),
                          t, t + 0.5, Headers(), policy)
    assert reuse_decision(refreshed, Headers(), t + 30, policy) is F
    assert reuse_decision(refreshed, Headers(), t + 61, policy) is REV
