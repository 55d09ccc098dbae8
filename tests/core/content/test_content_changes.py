"""A manifest as its changes from another: what changes_between gives, what apply_changes
takes and refuses (table)."""

import pytest

from owncdn.core.content import Manifest, ManifestError, parse_manifest
from owncdn.core.content.changes import apply_changes, changes_between, encoded_as

A, B, C = "a" * 64 + "-b3", "b" * 64 + "-b3", "c" * 64 + "-b3"
OLD_SHA = "d" * 64

BASE = Manifest.build([("index.html", A, 1), ("css/site.css", B, 2), ("docs/a.html", C, 3),
                       ("old.txt", OLD_SHA, 4)])


def entry(name, size):
    return {"blob": name, "size": size}


@pytest.mark.parametrize("changes, files", [
    ({}, {"index.html": (A, 1), "css/site.css": (B, 2), "docs/a.html": (C, 3), "old.txt": (OLD_SHA, 4)}),
    ({"index.html": entry(B, 2)},
     {"index.html": (B, 2), "css/site.css": (B, 2), "docs/a.html": (C, 3), "old.txt": (OLD_SHA, 4)}),
    ({"old.txt": None}, {"index.html": (A, 1), "css/site.css": (B, 2), "docs/a.html": (C, 3)}),
    ({"about.html": entry(C, 3), "docs/a.html": None},
     {"index.html": (A, 1), "css/site.css": (B, 2), "about.html": (C, 3), "old.txt": (OLD_SHA, 4)}),
    ({"old.txt": {"sha256": OLD_SHA, "size": 5}},  # an older entry keeps its SHA-256 form
     {"index.html": (A, 1), "css/site.css": (B, 2), "docs/a.html": (C, 3), "old.txt": (OLD_SHA, 5)}),
    ({"docs/a.html": None, "docs": entry(A, 1)},  # a directory gone, a file in its place
     {"index.html": (A, 1), "css/site.css": (B, 2), "docs": (A, 1), "old.txt": (OLD_SHA, 4)}),
])
def test_applied_changes_give_the_manifest_with_them(changes, files):
    want = Manifest.build([(path, name, size) for path, (name, size) in files.items()])
    got = apply_changes(BASE, changes)
    assert got == want
    assert encoded_as(got, want.id) == want.canonical()  # the same order: the same id
    assert got.id == want.id
    assert list(got.files) == sorted(got.files)


@pytest.mark.parametrize("changes, why", [
    ([], "changes are"),
    ({"missing.html": None}, "base release has no such file"),
    ({"../etc/passwd": entry(A, 1)}, "'..'"),
    ({"/abs": entry(A, 1)}, "relative"),
    ({"a\\b": entry(A, 1)}, "backslash"),
    ({"x.html": entry("f" * 64 + "-b3", -1)}, "size must be"),
    ({"x.html": entry("nothex", 1)}, "BLAKE3"),
    ({"x.html": {"blob": A}}, "an entry is"),
    ({"x.html": {"blob": A, "sha256": OLD_SHA, "size": 1}}, "an entry is"),
    ({"index.html/inner": entry(A, 1)}, "'index.html': is a file and also a directory"),
    ({"css": entry(A, 1)}, "'css': is a file and also a directory"),
    ({"docs/a.html/x/y": entry(A, 1)}, "'docs/a.html': is a file"),
])
def test_bad_changes_are_refused_with_the_reason(changes, why):
    with pytest.raises(ManifestError) as caught:
        apply_changes(BASE, changes)
    assert why in str(caught.value)


def test_changes_applied_to_another_base_do_not_pass_for_the_release():
    new = Manifest.build([*((p, e.sha256, e.size) for p, e in BASE.files.items()), ("new.html", A, 1)])
    changes = changes_between(BASE, new)
    assert encoded_as(apply_changes(BASE, changes), new.id) == new.canonical()
    other = Manifest.build([("index.html", A, 1)])
    with pytest.raises(ManifestError, match="not " + new.id[:12]):
        encoded_as(apply_changes(other, changes), new.id)


@pytest.mark.parametrize("files", [
    {"index.html": (A, 1), "css/site.css": (B, 2), "docs/a.html": (C, 3), "old.txt": (OLD_SHA, 4)},
    {"index.html": (B, 9), "css/site.css": (B, 2), "docs/a.html": (C, 3), "old.txt": (OLD_SHA, 4)},
    {"index.html": (A, 1)},
    {"z/new.html": (A, 1), "a.html": (B, 2)},
    {},
])
def test_changes_between_round_trips(files):
    new = Manifest.build([(path, name, size) for path, (name, size) in files.items()])
    changes = changes_between(BASE, new)
    assert encoded_as(apply_changes(BASE, changes), new.id) == new.canonical()
    unchanged = [p for p in files if p in BASE.files and BASE.files[p] == new.files[p]]
    assert not set(unchanged) & set(changes)


def test_changes_name_only_what_changed_in_a_manifest_parsed_against_the_one_before():
    doc = BASE.to_json()
    doc["files"]["index.html"] = entry(C, 7)
    new = parse_manifest(doc, BASE)
    assert changes_between(BASE, new) == {"index.html": entry(C, 7)}
