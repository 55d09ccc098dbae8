"""Durations and byte sizes, as rows of (input, expected)."""

import pytest

from owncdn.core.config.units import format_duration, parse_byte_size, parse_duration

DURATIONS = [
    (30, 30.0), (1.5, 1.5), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
    ("1d", 86400.0), ("1w", 604800.0), ("1h30m", 5400.0), (" 10 ", 10.0), ("0s", 0.0), ("2.5s", 2.5),
]
BAD_DURATIONS = [
    (-1, "must not be negative"), ("-5s", "must not be negative"), ("5 parsecs", "expected a duration"),
    ("", "expected a duration"), ("s", "expected a duration"), (True, "expected a duration"),
    (float("nan"), "expected a duration"), (None, "expected a duration"), ("1h 30m", "expected a duration"),
]
SIZES = [
    (512, 512), ("512", 512), ("64KiB", 65536), ("256MiB", 256 * 2**20), ("1GiB", 2**30), ("1GB", 10**9),
    ("10kB", 10_000), ("10 KB", 10_000), ("1.5KiB", 1536), ("7B", 7), (2.0, 2),
]
BAD_SIZES = [
    (-1, "must not be negative"), ("-1KiB", "must not be negative"), ("lots", "expected a size"),
    (1.5, "whole number"), ("5XB", "expected a size"), (False, "expected a size"), ("KiB", "expected a size"),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "fragment"), BAD_DURATIONS)
def test_bad_duration(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), SIZES)
def test_byte_size(text, size):
    assert parse_byte_size(text) == size


@pytest.mark.parametrize(("text", "fragment"), BAD_SIZES)
def test_bad_byte_size(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_byte_size(text)


@pytest.mark.parametrize(("seconds", "text"), [(90, "1m30s"), (0, "0s"), (86400, "1d"), (0.5, "500ms"), (5400, "1h30m")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
