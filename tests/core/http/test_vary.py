"""Tests for owncdn.core.http.vary (RFC 9111 §4.1)."""

from __future__ import annotations

import pytest

from owncdn.core.http.headers import Headers
from owncdn.core.http.vary import vary_key, vary_matches


@pytest.mark.parametrize("vary, req, expected", [
    ([], [("Accept", "x")], ()),
    ([("Vary", "Accept-Encoding")], [("Accept-Encoding", "gzip")], (("accept-encoding", "gzip"),)),
    # names lowercased, deduplicated and sorted, over all Vary lines
    ([("Vary", "Cookie, accept-encoding"), ("Vary", "Accept-Encoding")],
     [("Accept-Encoding", "br"), ("Cookie", "a=1")],
     (("accept-encoding", "br"), ("cookie", "a=1"))),
    # RFC 9111 §4.1: "If (after any normalization ...) a header field is absent from a
    # request, it can only match another request if it is also absent there"
    ([("Vary", "Accept-Language")], [], (("accept-language", None),)),
    # RFC 9111 §4.1: "A stored response with a Vary header field value containing a member
    # "*" always fails to match"
    ([("Vary", "Accept, *")], [("Accept", "x")], None),
])
def test_vary_key(vary, req, expected):
    assert vary_key(Headers(vary), Headers(req)) == expected


VARY_AE = Headers([("Vary", "Accept-Encoding")])


@pytest.mark.parametrize("first, second, expected", [
    ([("Accept-Encoding", "gzip, br")], [("Accept-Encoding", "gzip, br")], True),
    ([("Accept-Encoding", "gzip, br")], [("Accept-Encoding", "br, gzip")], False),
    # RFC 9111 §4.1: "adding or removing whitespace, where allowed in the field's syntax"
    ([("Accept-Encoding", "gzip, br")], [("Accept-Encoding", "gzip,br")], True),
    ([("Accept-Encoding", "gzip ,  br")], [("Accept-Encoding", "  gzip, br ")], True),
    # "combining multiple field lines with the same field name"
    ([("Accept-Encoding", "gzip, br")], [("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")], True),
    # "normalizing both header field values in a way that is known to have identical
    # semantics (e.g., lowercasing case-insensitive values)"
    ([("Accept-Encoding", "GZIP")], [("Accept-Encoding", "gzip")], True),
    # absent matches only absent; empty is not absent
    ([], [], True),
    ([], [("Accept-Encoding", "")], False),
    ([("Accept-Encoding", "gzip")], [], False),
    # other request fields do not matter
    ([("Accept-Encoding", "gzip"), ("Accept", "a")], [("Accept-Encoding", "gzip")], True),
])
def test_vary_matches_after_normalisation(first, second, expected):
    key = vary_key(VARY_AE, Headers(first))
    assert vary_matches(key, Headers(second)) is expected


@pytest.mark.parametrize("first, second, expected", [
    # values of case-sensitive fields are compared as sent, whitespace runs collapsed
    ([("User-Agent", "Foo  Bar/1")], [("User-Agent", "Foo Bar/1")], True),
    ([("User-Agent", "foo")], [("User-Agent", "Foo")], False),
])
def test_vary_other_fields(first, second, expected):
    key = vary_key(Headers([("Vary", "User-Agent")]), Headers(first))
    assert vary_matches(key, Headers(second)) is expected


def test_vary_star_never_matches():
    # RFC 9111 §4.1: "*" "always fails to match"
    assert vary_matches(None, Headers()) is False
    assert vary_matches((), Headers([("Anything", "1")])) is True
