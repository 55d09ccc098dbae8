"""Tests for owncdn.core.http.headers: the multi-map, list and Cache-Control parsing,
HTTP dates and hop-by-hop fields."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owncdn.core.http.headers import (
    HOP_BY_HOP,
    Headers,
    format_http_date,
    parse_cache_control,
    parse_http_date,
    split_list,
    strip_hop_by_hop,
)

EXAMPLE_DATE = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110 §5.6.7's example


# --- Headers -------------------------------------------------------------------------

def test_names_are_case_insensitive_and_stored_lowercase():
    # RFC 9110 §5.1: "Field names are case-insensitive"
    h = Headers([("Content-Type", "text/html"), ("X-A", "1"), ("x-a", "2")])
    assert h.get("CONTENT-TYPE") == "text/html"
    assert "content-type" in h and "Content-Type" in h and "nope" not in h
    assert h.get_all("X-A") == ["1", "2"]
    assert h.items() == [("content-type", "text/html"), ("x-a", "1"), ("x-a", "2")]
    assert h.get("missing", "d") == "d"


def test_mutation_keeps_order():
    h = Headers([("a", "1"), ("b", "2"), ("a", "3")])
    h.set("A", "x")
    assert h.items() == [("a", "x"), ("b", "2")]
    h.add("C", "4")
    h.remove("B")
    assert list(h) == [("a", "x"), ("c", "4")]
    assert len(h) == 2
    h.set("d", "5")
    assert h.get("d") == "5"


def test_copy_is_independent_and_equality_is_by_items():
    h = Headers([("a", "1")])
    c = h.copy()
    c.add("b", "2")
    assert h == Headers([("A", "1")]) and c != h
    assert repr(h) == "Headers([('a', '1')])"


def test_from_raw_decodes_latin1():
    h = Headers.from_raw([(b"Content-Type", b"text/plain"), (b"X-Name", "caf\xe9".encode("latin-1"))])
    assert h.get("x-name") == "caf\xe9"
    assert h.items()[0] == ("content-type", "text/plain")


@pytest.mark.parametrize("lines, expected", [
    # RFC 9110 §5.3: field lines with the same name combine into one comma-separated list
    (["gzip", "br"], ["gzip", "br"]),
    # RFC 9110 §5.6.1: recipients "MUST accept empty list elements" and ignore them
    (["gzip, , br,"], ["gzip", "br"]),
    # RFC 9110 §5.6.4: a comma inside a quoted-string does not separate members
    (['W/"a,b", "c"'], ['W/"a,b"', '"c"']),
    (['"a\\",b", c'], ['"a\\",b"', "c"]),
    ([], []),
])
def test_get_list(lines, expected):
    assert Headers([("x", v) for v in lines]).get_list("X") == expected


# --- Cache-Control --------------------------------------------------------------------

@pytest.mark.parametrize("values, expected", [
    # RFC 9111 §5.2: "Cache directives are identified by a token, to be compared
    # case-insensitively, and have an optional argument"
    (["max-age=60"], {"max-age": "60"}),
    (["Max-Age=60, NO-CACHE"], {"max-age": "60", "no-cache": None}),
    # RFC 9111 §5.2: arguments can use "both token and quoted-string syntax"
    (['max-age="60"'], {"max-age": "60"}),
    (['private="Set-Cookie, X-Foo"'], {"private": "Set-Cookie, X-Foo"}),
    (['no-cache="a\\"b"'], {"no-cache": 'a"b'}),
    # RFC 9111 §4.2.1: "either the first occurrence should be used or the response should
    # be considered stale" - we use the first
    (["max-age=1, max-age=2"], {"max-age": "1"}),
    (["max-age=1", "max-age=2, public"], {"max-age": "1", "public": None}),
    # garbage is tolerated (skipped)
    ([", ,=x, max-age=5, bad name"], {"max-age": "5"}),
    ([""], {}),
    (["stale-while-revalidate = 30"], {"stale-while-revalidate": "30"}),
])
def test_parse_cache_control(values, expected):
    assert parse_cache_control(values) == expected


# --- HTTP dates -----------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    # RFC 9110 §5.6.7: the three formats of the example date
    ("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_DATE),   # IMF-fixdate
    ("Sunday, 06-Nov-94 08:49:37 GMT", EXAMPLE_DATE),  # obsolete RFC 850 format
    ("Sun Nov  6 08:49:37 1994", EXAMPLE_DATE),        # ANSI C's asctime() format
    ("  Sun, 06 Nov 1994 08:49:37 GMT ", EXAMPLE_DATE),
    # RFC 9110 §5.6.7: two-digit years read in a 100-year window near now
    ("Thursday, 01-Jan-70 00:00:00 GMT", 0.0),
    ("Tuesday, 01-Jan-69 00:00:00 GMT", 3124224000.0),
    # RFC 9111 §5.3: "invalid date formats, especially the value "0"" are invalid
    ("0", None),
    ("", None),
    (None, None),
    ("Sun, 31 Feb 1994 08:49:37 GMT", None),  # no such day
    ("Sun, 06 Nov 1994 25:49:37 GMT", None),
    ("Sun, 06 Foo 1994 08:49:37 GMT", None),
    ("Sun, 06 Nov 1994 08:49:37 +0000", None),  # not GMT
    ("1994-11-06T08:49:37Z", None),
])
def test_parse_http_date(value, expected):
    assert parse_http_date(value) == expected


def test_format_http_date_is_imf_fixdate():
    # RFC 9110 §5.6.7: "A sender MUST generate ... the IMF-fixdate format"
    assert format_http_date(EXAMPLE_DATE) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert format_http_date(EXAMPLE_DATE + 0.9) == "Sun, 06 Nov 1994 08:49:37 GMT"


@settings(max_examples=60)
@given(st.integers(min_value=0, max_value=253402300799))
def test_format_then_parse_round_trips(t):
    assert parse_http_date(format_http_date(t)) == t


# --- hop-by-hop -------------------------------------------------------------------------

def test_strip_hop_by_hop_removes_fixed_and_connection_named_fields():
    # RFC 9110 §7.6.1: a proxy "MUST remove any such fields" named in Connection, and the
    # Connection field itself and the other hop-by-hop fields
    h = Headers([("Connection", "close, X-Secret"), ("Keep-Alive", "timeout=5"),
                 ("Transfer-Encoding", "chunked"), ("X-Secret", "1"), ("TE", "trailers"),
                 ("Upgrade", "h2c"), ("Proxy-Authorization", "x"), ("Content-Type", "a/b")])
    out = strip_hop_by_hop(h)
    assert out.items() == [("content-type", "a/b")]
    assert len(h) == 8  # input untouched
    assert {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
            "proxy-connection", "proxy-authenticate", "proxy-authorization"} == HOP_BY_HOP


def test_split_list_plain():
    assert split_list(" a ,b,, c ") == ["a", "b", "c"]
