"""Tests for owncdn.core.http.targets."""

from __future__ import annotations

import pytest

from owncdn.core.http.targets import normalize_host, origin_form, resolve_same_host, split_target


@pytest.mark.parametrize("target, expected", [
    ("/a", "/a"), ("", "/"), ("a", "/a"), ("*", "*"), ("https://x.org", "/"),
    ("https://x.org?q", "/?q"),
])
def test_origin_form(target, expected):
    assert origin_form(target) == expected


@pytest.mark.parametrize("host, expected", [
    ("EXAMPLE.com", "example.com"), ("a.b:80", "a.b"), ("[2001:db8::1]", "[2001:db8::1]"),
    (" h ", "h"),
])
def test_normalize_host(host, expected):
    assert normalize_host(host) == expected


@pytest.mark.parametrize("target, expected", [
    ("/a?b=1", ("/a", "b=1")), ("/a?", ("/a", "")), ("/a", ("/a", None)),
])
def test_split_target(target, expected):
    assert split_target(target) == expected


@pytest.mark.parametrize("reference, expected", [
    # RFC 3986 §5.2: references resolve against the request target
    ("../b", "/b"), ("c?x", "/a/c?x"), ("/d", "/d"), ("http://h.example/e", "/e"),
    ("http://other.example/e", None), ("ftp://h.example/e", None),
])
def test_resolve_same_host(reference, expected):
    assert resolve_same_host(reference, "/a/b", "h.example") == expected
