"""A manifest as its changes from another: what changes_between gives, what apply_changes
takes and refuses (table); the encoding edited from the base's (Rule 6, table)."""

import random

import pytest

from owncdn.core.content import FileEntry, Manifest, ManifestError, parse_manifest
from owncdn.core.content.changes import apply_changes, changes_between, encoded_as, path_changes, spliced

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


@pytest.mark.parametrize("changes", [
    {},
    {"index.html": entry(B, 2)},
    {"index.html": entry(A, 1)},                                  # named, but the same entry: no change
    {"old.txt": None, "about.html": entry(C, 3)},
    {"docs/a.html": None, "docs": entry(A, 1), "css/site.css": entry(B, 2)},
])
def test_changes_between_the_named_paths_are_the_changes_between_all(changes):
    new = apply_changes(BASE, changes)
    assert changes_between(BASE, new, changes) == changes_between(BASE, new)
    assert changes_between(BASE, new, reversed(list(changes))) == changes_between(BASE, new)


def test_changes_name_only_what_changed_in_a_manifest_parsed_against_the_one_before():
    doc = BASE.to_json()
    doc["files"]["index.html"] = entry(C, 7)
    new = parse_manifest(doc, BASE)
    assert changes_between(BASE, new) == {"index.html": entry(C, 7)}


# -- Rule 6: the encoding of base + changes, edited from the base's ------------------------
# Paths whose encoding could fool a search: a quote (escaped inside a key), a brace and
# a comma in a key, names equal to the wrapper's and the entries' own keys, non-ASCII.
TRICKY = ["a", "b", 'x"b', 'a"b', "a}b", 'c,"d":{', "files", "blob", "size", "sha256", "é/ü.html", "z"]


def _base(paths, sizes=1):
    return Manifest.build([(p, A if i % 2 else OLD_SHA, sizes + i) for i, p in enumerate(paths)])


@pytest.mark.parametrize("paths, changes", [
    (["a", "b", "z"], {"a": entry(C, 9)}),                        # the first entry replaced
    (["a", "b", "z"], {"b": entry(C, 9)}),                        # one in the middle
    (["a", "b", "z"], {"z": entry(C, 9)}),                        # the last
    (["a", "b", "z"], {"a": None}),                               # the first removed
    (["a", "b", "z"], {"b": None}),
    (["a", "b", "z"], {"z": None}),
    (["a"], {"a": None}),                                         # the only one: nothing left
    (["b", "z"], {"a": entry(C, 9)}),                             # added before the first
    (["a", "z"], {"b": entry(C, 9)}),                             # between two
    (["a", "b"], {"z": entry(C, 9)}),                             # after the last
    ([], {"a": entry(C, 9)}),                                     # into an empty manifest
    (["a", "b", "z"], {"a": None, "b": entry(C, 1), "c": entry(A, 2), "z": None}),  # several at once
    (["b", 'x"b'], {"b": entry(C, 9)}),                           # "b" also ends the key 'x"b'
    (["b", 'x"b'], {'x"b': None}),
    (['a"b', "b"], {"b": entry(C, 9)}),                           # '"b":{' inside the key before it
    (["a}b", "z"], {"a}b": entry(C, 9)}),                         # a brace in the key, not the entry's end
    (["a", 'c,"d":{', "z"], {"z": entry(C, 9)}),                  # a key that reads like the next one
    (["a", 'c,"d":{', "z"], {'c,"d":{': None}),
    (["blob", "files", "size", "sha256"], {"files": entry(C, 9), "size": None}),
    (["a", "é/ü.html"], {"é/ü.html": entry(C, 9), "ä": entry(B, 3)}),
    (["a", "b"], {"b": {"sha256": OLD_SHA, "size": 2**70}}),       # a size beyond 64 bits
])
def test_the_edited_encoding_is_the_canonical_one(paths, changes):
    base = _base(paths)
    base.canonical()
    new = apply_changes(base, changes)
    want = Manifest(dict(new.files)).canonical()
    assert spliced(base, new, changes) == want
    assert encoded_as(new, Manifest(dict(new.files)).id, base, changes) == want


def test_random_changes_edit_the_encoding_as_a_whole_encoding_gives_it():
    rnd = random.Random(6)
    names = [*TRICKY, "d/e", "d/f", "0", "-", "~"]
    for _ in range(500):
        base = _base(sorted(rnd.sample(names, rnd.randint(0, 8))), rnd.choice([0, 7, 2**65]))
        base.canonical()
        changes = {}
        for path in rnd.sample(names, rnd.randint(0, 5)):
            if path in base.files and rnd.random() < 0.5:
                changes[path] = None
            else:
                changes[path] = entry(rnd.choice([A, B, C]), rnd.randint(0, 99))
        try:
            new = apply_changes(base, changes)
        except ManifestError:  # a file and a directory of the same name ("d" and "d/e")
            continue
        assert spliced(base, new, changes) == Manifest(dict(new.files)).canonical(), (base.files, changes)


@pytest.mark.parametrize("text", [
    None,                                                    # no encoding held: nothing to edit
    b'{"files": {}}',                                        # not compact
    b'{"other":{}}',
])
def test_without_the_base_encoding_the_whole_manifest_is_encoded(text):
    base = _base(["a", "b"])
    new = apply_changes(base, {"b": entry(C, 9)})
    if text is not None:
        assert spliced(base, new, ["b"], text) is None
    want = Manifest(dict(new.files))
    assert encoded_as(new, want.id, base, ["b"], text) == want.canonical()


def test_a_base_encoding_of_other_entries_still_gives_the_canonical_one():
    base, other = _base(["a", "b"]), _base(["a", "b"], sizes=5)
    new = apply_changes(base, {"b": entry(C, 9)})
    edited = spliced(base, new, ["b"], other.canonical())
    want = Manifest(dict(new.files))
    assert edited is not None and edited != want.canonical()  # edited, but from the wrong bytes
    assert encoded_as(new, want.id, base, ["b"], other.canonical()) == want.canonical()  # Rule 3 decides
    with pytest.raises(ManifestError, match="not " + _base(["a"]).id[:12]):
        encoded_as(apply_changes(base, {"b": entry(C, 9)}), _base(["a"]).id, base, ["b"])


def test_the_changed_paths_alone_are_encoded_again():
    base = Manifest({f"d{i // 100}/p{i}.html": FileEntry(A, i) for i in range(1000)})
    text = base.canonical()
    new = apply_changes(base, {"d3/p300.html": entry(B, 1)})
    edited = spliced(base, new, ["d3/p300.html"])
    assert edited == Manifest(dict(new.files)).canonical()
    cut = text.index(b'"d3/p300.html"')
    assert edited[:cut] == text[:cut]  # the bytes before the change are the base's


@pytest.mark.parametrize("changes, want", [  # Rule 7: (changed, added, removed)
    ({}, ([], [], [])),
    ({"index.html": entry(B, 2)}, (["index.html"], [], [])),
    ({"old.txt": None}, ([], [], ["old.txt"])),
    ({"about.html": entry(C, 3), "docs/a.html": None, "css/site.css": entry(A, 1)},
     (["css/site.css"], ["about.html"], ["docs/a.html"])),
    ({"docs/a.html": None, "docs": entry(A, 1)}, ([], ["docs"], ["docs/a.html"])),  # a directory gone, a file in its place
    ({"old.txt": {"sha256": OLD_SHA, "size": 4}}, ([], [], [])),  # the same entry again: no change
])
def test_path_changes_sorts_the_paths_into_changed_added_and_removed(changes, want):
    assert path_changes(BASE, apply_changes(BASE, changes)) == want


def test_path_changes_from_nothing_adds_every_path():
    assert path_changes(None, BASE) == ([], ["css/site.css", "docs/a.html", "index.html", "old.txt"], [])
