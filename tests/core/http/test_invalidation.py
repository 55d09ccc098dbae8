"""Tests for owncdn.core.http.invalidation (RFC 9111 §4.4)."""

from __future__ import annotations

import pytest

from owncdn.core.http.headers import Headers
from owncdn.core.http.invalidation import invalidated_targets


@pytest.mark.parametrize("method, status, target, resp, expected", [
    # RFC 9111 §4.4: "A cache MUST invalidate the target URI when it receives a non-error
    # status code in response to an unsafe request method"
    ("POST", 200, "/items/1", [], ["/items/1"]),
    ("PUT", 204, "/items/1?x=1", [], ["/items/1?x=1"]),
    ("DELETE", 302, "/items/1", [], ["/items/1"]),
    ("PATCH", 201, "http://example.com/items/1", [], ["/items/1"]),
    # "(including methods whose safety is unknown)"
    ("PURGEALL", 200, "/x", [], ["/x"]),
    # only non-error status codes
    ("POST", 404, "/items/1", [], []),
    ("POST", 500, "/items/1", [], []),
    ("POST", 100, "/items/1", [], []),
    # RFC 9110 §9.2.1: safe methods invalidate nothing
    ("GET", 200, "/items/1", [], []),
    ("HEAD", 200, "/items/1", [], []),
    ("OPTIONS", 200, "/items/1", [], []),
    ("TRACE", 200, "/items/1", [], []),
    # RFC 9111 §4.4: "A cache MAY invalidate other URIs ... the URI(s) in the Location and
    # Content-Location response header fields (if present)"
    ("POST", 201, "/items", [("Location", "/items/2")], ["/items", "/items/2"]),
    ("POST", 200, "/items/", [("Content-Location", "3")], ["/items/", "/items/3"]),
    ("POST", 201, "/items", [("Location", "http://example.com/items/2?a=b")],
     ["/items", "/items/2?a=b"]),
    ("POST", 201, "/items", [("Location", "https://EXAMPLE.com:443/items/2")],
     ["/items", "/items/2"]),
    # "... only if the host part is the same as in the target URI"
    ("POST", 201, "/items", [("Location", "http://evil.example/items/2")], ["/items"]),
    ("POST", 201, "/items", [("Location", "//evil.example/x")], ["/items"]),
    ("POST", 201, "/items", [("Location", "mailto:a@example.com")], ["/items"]),
    # duplicates collapse
    ("PUT", 200, "/a", [("Location", "/a"), ("Content-Location", "/a")], ["/a"]),
])
def test_invalidated_targets(method, status, target, resp, expected):
    assert invalidated_targets(method, status, target, Headers(resp), "example.com") == expected
