"""What a push leaves out (core/content/leftout.py), one row per case of its rules."""

import pytest

from owncdn.core.content.leftout import HIDDEN, IGNORE_FILE, LeaveOut, check, is_hidden, parse_ignore


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
    assert not LeaveOut(True, ignore_file=True).nothing  # the file itself, even with no pattern in it
    assert not LeaveOut(True, ignored=[(1, "*.map")]).nothing
    assert not LeaveOut(False).matching and LeaveOut(False, ignored=[(1, "a")]).matching


# Rule 5: (text, patterns with their line numbers)
IGNORE_ROWS = [
    ("", []),
    ("\n\n  \n", []),
    ("*.map\n", [(1, "*.map")]),
    ("# drafts are not for the edges\n/drafts/**\n\nnode_modules/\n", [(2, "/drafts/**"), (4, "node_modules/")]),
    ("  *.psd  \r\n\t/tmp/**\t\n", [(1, "*.psd"), (2, "/tmp/**")]),  # spaces around dropped; CRLF lines
    ("a\n  # an indented comment\nb", [(1, "a"), (3, "b")]),  # the last line needs no newline
    ("a#b\n", [(1, "a#b")]),  # '#' starts a comment only at a line's start
]


@pytest.mark.parametrize("text, patterns", IGNORE_ROWS)
def test_an_ignore_file_gives_its_patterns_with_their_lines(text, patterns):
    assert parse_ignore(text) == patterns


@pytest.mark.parametrize("text, line, words", [
    ("*.map\n!keep.map\n", 2, "'!'"),
    ("a\n/\n", 2, "empty"),
    ("../secrets\n", 1, "'..'"),
])
def test_an_ignore_file_line_that_cannot_be_used_is_refused_naming_it(text, line, words):
    with pytest.raises(ValueError) as exc:
        parse_ignore(text)
    assert str(exc.value).startswith(f"{IGNORE_FILE}:{line}: ") and words in str(exc.value)


# (ignored, path, is_dir, why): what Rules 2, 3 and 5 make of an ignore file's patterns
IGNORED_ROWS = [
    ([], "/" + IGNORE_FILE, False, IGNORE_FILE),  # the file itself, before the hidden names
    ([], "/" + IGNORE_FILE, True, HIDDEN),  # a directory of that name is only hidden
    ([], "/a/" + IGNORE_FILE, False, HIDDEN),  # only the top's is the push's own
    ([(3, "*.map")], "/js/app.js.map", False, IGNORE_FILE + ":3:*.map"),
    ([(1, "node_modules/")], "/node_modules", True, IGNORE_FILE + ":1:node_modules/"),
    ([(1, "node_modules/")], "/node_modules", False, None),
    ([(1, "/drafts")], "/drafts", True, IGNORE_FILE + ":1:/drafts"),
    ([(1, "/drafts")], "/a/drafts", True, None),
    ([(1, "*.md"), (2, "/drafts/**")], "/drafts/a.md", False, IGNORE_FILE + ":1:*.md"),
]


@pytest.mark.parametrize("ignored, path, is_dir, why", IGNORED_ROWS)
def test_why_an_ignore_file_leaves_a_path_out(ignored, path, is_dir, why):
    assert LeaveOut(False, (), ignored, ignore_file=True).why(path, is_dir) == why


def test_exclude_patterns_are_asked_before_the_ignore_file():
    leave = LeaveOut(True, ["*.map"], [(1, "*.map")], ignore_file=True)
    assert leave.why("/a.map", False) == "*.map" and leave.why("/" + IGNORE_FILE, False) == IGNORE_FILE
    assert LeaveOut(True).why("/" + IGNORE_FILE, False) is None  # a directory without the file: pushed


@pytest.mark.parametrize("pattern, words", [
    ("", "empty"), ("/", "empty"), ("//", "empty"), ("../x", "'..'"), ("/a/../b", "'..'"), ("a/..", "'..'"),
])
def test_patterns_that_cannot_be_used_are_refused_naming_them(pattern, words):
    with pytest.raises(ValueError) as exc:
        LeaveOut(False, [pattern])
    assert repr(pattern) in str(exc.value) and words in str(exc.value)


def test_patterns_are_kept_as_given():
    assert check(("/a/**", "*.map", "b/")) == ["/a/**", "*.map", "b/"]
