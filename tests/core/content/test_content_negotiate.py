"""owncdn.core.content.negotiate: choosing a precompressed sibling by Accept-Encoding
(RFC 9110 §12.5.3), one row per rule of the RFC text."""

from __future__ import annotations

import pytest

from owncdn.core.content.negotiate import choose_coding, parse_accept_encoding, sibling

BOTH = {"br", "gzip"}
GZIP = {"gzip"}


@pytest.mark.parametrize("accept, available, expected", [
    # "A request without any Accept-Encoding header field implies that the user agent has
    # no preferences": the plain file (Rule 3)
    (None, BOTH, "identity"),
    # "An Accept-Encoding header field with a field value that is empty implies that the
    # user agent does not want any content coding in response"
    ("", BOTH, "identity"),
    # a listed coding is acceptable "unless it is accompanied by a qvalue of 0"
    ("gzip", BOTH, "gzip"),
    ("gzip;q=0", BOTH, "identity"),
    ("br;q=0, gzip", BOTH, "gzip"),
    # "the acceptable content coding with the highest non-zero qvalue is preferred"
    ("gzip;q=1.0, br;q=0.5", BOTH, "gzip"),
    ("compress;q=0.5, gzip;q=1.0", BOTH, "gzip"),
    ("gzip;q=0.4, identity;q=0.5", BOTH, "identity"),
    # equal weights: the server's order, smallest first (Rule 4)
    ("gzip, deflate, br", BOTH, "br"),
    ("gzip, br, zstd", {"zstd", "gzip"}, "zstd"),
    ("br, identity", BOTH, "br"),
    # "*" "matches any available content coding not explicitly listed"
    ("*", BOTH, "br"),
    ("*;q=0.5, gzip", BOTH, "gzip"),
    ("br;q=0, *", BOTH, "gzip"),
    # identity "is acceptable by default unless specifically excluded ... "identity;q=0" or
    # "*;q=0" without a more specific entry for "identity""; when nothing is acceptable the
    # plain file goes out anyway (Rule 5)
    ("gzip;q=1.0, identity; q=0.5, *;q=0", BOTH, "gzip"),
    ("br;q=0, gzip;q=0, identity;q=0", BOTH, "identity"),
    ("*;q=0", BOTH, "identity"),
    ("identity;q=0", {"gzip"}, "identity"),
    ("identity;q=0, gzip;q=0.1", GZIP, "gzip"),
    # only siblings that exist count
    ("br", GZIP, "identity"),
    ("br, gzip;q=0.1", GZIP, "gzip"),
    ("gzip", set(), "identity"),
    # codings are case-insensitive; x-gzip is gzip (§8.4.1.3)
    ("GZIP", BOTH, "gzip"),
    ("x-gzip", GZIP, "gzip"),
    ("Br;Q=0.9", BOTH, "br"),
    # invalid weights make the member ignored (Rule 1)
    ("br;q=2, gzip;q=0.1", BOTH, "gzip"),
    ("br;q=0.5555, gzip;q=0.1", BOTH, "gzip"),
    ("br;q=abc", BOTH, "identity"),
    ("br;q=, gzip", BOTH, "gzip"),
    (" , ,gzip ; q=0.8 ,", BOTH, "gzip"),
])
def test_choose_coding(accept, available, expected):
    assert choose_coding(accept, available) == expected


def test_parse_keeps_the_last_member_per_coding():
    assert parse_accept_encoding("gzip;q=0.2, gzip;q=0.7, *;q=0") == {"gzip": 0.7, "*": 0.0}


@pytest.mark.parametrize("coding, path", [("identity", "a.js"), ("br", "a.js.br"), ("gzip", "a.js.gz"),
                                          ("zstd", "a.js.zst")])
def test_sibling(coding, path):
    assert sibling("a.js", coding) == path
