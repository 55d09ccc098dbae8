"""What a push leaves out (core/content/leftout.py), one row per case of its rules."""

import pytest

from owncdn.core.content.leftout import HIDDEN, LeaveOut, check, is_hidden


@pytest.mark.parametrize("name, hidden", [
    (".git", True), (".env", True), (".DS_Store", True), (".index.html.swp", True), ("..", True),
    (".well-known", False),  # Rule 1: RFC 8615
    (".well-known2", True), ("well-known", False), ("index.html", False), ("a.b", False), ("_next", False),
    ("-", False), ("", False),
])
def test_which_names_are_hidden(name, hidden):
    assert is_hidden(name) is hidden


# (hidden, patterns, path, is_dir, why)
ROWS = [
    # Rule 1: hidden names, files and directories, at any depth, unless hidden is asked for
    (False, (), "/.env", False, HIDDEN),
    (False, (), "/.git", True, HIDDEN),
    (False, (), "/docs/.DS_Store", False, HIDDEN),
    (False, (), "/.well-known", True, None),
    (False, (), "/.well-known/security.txt", False, None),
    (False, (), "/a/.well-known", True, None),
    (False, (), "/index.html", False, None),
    (False, (), "/a.b/c", False, None),  # only the last name is asked: its parents were asked before
    (True, (), "/.env", False, None),
    (True, (), "/.git", True, None),
    # Rule 2: anchored with a leading /, at any depth without one
    (True, ("/drafts/**",), "/drafts/a.md", False, "/drafts/**"),
    (True, ("/drafts/**",), "/x/drafts/a.md", False, None),
    (True, ("/*.psd",), "/logo.psd", False, "/*.psd"),
    (True, ("/*.psd",), "/img/logo.psd", False, None),
    (True, ("*.map",), "/app.js.map", False, "*.map"),
    (True, ("*.map",), "/a/b/app.js.map", False, "*.map"),
    (True, ("*.map",), "/a/b/app.js", False, None),
    (True, ("*.map",), "/maps", True, None),
    (True, ("src/*.ts",), "/src/a.ts", False, "src/*.ts"),
    (True, ("src/*.ts",), "/x/src/a.ts", False, "src/*.ts"),
    (True, ("src/*.ts",), "/src/x/a.ts", False, None),  # * stays within one name
    (True, ("?.txt",), "/a.txt", False, "?.txt"),
    (True, ("?.txt",), "/ab.txt", False, None),
    (True, ("Thumbs.db",), "/a/thumbs.db", False, None),  # case-sensitive
    # Rule 2: a trailing / matches directories only
    (True, ("node_modules/",), "/node_modules", True, "node_modules/"),
    (True, ("node_modules/",), "/a/node_modules", True, "node_modules/"),
    (True, ("node_modules/",), "/node_modules", False, None),
    # Rule 3: a pattern matching a directory's path leaves the directory out
    (True, ("/drafts",), "/drafts", True, "/drafts"),
    (True, ("/drafts",), "/drafts", False, "/drafts"),
    (True, ("node_modules",), "/lib/node_modules", True, "node_modules"),
    (True, ("/drafts/**",), "/drafts", True, None),  # ... its files are then left out one by one
    # patterns are asked in order; hidden comes first
    (True, ("*.md", "/drafts/**"), "/drafts/a.md", False, "*.md"),
    (False, ("*.env",), "/.env", False, HIDDEN),
]


@pytest.mark.parametrize("hidden, patterns, path, is_dir, why", ROWS)
def test_why_a_path_is_left_out(hidden, patterns, path, is_dir, why):
    assert LeaveOut(hidden, patterns).why(path, is_dir) == why


def test_nothing_is_left_out_only_with_hidden_names_and_no_pattern():
    assert LeaveOut(True).nothing and not LeaveOut(False).nothing and not LeaveOut(True, ["*.map"]).nothing


@pytest.mark.parametrize("pattern, words", [
    ("", "empty"), ("/", "empty"), ("//", "empty"), ("../x", "'..'"), ("/a/../b", "'..'"), ("a/..", "'..'"),
])
def test_patterns_that_cannot_be_used_are_refused_naming_them(pattern, words):
    with pytest.raises(ValueError) as exc:
        LeaveOut(False, [pattern])
    assert repr(pattern) in str(exc.value) and words in str(exc.value)


def test_patterns_are_kept_as_given():
    assert check(("/a/**", "*.map", "b/")) == ["/a/**", "*.map", "b/"]
