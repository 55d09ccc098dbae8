"""Release manifests: path rules (table), canonical id, diff."""

import hashlib
import json
import sys

import pytest

from owncdn.core.content import FileEntry, Manifest, ManifestError, check_path, diff, parse_manifest
from owncdn.core.content import manifest as manifest_module

A = "a" * 64
B = "b" * 64
C = "c" * 64


@pytest.mark.parametrize("path", [
    "index.html", "about/index.html", "a/b/c/d.txt", "..hidden", "a..b", ".well-known/x", "ünïcode/ß.html",
    "with space.txt", "x" * 1024,
    "nbsp\u00a0x", "c1\x85", "\ue000", "line\u2028sep", "soft\u00ad", "\U0001f600/\uffff",  # not isprintable: checked slowly
    "é" * 512,  # 1024 bytes
])
def test_valid_paths(path):
    assert check_path(path) is None


@pytest.mark.parametrize("path, why", [
    ("", "empty"),
    ("..", "'..'"),
    ("../etc/passwd", "'..'"),
    ("a/../../b", "'..'"),
    ("a/..", "'..'"),
    ("./a", "'.'"),
    ("a/./b", "'.'"),
    ("/etc/passwd", "relative"),
    ("/", "relative"),
    ("a\\b", "backslash"),
    ("..\\..\\windows", "backslash"),
    ("a//b", "empty segment"),
    ("a/", "empty segment"),
    ("a\x00b", "control"),
    ("a\nb", "control"),
    ("a\x7fb", "control"),
    ("\x1f", "control"),
    ("ü/\x00", "control"),
    ("é" * 513, "longer than"),
    ("a/./b\u00a0", "'.'"),
    ("\u00a0//", "empty segment"),
    ("x" * 1025, "longer than"),
    (None, "string"),
    (7, "string"),
])
def test_invalid_paths(path, why):
    assert why in check_path(path)


@pytest.mark.parametrize("files, why", [
    ({"a": {"sha256": "A" * 64, "size": 1}}, "lowercase hex"),
    ({"a": {"sha256": A[:63], "size": 1}}, "lowercase hex"),
    ({"a": {"sha256": A + "-b3", "size": 1}}, "lowercase hex"),
    ({"a": {"blob": A + "-b2", "size": 1}}, "BLAKE3 blob name"),
    ({"a": {"blob": "blake3:" + A, "size": 1}}, "BLAKE3 blob name"),
    ({"a": {"blob": A, "size": 1}}, "BLAKE3 blob name"),
    ({"a": {"blob": A + "-b3", "sha256": A, "size": 1}}, "an entry is"),
    ({"a": {"blob": A + "-b3", "size": -1}}, "size"),
    ({"a": {"sha256": A, "size": -1}}, "size"),
    ({"a": {"sha256": A, "size": 1.5}}, "size"),
    ({"a": {"sha256": A, "size": True}}, "size"),
    ({"a": {"sha256": A}}, "an entry is"),
    ({"a": {"sha256": A, "size": 1, "x": 1}}, "an entry is"),
    ({"a": A}, "an entry is"),
    ({"a": {"sha256": A, "size": 1}, "a/b": {"sha256": B, "size": 1}}, "also a directory"),
    ({"a/b": {"sha256": A, "size": 1}, "a/b/c/d": {"sha256": B, "size": 1}, "a/c": {"sha256": B, "size": 1}},
     "'a/b': is a file and also a directory"),  # a grandparent, beside a sibling of its parent
    ({"../x": {"sha256": A, "size": 1}}, "'..'"),
])
def test_invalid_entries(files, why):
    with pytest.raises(ManifestError) as err:
        parse_manifest({"files": files})
    assert why in str(err.value)


KNOWN = {"a": {"sha256": A, "size": 1}, "d/x": {"sha256": B, "size": 2}}


@pytest.mark.parametrize("files, why", [
    ({**KNOWN, "a": {"sha256": A, "size": True}}, "size"),
    ({**KNOWN, "a": {"sha256": A.upper(), "size": 1}}, "lowercase hex"),
    ({**KNOWN, "a": {"sha256": A, "size": 1, "x": 1}}, "an entry is"),
    ({**KNOWN, "d": {"sha256": C, "size": 3}}, "also a directory"),
    ({"a": KNOWN["a"], "d/x/y": {"sha256": C, "size": 3}, "d/x": KNOWN["d/x"]}, "also a directory"),
    ({**KNOWN, "../x": {"sha256": A, "size": 1}}, "'..'"),
])
def test_entries_not_in_the_known_manifest_are_checked(files, why):
    known = parse_manifest({"files": KNOWN})
    with pytest.raises(ManifestError) as err:
        parse_manifest({"files": files}, known)
    assert why in str(err.value)


def test_entries_the_known_manifest_holds_unchanged_are_taken_from_it():
    known = parse_manifest({"files": KNOWN})
    new = parse_manifest({"files": {**KNOWN, "d/x": {"sha256": C, "size": 3}, "e": {"sha256": A, "size": 1}}}, known)
    assert new.files["a"] is known.files["a"] and new.files["d/x"].sha256 == C and "e" in new.files
    assert new == parse_manifest({"files": {**KNOWN, "d/x": {"sha256": C, "size": 3}, "e": {"sha256": A, "size": 1}}})
    assert new.id == Manifest.build([("a", A, 1), ("d/x", C, 3), ("e", A, 1)]).id


@pytest.mark.parametrize("data", [None, [], {}, {"files": []}, {"files": {}, "x": 1}])
def test_invalid_shapes(data):
    with pytest.raises(ManifestError, match="a manifest is"):
        parse_manifest(data)


def test_every_problem_is_listed():
    with pytest.raises(ManifestError) as err:
        parse_manifest({"files": {"../a": {"sha256": A, "size": 1}, "/b": {"sha256": A, "size": 1}}})
    assert len(err.value.problems) == 2


def test_the_id_is_the_sha256_of_the_canonical_encoding_whatever_the_order():
    one = Manifest.build([("b.txt", B, 2), ("a.txt", A, 1)])
    two = parse_manifest({"files": {"a.txt": {"sha256": A, "size": 1}, "b.txt": {"sha256": B, "size": 2}}})
    assert one == two and one.id == two.id
    assert one.canonical() == b'{"files":{"a.txt":{"sha256":"' + A.encode() + b'","size":1},"b.txt":{"sha256":"' + B.encode() + b'","size":2}}}'
    assert parse_manifest(one.to_json()) == one
    assert list(one.files) == ["a.txt", "b.txt"]
    assert Manifest.build([("a.txt", A, 2)]).id != Manifest.build([("a.txt", A, 1)]).id


@pytest.mark.parametrize("files", [
    {"a.txt": 1},
    {'say "hi".html': 1, "plain": 2},  # the one character either encoder escapes (Rule 6)
    {"ünïcode/ß.html": 1, "z": 2, "é": 3, "日本/語.txt": 4},  # UTF-8, sorted by code point
    {"\uffff": 1, "\U0001f600": 2, "\ue000": 3, "~": 4},  # BMP above the surrogates, then astral
    {"with space.txt": 0, "x" * 1024: 7, "a'b": 9, "$&<>": 2**63},
    {"big": 2**64 + 1},  # beyond orjson's integers: the standard encoder
])
def test_the_canonical_encoding_is_the_same_with_orjson_and_json(files, monkeypatch):
    """Rule 6: orjson where loaded, json in `owncdn push`: the same bytes, the same id."""
    import orjson

    rows = [(path, (A if i % 2 else B) + ("-b3" if i % 3 else ""), size) for i, (path, size) in enumerate(files.items())]
    fast = Manifest.build(rows)
    assert sys.modules.get("orjson") is orjson
    encoded = fast.canonical()
    monkeypatch.setitem(sys.modules, "orjson", None)  # as in `owncdn push`: not imported
    slow = Manifest.build(rows)
    assert slow.canonical() == encoded == json.dumps(
        fast.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert slow.id == fast.id == hashlib.sha256(encoded).hexdigest()
    monkeypatch.setattr(manifest_module, "_quote", None)  # a Python without _json: json itself
    assert Manifest.build(rows).canonical() == encoded


@pytest.mark.parametrize("files", [
    {"a.txt": 1},
    {'say "hi".html': 1, "plain": 2},
    {"ünïcode/ß.html": 1, "z": 2, "é": 3, "日本/語.txt": 4},
    {"\uffff": 1, "\U0001f600": 2, "\ue000": 3, "~": 4},
    {"with space.txt": 0, "x" * 1024: 7, "a'b": 9, "$&<>": 2**63},
    {"big": 2**64 + 1},
])
def test_the_joined_encoding_of_blake3_names_only_is_the_same(files, monkeypatch):
    """Rule 6, its one-comprehension form (every name BLAKE3): the bytes json writes."""
    rows = [(path, (A if i % 2 else B) + "-b3", size) for i, (path, size) in enumerate(files.items())]
    monkeypatch.setitem(sys.modules, "orjson", None)
    made = Manifest.build(rows)
    assert made.canonical() == json.dumps(made.to_json(), sort_keys=True, separators=(",", ":"),
                                          ensure_ascii=False).encode()


@pytest.mark.parametrize("files", [
    {"a": FileEntry(A + "-b3", True)}, {"a": FileEntry(A + "-b3", 1.0)}, {"a": FileEntry(B + "-b3", 2**64 + 1)},
    {"a": FileEntry(A, True)}, {"a": FileEntry(A, 1.0)}, {"a": FileEntry(A, 2**64 + 1)},
    {"a": FileEntry('quote"d\\', 1)}, {"\x00\n\\": FileEntry(A + "-b3", 0)}, {"\u2028\ud7ff": FileEntry(A, 3)},
])
def test_a_manifest_built_unchecked_still_encodes_as_json_would(files, monkeypatch):
    """Rule 6's joined encoding holds for entries no check passed, too (or leaves them to json)."""
    monkeypatch.setitem(sys.modules, "orjson", None)
    made = Manifest(files)
    assert made.canonical() == json.dumps(made.to_json(), sort_keys=True, separators=(",", ":"),
                                          ensure_ascii=False).encode()


def test_blake3_and_sha256_names_in_one_manifest():
    """Rule 2: a push after BLAKE3 may keep blobs of an older one; a manifest stored
    before BLAKE3 keeps its encoding and its id."""
    legacy = Manifest.build([("a.txt", A, 1)])
    assert legacy.id == hashlib.sha256(b'{"files":{"a.txt":{"sha256":"' + A.encode() + b'","size":1}}}').hexdigest()
    mixed = parse_manifest({"files": {"a.txt": {"sha256": A, "size": 1}, "b.txt": {"blob": B + "-b3", "size": 2}}},
                           legacy)
    assert mixed.blobs == {A: 1, B + "-b3": 2} and parse_manifest(mixed.to_json()) == mixed
    assert mixed.to_json()["files"]["b.txt"] == {"blob": B + "-b3", "size": 2}  # one encoding per entry
    assert parse_manifest(mixed.to_json(), mixed) == mixed  # entries known unchanged, either field
    assert mixed.id == hashlib.sha256(mixed.canonical()).hexdigest()


def test_blobs_and_bytes():
    m = Manifest.build([("a", A, 5), ("copy/a", A, 5), ("b", B, 3)])
    assert m.blobs == {A: 5, B: 3}
    assert m.blobs is m.blobs  # made once: a 100,000-file manifest took about 20 ms each time
    assert m.total_bytes == 13


def test_diff_rows():
    old = Manifest.build([("keep", A, 1), ("change", B, 2), ("gone", C, 3)])
    new = Manifest.build([("keep", A, 1), ("change", C, 3), ("new", B, 2), ("renamed", A, 1)])
    d = diff(old, new)
    assert d.added == ("new", "renamed")
    assert d.changed == ("change",)
    assert d.removed == ("gone",)
    assert d.blobs_needed == {}  # every blob of new is held by old, under some path
    assert not d.unchanged


def test_diff_needs_only_new_content():
    old = Manifest.build([("a", A, 1)])
    new = Manifest.build([("a", B, 7)])
    assert diff(old, new).blobs_needed == {B: 7}
    assert diff(None, new).blobs_needed == {B: 7}
    assert diff(new, new).unchanged and diff(new, new).bytes_needed == 0
