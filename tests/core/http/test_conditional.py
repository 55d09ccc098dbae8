"""Tests for owncdn.core.http.conditional: a client's preconditions against a stored
response (RFC 9110 §13), and entity-tag comparison (RFC 9110 §8.8.3.2)."""

from __future__ import annotations

import pytest

from owncdn.core.http.conditional import evaluate_conditionals, not_modified_headers
from owncdn.core.http.headers import Headers, format_http_date

NOW = 1_700_000_000.0
LM_T = NOW - 86400


def d(t: float) -> str:
    return format_http_date(t)


RESP = Headers([("ETag", '"xyzzy"'), ("Last-Modified", d(LM_T)), ("Date", d(NOW))])
WEAK = Headers([("ETag", 'W/"xyzzy"'), ("Date", d(NOW))])


@pytest.mark.parametrize("method, req, resp, expected", [
    # RFC 9110 §13.1.2: If-None-Match "uses the weak comparison function"; when it matches,
    # "the origin server MUST NOT perform the requested method; instead ... respond with
    # the 304 (Not Modified) status code" for GET and HEAD
    ("GET", [("If-None-Match", '"xyzzy"')], RESP, 304),
    ("HEAD", [("If-None-Match", '"xyzzy"')], RESP, 304),
    ("GET", [("If-None-Match", 'W/"xyzzy"')], RESP, 304),
    ("GET", [("If-None-Match", '"xyzzy"')], WEAK, 304),
    ("GET", [("If-None-Match", '"a", "xyzzy"')], RESP, 304),
    ("GET", [("If-None-Match", '"a"'), ("If-None-Match", '"xyzzy"')], RESP, 304),
    ("GET", [("If-None-Match", '"other"')], RESP, None),
    ("GET", [("If-None-Match", "*")], RESP, 304),
    # "... or 412 (Precondition Failed) status code for all other request methods"
    ("POST", [("If-None-Match", '"xyzzy"')], RESP, 412),
    ("DELETE", [("If-None-Match", "*")], RESP, 412),
    # RFC 9110 §13.1.1: If-Match "uses the strong comparison function"
    ("GET", [("If-Match", '"xyzzy"')], RESP, None),
    ("GET", [("If-Match", '"other"')], RESP, 412),
    ("GET", [("If-Match", 'W/"xyzzy"')], RESP, 412),
    ("GET", [("If-Match", '"xyzzy"')], WEAK, 412),
    ("GET", [("If-Match", "*")], RESP, None),
    ("PUT", [("If-Match", '"other"')], RESP, 412),
    # RFC 9110 §13.1.3: If-Modified-Since: "if the selected representation's last
    # modification date is earlier or equal to the date provided in the field value, the
    # condition is false" -> 304
    ("GET", [("If-Modified-Since", d(LM_T))], RESP, 304),
    ("GET", [("If-Modified-Since", d(LM_T + 10))], RESP, 304),
    ("GET", [("If-Modified-Since", d(LM_T - 10))], RESP, None),
    # "A recipient MUST ignore If-Modified-Since if ... the field value is not a valid
    # HTTP-date, the field value has more than one member, or ... the request method is
    # neither GET nor HEAD"
    ("GET", [("If-Modified-Since", "yesterday")], RESP, None),
    ("GET", [("If-Modified-Since", d(LM_T)), ("If-Modified-Since", d(LM_T))], RESP, None),
    ("POST", [("If-Modified-Since", d(LM_T))], RESP, None),
    # RFC 9111 §4.3.2: without Last-Modified the cache uses the stored response's Date
    ("GET", [("If-Modified-Since", d(NOW))], Headers([("Date", d(NOW))]), 304),
    ("GET", [("If-Modified-Since", d(NOW - 1))], Headers([("Date", d(NOW))]), None),
    # RFC 9110 §13.1.4: If-Unmodified-Since: "MUST NOT perform the requested method if the
    # selected representation's last modification date is more recent than the date"
    ("GET", [("If-Unmodified-Since", d(LM_T - 1))], RESP, 412),
    ("GET", [("If-Unmodified-Since", d(LM_T))], RESP, None),
    ("PUT", [("If-Unmodified-Since", d(LM_T - 1))], RESP, 412),
    ("GET", [("If-Unmodified-Since", "garbage")], RESP, None),
    # RFC 9110 §13.2.2 step 1-2: If-Unmodified-Since is evaluated only "when ... If-Match is
    # not present"
    ("GET", [("If-Match", '"xyzzy"'), ("If-Unmodified-Since", d(LM_T - 1))], RESP, None),
    # step 3-4: If-Modified-Since only "when ... If-None-Match is not present"
    ("GET", [("If-None-Match", '"other"'), ("If-Modified-Since", d(NOW))], RESP, None),
    ("GET", [("If-None-Match", '"xyzzy"'), ("If-Modified-Since", d(LM_T - 10))], RESP, 304),
    # step 1 before step 3: a failed If-Match wins over a matching If-None-Match
    ("GET", [("If-Match", '"other"'), ("If-None-Match", '"xyzzy"')], RESP, 412),
    ("GET", [("If-Unmodified-Since", d(LM_T - 1)), ("If-None-Match", '"xyzzy"')], RESP, 412),
    ("GET", [("If-Match", '"xyzzy"'), ("If-None-Match", '"xyzzy"')], RESP, 304),
    # no conditionals
    ("GET", [], RESP, None),
])
def test_evaluate_conditionals(method, req, resp, expected):
    assert evaluate_conditionals(method, Headers(req), 200, resp) == expected


@pytest.mark.parametrize("status", [301, 404, 500])
def test_conditionals_ignored_for_non_2xx(status):
    # RFC 9110 §13.2.1: a server "MUST ignore the conditional request header fields ...
    # when ... the response would otherwise be ... other than 2xx"
    req = Headers([("If-None-Match", "*"), ("If-Match", '"nope"')])
    assert evaluate_conditionals("GET", req, status, RESP) is None


def test_not_modified_headers():
    # RFC 9110 §15.4.5: a 304 sends "Content-Location, Date, ETag, Vary, Cache-Control and
    # Expires"; other representation metadata is left out (Last-Modified helps caches)
    resp = Headers([("Content-Type", "text/html"), ("Content-Length", "10"),
                    ("ETag", '"a"'), ("Cache-Control", "max-age=1"), ("Vary", "Accept"),
                    ("Last-Modified", d(LM_T)), ("Expires", d(NOW)), ("Date", d(NOW)),
                    ("Content-Location", "/a.html"), ("Set-Cookie", "x=1")])
    names = [n for n, _ in not_modified_headers(resp)]
    assert names == ["etag", "cache-control", "vary", "last-modified", "expires", "date",
                     "content-location"]
