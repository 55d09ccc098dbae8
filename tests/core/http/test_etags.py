"""Tests for owncdn.core.http.etags (RFC 9110 §8.8.3)."""

from __future__ import annotations

import pytest

from owncdn.core.http.etags import parse_etag, parse_etag_list, strong_match, weak_match


@pytest.mark.parametrize("a, b, strong, weak", [
    # RFC 9110 §8.8.3.2, the table of comparisons:
    ('W/"1"', 'W/"1"', False, True),
    ('W/"1"', 'W/"2"', False, False),
    ('W/"1"', '"1"', False, True),
    ('"1"', '"1"', True, True),
])
def test_etag_comparison_table(a, b, strong, weak):
    ta, tb = parse_etag(a), parse_etag(b)
    assert strong_match(ta, tb) is strong and weak_match(ta, tb) is weak


@pytest.mark.parametrize("value, expected", [
    ('"abc"', (False, '"abc"')),
    ('W/"abc"', (True, '"abc"')),
    ('""', (False, '""')),
    ("abc", None),
    ('"a"b"', None),
    ('w/"abc"', None),  # RFC 9110 §8.8.3: the weakness indicator is case-sensitive "W/"
    (None, None),
])
def test_parse_etag(value, expected):
    assert parse_etag(value) == expected


def test_parse_etag_list_skips_invalid_members():
    # RFC 9110 §13.1.1: If-Match = "*" / #entity-tag; garbage members are skipped
    assert parse_etag_list(['"a", junk, W/"b"', '"c"']) == [
        (False, '"a"'), (True, '"b"'), (False, '"c"')]
