"""Chunked bodies read without copies (core/http/chunked.py): rows of (bytes fed, split
points, expected data, done, where the body ended) and of malformed bodies."""

from __future__ import annotations

import pytest

from owncdn.core.http.chunked import MAX_LINE, ChunkedDecoder, ChunkedError

BODY = b"5\r\nhello\r\n6;name=value\r\n world\r\n0\r\n\r\n"

ROWS = [
    # (label, fed, split points, data, done, consumed of the whole)
    ("whole", BODY, [], b"hello world", True, len(BODY)),
    ("byte by byte", BODY, list(range(1, len(BODY))), b"hello world", True, len(BODY)),
    ("split in a size line", BODY, [1, 15], b"hello world", True, len(BODY)),
    ("split in a chunk's CRLF", BODY, [9, 10], b"hello world", True, len(BODY)),
    ("upper-case hex, bare LF", b"A\nabcdefghij\n0\n\n", [], b"abcdefghij", True, 16),
    ("trailer fields", b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n", [12], b"abc", True, 23),
    ("bytes after the end are not read", BODY + b"HTTP/1.1", [], b"hello world", True, len(BODY)),
    ("not ended yet", b"5\r\nhel", [], b"hel", False, 6),
    ("empty", b"0\r\n\r\n", [], b"", True, 5),
]


def feed_all(fed: bytes, splits: list[int]) -> tuple[bytes, bool, int, list]:
    decoder, data, used, pieces = ChunkedDecoder(), b"", 0, []
    bounds = [0, *splits, len(fed)]
    for start, end in zip(bounds, bounds[1:]):
        got, n = decoder.feed(memoryview(fed)[start:end])
        pieces += got
        data += b"".join(got)
        used += n
        if decoder.done:
            break
    return data, decoder.done, used, pieces


@pytest.mark.parametrize("label, fed, splits, data, done, used", ROWS, ids=[r[0] for r in ROWS])
def test_chunked_bodies(label, fed, splits, data, done, used):
    assert feed_all(fed, splits)[:3] == (data, done, used)


def test_data_comes_as_views_of_what_was_fed():
    buf = bytearray(BODY)
    pieces, _ = ChunkedDecoder().feed(memoryview(buf))
    assert all(isinstance(p, memoryview) and p.obj is buf for p in pieces)
    buf[3:8] = b"HELLO"  # a view, not a copy
    assert bytes(pieces[0]) == b"HELLO"


BAD = [
    ("no size", b"\r\nabc"),
    ("not hex", b"zz\r\n"),
    ("sign", b"-1\r\n"),
    ("too many digits", b"1" * 16 + b"\r\n"),
    ("data not followed by CRLF", b"3\r\nabcX\r\n"),
    ("size line too long", b"1" + b" " * MAX_LINE + b"\r\n"),
]


@pytest.mark.parametrize("label, fed", BAD, ids=[r[0] for r in BAD])
def test_malformed_bodies_raise(label, fed):
    with pytest.raises(ChunkedError):
        feed_all(fed, [])


def test_repr_says_where_it_is():
    decoder = ChunkedDecoder()
    decoder.feed(b"5\r\nhe")
    assert repr(decoder) == "<ChunkedDecoder data left=3>"
