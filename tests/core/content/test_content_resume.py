"""Tests for owncdn.core.content.resume: where a resumed blob upload begins (RFC 9110 §14.5)."""

from __future__ import annotations

import pytest

from owncdn.core.content.resume import ResumeError, resumed_at


@pytest.mark.parametrize("content_range, length, expected", [
    (None, 1234, (0, 1234)),  # Rule 1: the whole blob
    (None, 0, (0, 0)),
    ("bytes 500-1233/1234", 734, (500, 1234)),  # Rule 2: the rest of a blob of 1,234 bytes
    ("bytes 0-1233/1234", 1234, (0, 1234)),  # from the start: the whole blob, said so
    ("bytes 1233-1233/1234", 1, (1233, 1234)),  # its last byte
])
def test_where_the_body_begins(content_range, length, expected):
    assert resumed_at(content_range, length) == expected


@pytest.mark.parametrize("content_range, length, says", [
    ("bytes 500-999/1234", 500, "stops before the blob's end"),
    ("bytes 500-1233/*", 734, "does not say the blob's size"),
    ("bytes */1234", 0, "names no bytes"),
    ("bytes 500-1233/1234", 733, "covers 734 bytes, but the body has 733"),
    ("bytes 500-1233/1234", 735, "covers 734 bytes, but the body has 735"),
    ("bytes 500-1234/1234", 735, "not a valid byte range"),  # §14.4: complete-length past last-pos
    ("bytes 900-500/1234", 0, "not a valid byte range"),
    ("bytes=500-", 734, "not a valid byte range"),  # a Range, not a Content-Range
    ("items 500-1233/1234", 734, "not a valid byte range"),
])
def test_what_a_resumed_upload_cannot_say(content_range, length, says):
    with pytest.raises(ResumeError, match=says):
        resumed_at(content_range, length)
