"""Traces: the seeded Zipf generator, the line parser, and replay's counting."""

import pytest

from owncdn.core.cache import LRU, S3FIFO
from owncdn.core.cache.trace import KIB, MIB, Trace, parse_trace, replay, zipf_trace


def test_zipf_trace_is_seeded_and_bounded():
    a = zipf_trace(5000, 500, alpha=0.9, seed=7)
    assert a == zipf_trace(5000, 500, alpha=0.9, seed=7)
    assert a != zipf_trace(5000, 500, alpha=0.9, seed=8)
    assert len(a) == 5000 and a.distinct() <= 500
    assert all(KIB <= s <= 10 * MIB for s in a.sizes)
    sizes = {}
    for key, size in zip(a.keys, a.sizes):
        assert sizes.setdefault(key, size) == size, "one size per object"


def test_zipf_trace_has_one_hit_wonders_and_a_hot_head():
    trace = zipf_trace(20_000, 5000, alpha=0.9, seed=1)
    counts = {}
    for key in trace.keys:
        counts[key] = counts.get(key, 0) + 1
    assert sum(c == 1 for c in counts.values()) > 0.3 * len(counts)
    assert max(counts.values()) > 100


@pytest.mark.parametrize("lines, keys, sizes", [
    (["1 a 100", "2 b 200"], ["a", "b"], [100, 200]),
    (["a 100", "b\t200"], ["a", "b"], [100, 200]),
    (["# header", "", "3 a 5 extra"], ["a"], [5]),
])
def test_parse_trace(lines, keys, sizes):
    assert parse_trace(lines) == Trace(keys, sizes)


@pytest.mark.parametrize("line, message", [
    ("lonely", "line 1: expected 'time id size' or 'id size'"),
    ("a big", "line 1: size 'big' is not an integer"),
])
def test_parse_trace_errors_name_the_line(line, message):
    with pytest.raises(ValueError, match=message):
        parse_trace([line])


@pytest.mark.parametrize("make", [LRU, S3FIFO])
def test_replay_counts_objects_and_bytes(make):
    trace = Trace(["a", "b", "a", "c", "a"], [10, 20, 10, 500, 10])
    result = replay(make(100), trace)
    assert (result.requests, result.misses, result.bytes, result.miss_bytes) == (5, 3, 550, 530)
    assert result.miss_ratio == 0.6 and result.byte_miss_ratio == 530 / 550


def test_footprint_counts_distinct_objects_once():
    assert Trace(["a", "b", "a"], [10, 20, 10]).footprint() == 30
