"""Time windows and buckets of the stats API, with `now` passed in."""

import pytest

from owncdn.core.logs.window import bucket_seconds, parse_instant, window

NOW = 1_800_000_000.0


@pytest.mark.parametrize("text,expected", [
    ("1h", NOW - 3600),
    ("15m", NOW - 900),
    ("30s", NOW - 30),
    ("7d", NOW - 7 * 86400),
    ("1.5h", NOW - 5400),
    ("1700000000", 1_700_000_000.0),
    ("2026-11-20T10:00:00Z", 1_795_168_800.0),
    ("2026-11-20T11:00:00+01:00", 1_795_168_800.0),
    ("2026-11-20T10:00:00", 1_795_168_800.0),  # no offset: UTC
])
def test_instants(text, expected):
    assert parse_instant(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "1y", "", "-1h"])
def test_bad_instants_say_what_is_expected(text):
    with pytest.raises(ValueError, match="expected"):
        parse_instant(text, NOW)


@pytest.mark.parametrize("since,start,end,expected", [
    (None, None, None, (NOW - 3600, NOW)),
    ("1d", None, None, (NOW - 86400, NOW)),
    ("1d", "2h", None, (NOW - 7200, NOW)),  # start wins over since
    (None, "2h", "1h", (NOW - 7200, NOW - 3600)),
])
def test_windows(since, start, end, expected):
    assert window(NOW, since, start, end) == expected


def test_an_end_before_the_start_is_refused():
    with pytest.raises(ValueError, match="before the start"):
        window(NOW, start="1h", end="2h")


@pytest.mark.parametrize("bucket,seconds", [("1m", 60), ("1h", 3600), ("1d", 86400)])
def test_buckets(bucket, seconds):
    assert bucket_seconds(bucket) == seconds


def test_an_unknown_bucket_names_the_known_ones():
    with pytest.raises(ValueError, match="1m, 1h, 1d"):
        bucket_seconds("5m")
