"""Blob retention, pure: which releases keep their blobs, which blobs go (rows of cases)."""

import pytest

from owncdn.core.content.retention import (
    BlobInfo, Retention, manifest_blobs, plan_collection, retained_numbers, retained_releases,
)


@pytest.mark.parametrize("numbers, current, serving, keep, expected", [
    ([1, 2, 3], 3, [], 10, {1, 2, 3}),  # fewer than keep: all
    ([1, 2, 3, 4, 5], 5, [], 2, {4, 5}),  # the newest two
    ([1, 2, 3, 4, 5], 1, [], 2, {1, 4, 5}),  # rolled back to 1: it stays
    ([1, 2, 3, 4, 5], 5, [2, None], 2, {2, 4, 5}),  # a node still serves 2
    ([1, 2, 3, 4, 5], 5, [9], 1, {5}),  # a number that does not exist is ignored
    ([1, 2, 3], None, [], 1, {3}),  # no current pointer
    ([], None, [], 3, set()),
    ([7, 3, 5], 3, [], 1, {3, 7}),  # order given does not matter
])
def test_retained_numbers(numbers, current, serving, keep, expected):
    assert retained_numbers(numbers, current, serving, keep) == expected


def test_retained_releases_per_env_and_service():
    numbers = {("production", "blog"): [1, 2, 3], ("staging", "blog"): [1, 2, 3], ("production", "docs"): [1, 2]}
    current = {("production", "blog"): 3, ("staging", "blog"): 1}
    serving = {("production", "docs"): {1}}
    assert retained_releases(numbers, current, serving, 1) == {
        ("production", "blog"): {3}, ("staging", "blog"): {1, 3}, ("production", "docs"): {1, 2}}


NOW = 100_000.0
OLD, YOUNG = NOW - 7200, NOW - 60


@pytest.mark.parametrize("stored, referenced, grace, delete, freed, held, young", [
    ({"a": (10, OLD), "b": (20, OLD)}, {"a"}, 3600, ("b",), 20, 1, 0),  # unreferenced and old: goes
    ({"a": (10, OLD), "b": (20, YOUNG)}, {"a"}, 3600, (), 0, 1, 1),  # young: an in-flight push may need it
    ({"a": (10, YOUNG)}, {"a"}, 3600, (), 0, 1, 0),  # referenced: kept whatever its age
    ({"b": (5, OLD), "c": (7, OLD)}, set(), 3600, ("b", "c"), 12, 0, 0),
    ({"b": (5, NOW - 3600)}, set(), 3600, (), 0, 0, 1),  # exactly at the cutoff: kept
    ({"b": (5, OLD)}, set(), 8000, (), 0, 0, 1),  # a longer grace keeps it
    ({}, {"a"}, 3600, (), 0, 0, 0),  # a referenced blob not stored changes nothing
])
def test_plan_collection(stored, referenced, grace, delete, freed, held, young):
    plan = plan_collection({k: BlobInfo(size=s, mtime=m) for k, (s, m) in stored.items()}, referenced, NOW, grace)
    assert (plan.delete, plan.delete_bytes, plan.referenced, plan.young) == (delete, freed, held, young)


@pytest.mark.parametrize("keep, grace, message", [
    (0, 3600, "keep 0"),
    (5, 10, "grace 10 s"),
])
def test_retention_refuses_what_would_break_pushes(keep, grace, message):
    with pytest.raises(ValueError, match=message):
        Retention(keep=keep, grace=grace)


def test_manifest_blobs():
    m = {"files": {"a.html": {"sha256": "1" * 64, "size": 1}, "b.html": {"sha256": "1" * 64, "size": 1},
                   "c.css": {"sha256": "2" * 64, "size": 2}}}
    assert manifest_blobs(m) == {"1" * 64, "2" * 64}
    assert manifest_blobs({}) == set()
