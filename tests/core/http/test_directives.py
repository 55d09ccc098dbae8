"""Tests for owncdn.core.http.directives: which directives apply (RFC 9213) and how their
arguments read (RFC 9111 §1.2.2, §5.2)."""

from __future__ import annotations

import pytest

from owncdn.core.http.directives import (
    cdn_targeted,
    delta_seconds,
    effective_cache_control,
    forbids_stale,
    qualified_fields,
)
from owncdn.core.http.headers import Headers


@pytest.mark.parametrize("headers, expected", [
    ([("Cache-Control", "max-age=60")], {"max-age": "60"}),
    # RFC 9213 §2.2: the targeted field's directives replace Cache-Control's
    ([("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")], {"max-age": "60"}),
    ([("CDN-Cache-Control", "max-age=60"), ("CDN-Cache-Control", "stale-if-error=30")],
     {"max-age": "60", "stale-if-error": "30"}),
    # RFC 9213 §3.1: "CDN-Cache-Control: none" - an unregistered directive still counts,
    # so Cache-Control: no-store is ignored by CDNs
    ([("Cache-Control", "no-store"), ("CDN-Cache-Control", "none")], {"none": None}),
    # an empty targeted field is ignored
    ([("Cache-Control", "max-age=5"), ("CDN-Cache-Control", " ")], {"max-age": "5"}),
    ([], {}),
])
def test_effective_cache_control(headers, expected):
    h = Headers(headers)
    assert effective_cache_control(h) == expected
    assert cdn_targeted(h) is any(n.lower() == "cdn-cache-control" and v.strip()
                                  for n, v in headers)


@pytest.mark.parametrize("value, expected", [
    ("0", 0), ("60", 60), (None, None), ("", None), ("-1", None), ("1.5", None),
    ("abc", None), ("٣", None),  # non-ASCII digits are not DIGIT
    # RFC 9111 §1.2.2: "If a cache receives a delta-seconds value greater than the greatest
    # integer it can represent ... the cache MUST consider the value to be 2147483648"
    ("2147483649", 2**31), ("99999999999999999999", 2**31),
])
def test_delta_seconds(value, expected):
    assert delta_seconds(value) == expected


@pytest.mark.parametrize("cc, expected", [
    ({"max-age": "1"}, False),
    ({"must-revalidate": None}, True),      # RFC 9111 §5.2.2.2
    ({"proxy-revalidate": None}, True),     # RFC 9111 §5.2.2.8
    ({"no-cache": None}, True),             # RFC 9111 §5.2.2.4
    ({"s-maxage": "5"}, True),              # RFC 9111 §5.2.2.10 implies proxy-revalidate
    ({"stale-while-revalidate": "5"}, False),
])
def test_forbids_stale(cc, expected):
    assert forbids_stale(cc) is expected


def test_qualified_fields():
    assert qualified_fields({"private": "Set-Cookie, X-A"}, "private") == ["set-cookie", "x-a"]
    assert qualified_fields({"private": None}, "private") == []
    assert qualified_fields({}, "no-cache") == []
