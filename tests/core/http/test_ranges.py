"""Tests for owncdn.core.http.ranges (RFC 9110 §14, §13.1.5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owncdn.core.http.headers import Headers, format_http_date
from owncdn.core.http.ranges import (
    ByteRange,
    content_range,
    if_range_allows,
    multipart_body,
    multipart_plan,
    parse_content_range,
    parse_range,
    unsatisfied_range,
)

SIZE = 10000
R = ByteRange
NOW = 1_700_000_000.0


@pytest.mark.parametrize("value, expected", [
    # RFC 9110 §14.1.2, the examples for a 10000-byte representation:
    # "The first 500 bytes (byte offsets 0-499, inclusive): bytes=0-499"
    ("bytes=0-499", [R(0, 499)]),
    # "The second 500 bytes (byte offsets 500-999, inclusive): bytes=500-999"
    ("bytes=500-999", [R(500, 999)]),
    # "The final 500 bytes (byte offsets 9500-9999, inclusive): bytes=-500"
    ("bytes=-500", [R(9500, 9999)]),
    # "Or: bytes=9500-"
    ("bytes=9500-", [R(9500, 9999)]),
    # "The first and last bytes only (bytes 0 and 9999): bytes=0-0,-1"
    ("bytes=0-0,-1", [R(0, 0), R(9999, 9999)]),
    # "The first, middle, and last 1000 bytes: bytes= 0-999, 4500-5499, -1000"
    ("bytes= 0-999, 4500-5499, -1000", [R(0, 999), R(4500, 5499), R(9000, 9999)]),
    # "Other valid (but not canonical) specifications of the second 500 bytes (byte offsets
    # 500-999, inclusive): bytes=500-600,601-999 / bytes=500-700,601-999" (coalesced)
    ("bytes=500-600,601-999", [R(500, 999)]),
    ("bytes=500-700,601-999", [R(500, 999)]),
    # RFC 9110 §14.1.1: "the sender may ... indicate a last-pos beyond the representation";
    # "If the last-pos value is absent, or if the value is greater than or equal to the
    # current length ..., the byte range is interpreted as the remainder"
    ("bytes=9000-20000", [R(9000, 9999)]),
    # "If the selected representation is shorter than the specified suffix-length, the
    # entire representation is used"
    ("bytes=-20000", [R(0, 9999)]),
    ("bytes=0-", [R(0, 9999)]),
    # the range unit is case-insensitive (RFC 9110 §14.1)
    ("Bytes=0-1", [R(0, 1)]),
    # non-overlapping ranges keep the client's order (RFC 9110 §14.6)
    ("bytes=500-599,0-99", [R(500, 599), R(0, 99)]),
    # overlapping ones are coalesced (RFC 9110 §14.2 "MAY coalesce any of the ranges that
    # overlap ... regardless of the order")
    ("bytes=500-599,0-99,50-550", [R(0, 599)]),
    # unsatisfiable members are dropped when another is satisfiable (§14.1.1: "satisfiable
    # if it contains at least one range-spec that is satisfiable")
    ("bytes=0-9,20000-30000", [R(0, 9)]),
    ("bytes=-0,0-9", [R(0, 9)]),
    # RFC 9110 §14.1.1: an int-range is unsatisfiable if first-pos >= length, a suffix-range
    # if its length is 0 -> 416
    ("bytes=10000-", "unsatisfiable"),
    ("bytes=10000-10001", "unsatisfiable"),
    ("bytes=-0", "unsatisfiable"),
    # RFC 9110 §14.2: a server "MAY ignore or reject a Range header field that contains an
    # invalid ranges-specifier" - we ignore (serve 200)
    ("bytes=500-400", None),
    ("bytes=abc", None),
    ("bytes=1-2-3", None),
    ("bytes=-", None),
    ("bytes=", None),
    ("bytes=0x1-2", None),
    ("bytes=+1-2", None),
    ("bytes 0-1", None),
    # "An origin server MUST ignore a Range header field that contains a range unit it does
    # not understand"
    ("items=0-1", None),
    (None, None),
    # too many ranges: ignored (a denial-of-service guard, RFC 9110 §17.15)
    ("bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(17)), None),
    ("bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(16)),
     [R(i * 10, i * 10 + 1) for i in range(16)]),
])
def test_parse_range_10000_bytes(value, expected):
    assert parse_range(value, SIZE) == expected


@pytest.mark.parametrize("value, size, expected", [
    # an empty representation has no satisfiable int-range ...
    ("bytes=0-", 0, "unsatisfiable"),
    # ... and a suffix of nothing is just the (empty) whole: serve 200
    ("bytes=-5", 0, None),
    ("bytes=0-0", 1, [R(0, 0)]),
    ("bytes=-1", 1, [R(0, 0)]),
])
def test_parse_range_small_sizes(value, size, expected):
    assert parse_range(value, size) == expected


specs = st.one_of(
    st.tuples(st.integers(0, 20000), st.one_of(st.none(), st.integers(0, 20000))).map(
        lambda t: f"{t[0]}-{'' if t[1] is None else t[1]}"),
    st.integers(0, 20000).map(lambda n: f"-{n}"),
    st.text(alphabet="0123456789-, ", max_size=8),
)


@settings(max_examples=60)
@given(st.lists(specs, min_size=1, max_size=20), st.integers(0, 15000))
def test_parse_range_never_out_of_bounds(members, size):
    result = parse_range("bytes=" + ",".join(members), size)
    if isinstance(result, list):
        assert 1 <= len(result) <= 16
        for r in result:
            assert 0 <= r.start <= r.end < size
        ordered = sorted(result, key=lambda r: r.start)
        for a, b in zip(ordered, ordered[1:]):
            assert a.end + 1 < b.start  # no overlaps or adjacency left


@pytest.mark.parametrize("r, size, expected", [
    # RFC 9110 §14.4: "Content-Range: bytes 42-1233/1234"
    (R(42, 1233), 1234, "bytes 42-1233/1234"),
    # RFC 9110 §14.5 (206 example): "Content-Range: bytes 21010-47021/47022"
    (R(21010, 47021), 47022, "bytes 21010-47021/47022"),
    (R(0, 499), SIZE, "bytes 0-499/10000"),
])
def test_content_range(r, size, expected):
    assert content_range(r, size) == expected


def test_unsatisfied_range():
    # RFC 9110 §14.4: "Content-Range: bytes */1234" in a 416
    assert unsatisfied_range(1234) == "bytes */1234"


LM = format_http_date(NOW - 3600)
STRONG = Headers([("ETag", '"v1"'), ("Last-Modified", LM), ("Date", format_http_date(NOW))])


@pytest.mark.parametrize("req, resp, expected", [
    ([], STRONG, True),
    # RFC 9110 §13.1.5: "If the validator given in the If-Range header field is an entity
    # tag, the condition is true if it strongly matches the ETag"
    ([("If-Range", '"v1"')], STRONG, True),
    ([("If-Range", '"v2"')], STRONG, False),
    ([("If-Range", 'W/"v1"')], STRONG, False),
    ([("If-Range", '"v1"')], Headers([("ETag", 'W/"v1"')]), False),
    # "If the validator is an HTTP-date, the condition is true if ... exactly matches the
    # Last-Modified" and it is "a strong validator in the sense defined by Section 8.8.2.2"
    ([("If-Range", LM)], STRONG, True),
    ([("If-Range", format_http_date(NOW - 3599))], STRONG, False),
    # RFC 9110 §8.8.2.2: a Last-Modified is strong for a cache only when "at least 60
    # seconds before the Date value"
    ([("If-Range", LM)], Headers([("Last-Modified", LM), ("Date", format_http_date(NOW - 3590))]),
     False),
    ([("If-Range", LM)], Headers([("Last-Modified", LM)]), False),
    ([("If-Range", "not a date")], STRONG, False),
])
def test_if_range_allows(req, resp, expected):
    assert if_range_allows(Headers(req), resp) is expected


def test_multipart_byteranges_layout():
    # RFC 9110 §14.6: each part has its own Content-Type and Content-Range; parts are
    # separated by the boundary and closed by "--boundary--"
    body = bytes(range(256)) * 40  # 10240 bytes
    ranges = [R(0, 3), R(100, 101)]
    plan = multipart_plan(ranges, len(body), "application/octet-stream", "B0UND")
    out = multipart_body(plan, body)
    assert plan.content_type == "multipart/byteranges; boundary=B0UND"
    assert out == (b"--B0UND\r\nContent-Type: application/octet-stream\r\n"
                   b"Content-Range: bytes 0-3/10240\r\n\r\n" + body[0:4] +
                   b"\r\n--B0UND\r\nContent-Type: application/octet-stream\r\n"
                   b"Content-Range: bytes 100-101/10240\r\n\r\n" + body[100:102] +
                   b"\r\n--B0UND--\r\n")
    assert plan.content_length == len(out)


def test_multipart_without_content_type():
    plan = multipart_plan([R(0, 0), R(2, 2)], 3, None, "x")
    assert multipart_body(plan, b"abc") == (
        b"--x\r\nContent-Range: bytes 0-0/3\r\n\r\na"
        b"\r\n--x\r\nContent-Range: bytes 2-2/3\r\n\r\nc\r\n--x--\r\n")


@pytest.mark.parametrize("value, expected", [
    # RFC 9110 §14.4, the examples: "bytes 42-1233/1234", "bytes 42-1233/*"
    ("bytes 42-1233/1234", (42, 1233, 1234)),
    ("bytes 42-1233/*", (42, 1233, None)),
    # "The first 500 bytes: bytes 0-499/1234"; "The second 500 bytes: bytes 500-999/1234"
    ("bytes 0-499/1234", (0, 499, 1234)),
    ("bytes 500-999/1234", (500, 999, 1234)),
    # "All except for the first 500 bytes: bytes 500-1233/1234"
    ("bytes 500-1233/1234", (500, 1233, 1234)),
    # "The last 500 bytes: bytes 734-1233/1234"
    ("bytes 734-1233/1234", (734, 1233, 1234)),
    # unsatisfied-range = "*/" complete-length: "bytes */1234"
    ("bytes */1234", (None, None, 1234)),
    # range-unit is case-insensitive (§14.1)
    ("BYTES 0-0/1", (0, 0, 1)),
    # "A Content-Range field value is invalid if it contains a range-resp that has a
    # last-pos value less than its first-pos value, or a complete-length value less than
    # or equal to its last-pos value."
    ("bytes 500-499/1234", None),
    ("bytes 0-1234/1234", None),
    ("bytes 0-1235/1234", None),
    # not the grammar: no unit, another unit, "*/*", a missing part, signs, spaces inside
    ("0-499/1234", None),
    ("items 0-499/1234", None),
    ("bytes */*", None),
    ("bytes 0-499", None),
    ("bytes 0-/1234", None),
    ("bytes -499/1234", None),
    ("bytes +0-499/1234", None),
    ("bytes 0 - 499/1234", None),
    ("bytes 0-499/", None),
    ("bytes ０-499/1234", None),  # fullwidth digit: DIGIT is ASCII (RFC 5234)
    ("", None),
    (None, None),
])
def test_parse_content_range(value, expected):
    assert parse_content_range(value) == expected
