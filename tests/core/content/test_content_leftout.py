"""What a push leaves out (core/content/leftout.py), one row per case of its rules."""

import pytest

from owncdn.core.content.leftout import (HIDDEN, IGNORE_FILE, LeaveOut, check, from_ignore_file, is_hidden,
                                         parse_ignore)


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
    # Rule 2: anchored with a leading /, at any depth with no / at all
    (True, ("/drafts/**",), "/drafts/a.md", False, "/drafts/**"),
    (True, ("/drafts/**",), "/x/drafts/a.md", False, None),
    (True, ("/*.psd",), "/logo.psd", False, "/*.psd"),
    (True, ("/*.psd",), "/img/logo.psd", False, None),
    (True, ("*.map",), "/app.js.map", False, "*.map"),
    (True, ("*.map",), "/a/b/app.js.map", False, "*.map"),
    (True, ("*.map",), "/a/b/app.js", False, None),
    (True, ("*.map",), "/maps", True, None),
    # ... and with a / in its middle, anchored too (gitignore(5): "doc/frotz/" is not "a/doc/frotz")
    (True, ("src/*.ts",), "/src/a.ts", False, "src/*.ts"),
    (True, ("src/*.ts",), "/x/src/a.ts", False, None),
    (True, ("src/*.ts",), "/src/x/a.ts", False, None),  # * stays within one name
    (True, ("doc/frotz/",), "/doc/frotz", True, "doc/frotz/"),
    (True, ("doc/frotz/",), "/a/doc/frotz", True, None),
    (True, ("frotz/",), "/a/frotz", True, "frotz/"),  # a trailing / alone does not anchor
    (True, ("**/src/*.ts",), "/src/a.ts", False, "**/src/*.ts"),  # a leading **/: any depth
    (True, ("**/src/*.ts",), "/x/y/src/a.ts", False, "**/src/*.ts"),
    (True, ("**/foo/bar",), "/a/foo/bar", False, "**/foo/bar"),
    (True, ("**/foo/bar",), "/a/foo/x/bar", False, None),
    (True, ("abc/**",), "/abc/x/y.html", False, "abc/**"),  # a trailing /**: all inside
    (True, ("abc/**",), "/abc", True, None),
    (True, ("abc/**",), "/x/abc/y.html", False, None),
    (True, ("a/**/b",), "/a/b", False, "a/**/b"),  # a /**/: zero or more directories
    (True, ("a/**/b",), "/a/x/y/b", False, "a/**/b"),
    (True, ("a/**/b",), "/z/a/b", False, None),
    (True, ("foo/*",), "/foo/bar", True, "foo/*"),
    (True, ("foo/*",), "/foo/bar/hello.c", False, None),  # its directory is what matched
    (True, ("hello.*",), "/a/hello.c", False, "hello.*"),
    # ... "**" only as a whole segment; inside a name, a plain "*" ("Other consecutive asterisks")
    (True, ("a**b",), "/a-x-b", False, "a**b"),
    (True, ("a**b",), "/a/x/b", False, None),
    (True, ("/**.map",), "/app.js.map", False, "/**.map"),
    (True, ("/**.map",), "/js/app.js.map", False, None),
    (True, ("**",), "/a/b/c.html", False, "**"),
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
    # Rule 7: the last pattern that matches decides; a hidden name only when none does
    (True, ("*.md", "/drafts/**"), "/drafts/a.md", False, "/drafts/**"),
    (True, ("/drafts/**", "*.md"), "/drafts/a.md", False, "*.md"),
    (False, ("*.env",), "/.env", False, "*.env"),
    (False, ("*.md",), "/.git", True, HIDDEN),
    # Rule 5: an ignore file is never pushed, wherever it is; a directory of that name is only hidden
    (True, (), "/" + IGNORE_FILE, False, IGNORE_FILE),
    (True, (), "/a/" + IGNORE_FILE, False, IGNORE_FILE),
    (False, (), "/" + IGNORE_FILE, True, HIDDEN),
    (True, (), "/" + IGNORE_FILE, True, None),
    # Rule 8: composed and decomposed names are the same name
    (True, ("/caf\u00e9/**",), "/cafe\u0301/menu.html", False, "/caf\u00e9/**"),
    (True, ("/cafe\u0301/**",), "/caf\u00e9/menu.html", False, "/cafe\u0301/**"),
    (True, ("*.caf\u00e9",), "/a/b.cafe\u0301", False, "*.caf\u00e9"),
    (True, ("/caf\u00e9/**",), "/cafe/menu.html", False, None),
]


@pytest.mark.parametrize("hidden, patterns, path, is_dir, why", ROWS)
def test_why_a_path_is_left_out(hidden, patterns, path, is_dir, why):
    assert LeaveOut(hidden, patterns).why(path, is_dir) == why


def test_an_ignore_file_in_a_decomposed_directory_matches_composed_paths():
    below = LeaveOut(True).extended("cafe\u0301/", [(1, "/draft.md")])   # the walk's name, as a Mac wrote it
    assert below.why("/caf\u00e9/draft.md", False) == "cafe\u0301/.owncdnignore:1:/draft.md"
    assert below.why("/cafe\u0301/draft.md", False) == "cafe\u0301/.owncdnignore:1:/draft.md"


def test_nothing_is_left_out_only_with_hidden_names_and_no_pattern():
    assert LeaveOut(True).nothing and not LeaveOut(False).nothing and not LeaveOut(True, ["*.map"]).nothing
    assert not LeaveOut(True, ignored=[(1, "*.map")]).nothing
    assert not LeaveOut(True).extended("a/", [(1, "!b")]).nothing
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
    ("*.map\n!keep.map\n", [(1, "*.map"), (2, "!keep.map")]),  # Rule 7: kept as written
    ("\\#1.html\n\\!x\n", [(1, "\\#1.html"), (2, "\\!x")]),  # Rule 5: escaped, not a comment
]


@pytest.mark.parametrize("text, patterns", IGNORE_ROWS)
def test_an_ignore_file_gives_its_patterns_with_their_lines(text, patterns):
    assert parse_ignore(text) == patterns


@pytest.mark.parametrize("text, line, words", [
    ("*.map\n!\n", 2, "none follows"),
    ("a\n/\n", 2, "empty"),
    ("a\n!/\n", 2, "none follows"),
    ("../secrets\n", 1, "'..'"),
    ("*.map\n!../x.map\n", 2, "'..'"),
])
def test_an_ignore_file_line_that_cannot_be_used_is_refused_naming_it(text, line, words):
    with pytest.raises(ValueError) as exc:
        parse_ignore(text)
    assert str(exc.value).startswith(f"{IGNORE_FILE}:{line}: ") and words in str(exc.value)


# (ignored, path, is_dir, why): what Rules 2, 3, 5 and 7 make of an ignore file's patterns
IGNORED_ROWS = [
    ([(1, "*.map")], "/" + IGNORE_FILE, False, IGNORE_FILE),  # the file itself, whatever it says
    ([(1, "!.owncdnignore")], "/" + IGNORE_FILE, False, IGNORE_FILE),
    ([(3, "*.map")], "/js/app.js.map", False, IGNORE_FILE + ":3:*.map"),
    ([(1, "node_modules/")], "/node_modules", True, IGNORE_FILE + ":1:node_modules/"),
    ([(1, "node_modules/")], "/node_modules", False, None),
    ([(1, "/drafts")], "/drafts", True, IGNORE_FILE + ":1:/drafts"),
    ([(1, "/drafts")], "/a/drafts", True, None),
    ([(1, "*.md"), (2, "/drafts/**")], "/drafts/a.md", False, IGNORE_FILE + ":2:/drafts/**"),
    # Rule 7: "!" puts back what an earlier line left out; the last match decides
    ([(1, "*.map"), (2, "!keep.map")], "/js/keep.map", False, None),
    ([(1, "*.map"), (2, "!keep.map")], "/js/app.js.map", False, IGNORE_FILE + ":1:*.map"),
    ([(1, "!keep.map"), (2, "*.map")], "/js/keep.map", False, IGNORE_FILE + ":2:*.map"),
    ([(1, "build/*"), (2, "!build/keep.txt")], "/build/keep.txt", False, None),
    ([(1, "build/*"), (2, "!build/keep.txt")], "/build/other.txt", False, IGNORE_FILE + ":1:build/*"),
    ([(1, "build/*"), (2, "!build/keep.txt")], "/build", True, None),
    ([(1, "!.nojekyll")], "/.nojekyll", False, None),  # a hidden name put back
    ([(1, "!.nojekyll")], "/.env", False, HIDDEN),
    ([(1, "!.vite/")], "/.vite", True, None),
    ([(1, "!.vite/")], "/.vite", False, HIDDEN),  # a trailing / asks about directories only
    ([(1, "*.md"), (2, "!/README.md")], "/README.md", False, None),
    ([(1, "*.md"), (2, "!/README.md")], "/docs/README.md", False, IGNORE_FILE + ":1:*.md"),
    ([(1, "\\!x.html")], "/!x.html", False, IGNORE_FILE + ":1:\\!x.html"),  # Rule 5: escaped
    ([(1, "\\#1.html")], "/#1.html", False, IGNORE_FILE + ":1:\\#1.html"),
]


@pytest.mark.parametrize("ignored, path, is_dir, why", IGNORED_ROWS)
def test_why_an_ignore_file_leaves_a_path_out(ignored, path, is_dir, why):
    assert LeaveOut(False, (), ignored).why(path, is_dir) == why


def test_exclude_patterns_decide_after_the_ignore_files():
    """Rule 7: --exclude comes last, so no file puts back what it leaves out."""
    leave = LeaveOut(True, ["*.map"], [(1, "*.map")])
    assert leave.why("/a.map", False) == "*.map" and leave.why("/" + IGNORE_FILE, False) == IGNORE_FILE
    back = LeaveOut(True, ["*.map"], [(1, "!keep.map")]).extended("js/", [(1, "!*.map")])
    assert back.why("/js/keep.map", False) == "*.map"


# (top file, directory, its file, path, is_dir, why): Rule 6, a file below the top
NESTED_ROWS = [
    ([], "docs/", [(1, "/draft.md")], "/docs/draft.md", False, "docs/" + IGNORE_FILE + ":1:/draft.md"),
    ([], "docs/", [(1, "/draft.md")], "/draft.md", False, None),  # anchored at its own directory
    ([], "docs/", [(1, "/draft.md")], "/docs/a/draft.md", False, None),
    ([], "docs/", [(1, "*.map")], "/docs/a/b.map", False, "docs/" + IGNORE_FILE + ":1:*.map"),
    ([], "docs/", [(1, "*.map")], "/docs/b.map", False, "docs/" + IGNORE_FILE + ":1:*.map"),
    ([], "docs/", [(1, "*.map")], "/b.map", False, None),
    ([], "a/b/", [(2, "tmp/")], "/a/b/c/tmp", True, "a/b/" + IGNORE_FILE + ":2:tmp/"),
    ([], "a/b/", [(2, "tmp/")], "/a/tmp", True, None),
    ([], "docs/", [(1, "img/*.png")], "/docs/img/a.png", False, "docs/" + IGNORE_FILE + ":1:img/*.png"),
    ([], "docs/", [(1, "img/*.png")], "/docs/x/img/a.png", False, None),  # a middle / anchors it here
    ([], "docs/", [(1, "img/*.png")], "/img/a.png", False, None),
    ([], "docs/", [(1, "**/img/*.png")], "/docs/x/img/a.png", False, "docs/" + IGNORE_FILE + ":1:**/img/*.png"),
    # the deeper file decides after the top's, both ways
    ([(1, "*.map")], "docs/", [(1, "!keep.map")], "/docs/keep.map", False, None),
    ([(1, "*.map")], "docs/", [(1, "!keep.map")], "/keep.map", False, IGNORE_FILE + ":1:*.map"),
    ([(1, "!keep.map")], "docs/", [(1, "*.map")], "/docs/keep.map", False, "docs/" + IGNORE_FILE + ":1:*.map"),
    ([(1, "*.map")], "docs/", [(1, "*.txt")], "/docs/a.map", False, IGNORE_FILE + ":1:*.map"),
]


@pytest.mark.parametrize("top, where, below, path, is_dir, why", NESTED_ROWS)
def test_an_ignore_file_below_the_top_applies_below_its_directory(top, where, below, path, is_dir, why):
    leave = LeaveOut(True, (), top)
    before = repr(leave)
    assert leave.extended(where, below).why(path, is_dir) == why
    assert repr(leave) == before  # the top's is unchanged: it still decides beside that directory


@pytest.mark.parametrize("why, named", [
    (IGNORE_FILE, True), (IGNORE_FILE + ":3:*.map", True), ("docs/" + IGNORE_FILE + ":1:x", True),
    ("*.map", False), ("hidden", False), ("x" + IGNORE_FILE, False), (IGNORE_FILE + "x", False),
])
def test_which_reasons_name_an_ignore_file(why, named):
    assert from_ignore_file(why) is named


@pytest.mark.parametrize("pattern, words", [
    ("", "empty"), ("/", "empty"), ("//", "empty"), ("../x", "'..'"), ("/a/../b", "'..'"), ("a/..", "'..'"),
])
def test_patterns_that_cannot_be_used_are_refused_naming_them(pattern, words):
    with pytest.raises(ValueError) as exc:
        LeaveOut(False, [pattern])
    assert repr(pattern) in str(exc.value) and words in str(exc.value)


def test_patterns_are_kept_as_given():
    assert check(("/a/**", "*.map", "b/")) == ["/a/**", "*.map", "b/"]
