"""Request field lists as an HTTP/2 server receives them (core/http/h2fields.py),
row by row from RFC 9113 §8.1-§8.3."""

import pytest

from owncdn.core.http.h2fields import RequestHead, check_request, check_trailers

BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/a"), (b":authority", b"example.test")]


def with_fields(*extra, base=BASE):
    return [*base, *extra]


MALFORMED = [
    # §8.2.1: "A field name MUST NOT contain characters in the ranges 0x00-0x20, 0x41-0x5a, or 0x7f-0xff"
    ("uppercase name", with_fields((b"X-Big", b"1"))),
    ("space in name", with_fields((b"x big", b"1"))),
    ("DEL in name", with_fields((b"x\x7fbig", b"1"))),
    ("non-ASCII name", with_fields((b"x\xc3\xa9", b"1"))),
    ("empty name", with_fields((b"", b"1"))),
    # "...field names MUST NOT include a colon" (other than the pseudo-header's leading one)
    ("colon inside a name", with_fields((b"x:y", b"1"))),
    # "A field value MUST NOT contain the zero value (NUL), line feed (LF), or carriage return (CR)"
    ("NUL in value", with_fields((b"x-a", b"a\x00b"))),
    ("LF in value", with_fields((b"x-a", b"a\nb"))),
    ("CR in value", with_fields((b"x-a", b"a\rb"))),
    # "A field value MUST NOT start or end with an ASCII whitespace character"
    ("leading space", with_fields((b"x-a", b" a"))),
    ("trailing tab", with_fields((b"x-a", b"a\t"))),
    ("CR in a pseudo-header's value", [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/a\r\n")]),
    # §8.2.2: connection-specific fields
    ("connection", with_fields((b"connection", b"keep-alive"))),
    ("keep-alive", with_fields((b"keep-alive", b"timeout=5"))),
    ("proxy-connection", with_fields((b"proxy-connection", b"close"))),
    ("transfer-encoding", with_fields((b"transfer-encoding", b"chunked"))),
    ("upgrade", with_fields((b"upgrade", b"websocket"))),
    # "...the TE header field, which MAY be present ... but MUST NOT contain any value other than 'trailers'"
    ("te: gzip", with_fields((b"te", b"gzip"))),
    # §8.3: "Endpoints MUST NOT generate pseudo-header fields other than those defined"
    ("unknown pseudo-header", with_fields((b":foo", b"bar"))),
    ("response pseudo-header in a request", with_fields((b":status", b"200"))),
    # "All pseudo-header fields MUST appear in a field block before all regular field lines"
    ("pseudo-header after a regular field", [(b":method", b"GET"), (b"x-a", b"1"), (b":scheme", b"https"),
                                             (b":path", b"/")]),
    # "The same pseudo-header field name MUST NOT appear more than once"
    ("duplicate :path", with_fields((b":path", b"/b"), base=BASE[:3])),
    # §8.3.1: "All HTTP/2 requests MUST include exactly one valid value for :method, :scheme, and :path,
    # unless they are CONNECT requests"
    ("no :method", BASE[1:]),
    ("no :scheme", [BASE[0], BASE[2]]),
    ("no :path", BASE[:2]),
    # ":path ... MUST NOT be empty for 'http' or 'https' URIs"
    ("empty :path", [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"")]),
    # §8.5: CONNECT has :authority and omits :scheme and :path
    ("CONNECT with :path", [(b":method", b"CONNECT"), (b":authority", b"a:443"), (b":path", b"/")]),
    ("CONNECT without :authority", [(b":method", b"CONNECT")]),
    # §8.3.1: a Host field that differs from :authority
    ("host differs from :authority", with_fields((b"host", b"other.test"))),
    # RFC 9110 §8.6: Content-Length is digits, one value
    ("content-length not digits", with_fields((b"content-length", b"12a"))),
    ("two content-lengths", with_fields((b"content-length", b"1"), (b"content-length", b"2"))),
]


@pytest.mark.parametrize(("why", "fields"), MALFORMED, ids=[row[0] for row in MALFORMED])
def test_malformed_requests(why, fields):
    assert isinstance(check_request(fields), str)


def test_a_well_formed_request_in_http1_shape():
    head = check_request(with_fields(
        (b"accept", b"*/*"), (b"cookie", b"a=1"), (b"te", b"trailers"), (b"cookie", b"b=2"),
        (b"host", b"example.test"), (b"content-length", b"5"), (b"x-empty", b"")))
    assert isinstance(head, RequestHead)
    assert (head.method, head.scheme, head.path, head.authority) == (b"GET", b"https", b"/a", b"example.test")
    # Host first from :authority (§8.3.1); cookies joined by "; " (§8.2.3); no pseudo-headers.
    assert head.fields == [(b"host", b"example.test"), (b"accept", b"*/*"), (b"te", b"trailers"),
                           (b"content-length", b"5"), (b"x-empty", b""), (b"cookie", b"a=1; b=2")]
    assert head.content_length == 5
    assert head.size == sum(len(n) + len(v) + 4 for n, v in with_fields(
        (b"accept", b"*/*"), (b"cookie", b"a=1"), (b"te", b"trailers"), (b"cookie", b"b=2"),
        (b"host", b"example.test"), (b"content-length", b"5"), (b"x-empty", b"")))


def test_host_without_authority_is_kept_and_connect_is_well_formed():
    head = check_request([(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b"host", b"h.test")])
    assert head.fields == [(b"host", b"h.test")] and head.authority is None
    connect = check_request([(b":method", b"CONNECT"), (b":authority", b"a.test:443")])
    assert isinstance(connect, RequestHead) and connect.path is None


def test_checked_fields_are_remembered_without_changing_answers():
    fields = with_fields((b"user-agent", b"x"), (b"accept", b"*/*"))
    first, second = check_request(fields), check_request(fields)
    assert first.fields == second.fields and first is not second
    # A remembered good field does not make a bad list good.
    assert isinstance(check_request(with_fields((b"user-agent", b"x"), (b"Accept", b"*/*"))), str)


@pytest.mark.parametrize(("fields", "ok"), [
    ([(b"x-checksum", b"abc")], True),
    ([], True),
    ([(b":status", b"200")], False),        # §8.1: trailers carry no pseudo-headers
    ([(b"X-Checksum", b"abc")], False),     # §8.2.1 applies to trailers too
    ([(b"connection", b"close")], False),   # §8.2.2
])
def test_trailers(fields, ok):
    assert (check_trailers(fields) is None) == ok
