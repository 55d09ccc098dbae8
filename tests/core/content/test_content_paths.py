"""owncdn.core.content.paths: request targets to release files, pretty URLs (rules 1-5)."""

from __future__ import annotations

import pytest

from owncdn.core.content.paths import BAD, NOT_FOUND, Redirect, Serve, decode_target, file_for, resolve

FILES = {
    "index.html", "about.html", "docs/index.html", "docs/intro.html", "blog/index.html", "blog.html",
    "style.css", "img/logo.png", "notes", "notes.html", "caf\u00e9.html", "a b/index.html",
}


@pytest.mark.parametrize("target, expected", [
    ("/", ("/", "")),
    ("/a/b?x=1&y", ("/a/b", "?x=1&y")),
    ("/caf%C3%A9", ("/caf\u00e9", "")),
    ("/a%20b/", ("/a b/", "")),
    # RFC 3986 §5.2.4: dot segments are removed
    ("/a/./b", ("/a/b", "")),
    ("/a/../b", ("/b", "")),
    ("/a/b/..", ("/a/", "")),
    ("/a/.", ("/a/", "")),
    ("/%2e%2e/etc/passwd", None),      # climbs above the root, encoded
    ("/../etc/passwd", None),
    ("/a/../../b", None),
    ("/%ff", None),                     # not UTF-8
    ("/a%00b", None),                   # NUL
    ("/a%0d%0ab", None),                # CR LF
    ("/a%5cb", None),                   # backslash
    ("/a%7fb", None),                   # DEL
    ("/a%c2%85b", ("/a\u0085b", "")),  # NEL: not printable, yet no C0 control nor DEL
    ("/a%c2%a0b", ("/a\u00a0b", "")),  # no-break space
    ("/.well-known/x", ("/.well-known/x", "")),  # a dot at a segment's start, not a dot segment
    ("/a/..b/.c", ("/a/..b/.c", "")),
    ("/a/%2E/b", ("/a/b", "")),
    ("*", None),
    ("http://x/", None),
])
def test_decode_target(target, expected):
    assert decode_target(target) == expected


@pytest.mark.parametrize("path, expected", [
    # Rule 3: canonical URLs are served
    ("/", Serve("index.html")),
    ("/about", Serve("about.html")),
    ("/docs/", Serve("docs/index.html")),
    ("/docs/intro", Serve("docs/intro.html")),
    ("/style.css", Serve("style.css")),
    ("/img/logo.png", Serve("img/logo.png")),
    ("/caf\u00e9", Serve("caf\u00e9.html")),
    # ... other spellings redirect to them with 308
    ("/index.html", Redirect("/")),
    ("/about.html", Redirect("/about")),
    ("/about/", Redirect("/about")),
    ("/docs", Redirect("/docs/")),
    ("/docs/index.html", Redirect("/docs/")),
    ("/docs/intro.html", Redirect("/docs/intro")),
    ("/a b", Redirect("/a%20b/")),
    # a file of the exact name wins over name.html; then name.html is canonical as itself
    ("/notes", Serve("notes")),
    ("/notes.html", Serve("notes.html")),
    # a page and a directory of the same name: /blog is the page, /blog/ the directory
    ("/blog", Serve("blog.html")),
    ("/blog/", Serve("blog/index.html")),
    ("/blog.html", Redirect("/blog")),
    # Rule 5
    ("/nope", NOT_FOUND),
    ("/nope/", NOT_FOUND),
    ("/img/", NOT_FOUND),
    ("/img", NOT_FOUND),
    ("//about", NOT_FOUND),
])
def test_pretty_urls(path, expected):
    assert resolve(path, "", FILES) == expected


@pytest.mark.parametrize("path, expected", [
    # Rule 2: without pretty URLs, names are exact; directories get their index
    ("/", Serve("index.html")),
    ("/about", NOT_FOUND),
    ("/about.html", Serve("about.html")),
    ("/docs/", Serve("docs/index.html")),
    ("/docs", Redirect("/docs/")),
    ("/docs/index.html", Serve("docs/index.html")),
    ("/about/", NOT_FOUND),
])
def test_plain_urls(path, expected):
    assert resolve(path, "", FILES, pretty=False) == expected


@pytest.mark.parametrize("path, pretty, expected", [
    # Rule 7: the file a path names in any spelling, without redirecting
    ("/index.html", True, "index.html"),
    ("/", True, "index.html"),
    ("/about", True, "about.html"),
    ("/about.html", True, "about.html"),
    ("/about/", True, "about.html"),
    ("/docs", True, "docs/index.html"),
    ("/docs/", True, "docs/index.html"),
    ("/notes", True, "notes"),          # the exact name first
    ("/blog", True, "blog.html"),       # then name.html, then name/index.html
    ("/nope", True, None),
    ("/img/", True, None),
    ("//about", True, None),
    ("/about", False, None),            # without pretty URLs: no .html added
    ("/about/", False, None),
    ("/docs", False, "docs/index.html"),
    ("/about.html", False, "about.html"),
])
def test_file_for(path, pretty, expected):
    assert file_for(path, FILES, pretty=pretty) == expected


def test_redirects_keep_the_query_string():
    assert resolve("/docs", "?page=2", FILES) == Redirect("/docs/?page=2")
    assert resolve("/about.html", "?a=b", FILES) == Redirect("/about?a=b")


def test_custom_index_name():
    files = {"index.htm", "d/index.htm"}
    assert resolve("/", "", files, index="index.htm") == Serve("index.htm")
    assert resolve("/d", "", files, index="index.htm") == Redirect("/d/")
    assert resolve("/d/index.htm", "", files, index="index.htm") == Redirect("/d/")


@pytest.mark.parametrize("pretty", [True, False])
def test_every_redirect_lands_on_a_file(pretty):
    """Rule 4: no chains, no loops, whatever the request."""
    from urllib.parse import unquote

    paths = {"/"} | {"/" + f for f in FILES}
    for f in FILES:
        paths |= {"/" + f.removesuffix(".html"), "/" + f.removesuffix("index.html"),
                  "/" + f.removesuffix("/index.html"), "/" + f + "/"}
    for path in paths:
        found = resolve(path, "", FILES, pretty=pretty)
        if type(found) is Redirect:
            again = resolve(unquote(found.location), "", FILES, pretty=pretty)
            assert type(again) is Serve, (path, found, again)


def test_bad_is_distinct_from_not_found():
    assert BAD is not NOT_FOUND and repr(BAD) == "BAD"


NFD_FILES = {"cafe\u0301.html", "re\u0301sume\u0301/index.html", "\u00fcber.html", "\u00fcber\u0308.html"}


@pytest.mark.parametrize("path, pretty, expected", [
    # Rule 6: a site pushed from a Mac (decomposed names) asked for in the composed form
    ("/caf\u00e9", True, Serve("cafe\u0301.html")),
    ("/caf\u00e9.html", False, Serve("cafe\u0301.html")),
    ("/caf\u00e9.html", True, Redirect("/cafe%CC%81")),  # its canonical URL, in the file's own form
    ("/r\u00e9sum\u00e9/", True, Serve("re\u0301sume\u0301/index.html")),
    ("/r\u00e9sum\u00e9", True, Redirect("/re%CC%81sume%CC%81/")),
    # ... and a composed name asked for decomposed
    ("/u\u0308ber", True, Serve("\u00fcber.html")),
    # a name that matches as written comes first
    ("/cafe\u0301", True, Serve("cafe\u0301.html")),
    ("/\u00fcber", True, Serve("\u00fcber.html")),
    ("/\u00fcber\u0308", True, Serve("\u00fcber\u0308.html")),
    # nothing in any form, and ASCII paths are asked once
    ("/na\u00efve", True, NOT_FOUND),
    ("/cafe", True, NOT_FOUND),
])
def test_a_path_is_looked_for_in_the_other_unicode_normal_forms(path, pretty, expected):
    assert resolve(path, "", NFD_FILES, pretty=pretty) == expected
