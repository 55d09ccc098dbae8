"""Tests for owncdn.core.http.forwarding (RFC 9110 §7.6)."""

from __future__ import annotations

import pytest

from owncdn.core.http.forwarding import forward_request_headers, forward_response_headers
from owncdn.core.http.headers import Headers


def trusted(addr: str) -> bool:
    return addr.startswith("10.")


def forward(items, client="203.0.113.9", origin_host=None):
    return forward_request_headers(Headers(items), client_addr=client, proto="https",
                                   host="cdn.example", trusted=trusted, via="edge-fra",
                                   origin_host=origin_host)


@pytest.mark.parametrize("items, client, field, expected", [
    # untrusted peers cannot supply forwarding information: replaced
    ([("X-Forwarded-For", "1.2.3.4")], "203.0.113.9", "x-forwarded-for", "203.0.113.9"),
    ([("X-Forwarded-Proto", "http")], "203.0.113.9", "x-forwarded-proto", "https"),
    ([("X-Forwarded-Host", "evil")], "203.0.113.9", "x-forwarded-host", "cdn.example"),
    ([], "203.0.113.9", "x-forwarded-for", "203.0.113.9"),
    # a trusted peer's chain is extended, its proto and host kept
    ([("X-Forwarded-For", "1.2.3.4")], "10.0.0.2", "x-forwarded-for", "1.2.3.4, 10.0.0.2"),
    ([("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2")], "10.0.0.2",
     "x-forwarded-for", "1.1.1.1, 2.2.2.2, 10.0.0.2"),
    ([], "10.0.0.2", "x-forwarded-for", "10.0.0.2"),
    ([("X-Forwarded-Proto", "http")], "10.0.0.2", "x-forwarded-proto", "http"),
    ([("X-Forwarded-Host", "orig.example")], "10.0.0.2", "x-forwarded-host", "orig.example"),
    ([], "10.0.0.2", "x-forwarded-proto", "https"),
    # RFC 9110 §7.6.3: "A proxy MUST send an appropriate Via header field ... in each
    # message that it forwards"; "each intermediary appends its own information"
    ([], "203.0.113.9", "via", "1.1 edge-fra"),
    ([("Via", "1.1 a, 2 b")], "203.0.113.9", "via", "1.1 a, 2 b, 1.1 edge-fra"),
    # RFC 9110 §7.6.1: hop-by-hop fields are not forwarded
    ([("Connection", "keep-alive, X-Sec"), ("X-Sec", "1"), ("TE", "trailers")],
     "203.0.113.9", "x-sec", None),
    ([("Proxy-Authorization", "Basic x")], "203.0.113.9", "proxy-authorization", None),
    ([("Host", "cdn.example")], "203.0.113.9", "host", "cdn.example"),
])
def test_forward_request_headers(items, client, field, expected):
    assert forward(items, client).get(field) == expected


def test_origin_host_replaces_host():
    out = forward([("Host", "cdn.example"), ("Accept", "*/*")], origin_host="origin.internal")
    assert out.get("host") == "origin.internal"
    assert out.get("accept") == "*/*"


def test_forward_response_headers():
    out = forward_response_headers(Headers([("Connection", "close"), ("Keep-Alive", "1"),
                                            ("Content-Type", "a/b"), ("Via", "1.1 origin")]),
                                   "edge-fra")
    assert out.items() == [("content-type", "a/b"), ("via", "1.1 origin, 1.1 edge-fra")]
