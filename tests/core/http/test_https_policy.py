"""A service's HTTPS policy (core/http/https.py): RFC 6797 (HSTS) and redirects."""

import pytest

from owncdn.core.http.https import HttpsPolicy, hsts_value


@pytest.mark.parametrize(("args", "value"), [
    ((31536000,), "max-age=31536000"),
    ((0,), "max-age=0"),                                   # §6.1.1: 0 tells the UA to forget the host
    ((86400, True), "max-age=86400; includeSubDomains"),
    ((63072000, True, True), "max-age=63072000; includeSubDomains; preload"),
    ((86400.0,), "max-age=86400"),                          # durations arrive as float seconds
])
def test_hsts_value(args, value):
    assert hsts_value(*args) == value


def test_hsts_only_over_https():
    # RFC 6797 §7.2: MUST NOT include the STS header field in responses over non-secure transport.
    policy = HttpsPolicy(hsts="max-age=60")
    assert policy.response_field("https") == b"Strict-Transport-Security: max-age=60\r\n"
    assert policy.response_field("http") == b""
    assert HttpsPolicy().response_field("https") == b""


REDIRECTS = [
    # scheme, method, host, target, port -> (status, location) or None
    ("http", "GET", "example.com", "/a?b=1", 443, (301, "https://example.com/a?b=1")),
    ("http", "HEAD", "example.com:8080", "/", 443, (301, "https://example.com/")),
    ("http", "GET", "example.com:8080", "/", 8443, (301, "https://example.com:8443/")),
    ("http", "POST", "example.com", "/form", 443, (308, "https://example.com/form")),
    ("http", "PUT", "example.com", "/x", 443, (308, "https://example.com/x")),
    ("http", "GET", "[2001:db8::1]:80", "/", 443, (301, "https://[2001:db8::1]/")),
    ("http", "OPTIONS", "example.com", "*", 443, (308, "https://example.com/")),
    ("https", "GET", "example.com", "/a", 443, None),      # already secure
]


@pytest.mark.parametrize(("scheme", "method", "host", "target", "port", "expected"), REDIRECTS)
def test_redirect_for(scheme, method, host, target, port, expected):
    policy = HttpsPolicy(redirect=True, port=port)
    assert policy.redirect_for(scheme, method, host, target) == expected


def test_no_redirect_unless_asked():
    assert HttpsPolicy(hsts="max-age=1").redirect_for("http", "GET", "a.test", "/") is None
    assert not HttpsPolicy()
    assert HttpsPolicy(redirect=True)
