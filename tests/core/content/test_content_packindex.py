"""Pack index records (core/content/packindex.py): each row changes the bytes of an
index of three records and says which blobs are still read from it."""

from __future__ import annotations

import pytest

from owncdn.core.content.digest import digest
from owncdn.core.content.packindex import (
    HEADED, MAGIC, RECORD, SMALL_PACK, compactable, decode, encode, headed, small_to_merge,
)

A, B, C = (digest(x) for x in (b"a", b"bb", b"ccc"))
OLD = digest(b"old", "sha256")  # a SHA-256 name (64 hex digits, no suffix)
RECORDS = [(A, 0, 1), (B, 1, 2), (C, 3, 3)]
INDEX = MAGIC + b"".join(encode(*r) for r in RECORDS)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


@pytest.mark.parametrize("name, data, pack_size, expected", [
    ("intact", INDEX, None, {A: (0, 1), B: (1, 2), C: (3, 3)}),
    ("torn last record", INDEX[:-1], None, {A: (0, 1), B: (1, 2)}),
    ("torn after its name", INDEX[:-RECORD + 70], None, {A: (0, 1), B: (1, 2)}),
    ("only the magic", MAGIC, None, {}),
    ("torn magic", MAGIC[:5], None, {}),
    ("empty", b"", None, {}),
    ("another format", b"XXXXXXXX" + INDEX[8:], None, {}),
    ("a flipped offset in the middle", flip(INDEX, len(MAGIC) + RECORD + 70), None, {A: (0, 1), C: (3, 3)}),
    ("a flipped checksum", flip(INDEX, len(MAGIC) + RECORD - 1), None, {B: (1, 2), C: (3, 3)}),
    ("the pack ends inside the last blob", INDEX, 5, {A: (0, 1), B: (1, 2)}),
    ("the pack ends right after it", INDEX, 6, {A: (0, 1), B: (1, 2), C: (3, 3)}),
    ("a name twice keeps the first", INDEX + encode(A, 6, 1), None, {A: (0, 1), B: (1, 2), C: (3, 3)}),
    ("a SHA-256 name", MAGIC + encode(OLD, 0, 3), None, {OLD: (0, 3)}),
    ("not a blob name", MAGIC + encode("../etc/passwd", 0, 3), None, {}),
    ("a headed pack's: the flag is no blob", MAGIC + HEADED + INDEX[8:], None, {A: (0, 1), B: (1, 2), C: (3, 3)}),
])
def test_decode(name, data, pack_size, expected):
    assert decode(data, pack_size) == expected


@pytest.mark.parametrize("data, expected", [
    (MAGIC + HEADED + INDEX[8:], True),
    (MAGIC + HEADED, True),
    (INDEX, False),
    (MAGIC + INDEX[8:] + HEADED, False),  # only as the first record
    (HEADED, False),  # without the magic
    (MAGIC + HEADED[:-1], False),  # torn
])
def test_headed(data, expected):
    """Rule 1: a record named ``headed`` right after the magic; any index can be read
    without knowing it (the row of test_decode above)."""
    assert headed(data) is expected


def test_records_are_fixed_size():
    assert {len(encode(n, o, s)) for n, o, s in RECORDS + [(OLD, 1 << 40, 1 << 33)]} == {RECORD}


@pytest.mark.parametrize("live, size, expected", [(0, 10, True), (4, 10, True), (5, 10, False), (10, 10, False)])
def test_compactable_under_half(live, size, expected):
    assert compactable(live, size) is expected


@pytest.mark.parametrize("sizes, expected", [
    ({}, []),
    ({n: 100 for n in range(1, 16)}, []),  # 15 small packs: left alone
    ({n: 100 for n in range(1, 17)}, list(range(1, 17))),  # the 16th: merged
    ({n: SMALL_PACK - 1 for n in range(1, 17)}, list(range(1, 17))),
    ({**{n: SMALL_PACK for n in range(1, 17)}, 17: 5}, []),  # 1 MiB is not small
    ({**{n: 100 for n in range(20, 36)}, 3: 50 << 20}, list(range(20, 36))),  # big ones stay
    ({n: 1 for n in range(100, 0, -1)}, list(range(1, 65))),  # at most 64, the oldest
])
def test_small_packs_are_merged_sixteen_or_more_at_a_time(sizes, expected):
    assert small_to_merge(sizes) == expected
