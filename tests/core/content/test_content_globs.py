"""owncdn.core.content.globs: path patterns of header rules (rules 1-3)."""

from __future__ import annotations

import pytest

from owncdn.core.content.globs import compile_glob, header_rule, headers_for


@pytest.mark.parametrize("pattern, path, matches", [
    ("/assets/**", "/assets/app.3f2a.js", True),
    ("/assets/**", "/assets/img/a.png", True),
    ("/assets/**", "/assets", False),
    ("/assets/**", "/assetsx/a", False),
    ("/*.css", "/style.css", True),
    ("/*.css", "/css/style.css", False),             # * stays within a segment
    ("/**/*.css", "/style.css", True),               # /**/ also matches a single /
    ("/**/*.css", "/a/b/style.css", True),
    ("/**/*.css", "/a/b/style.css.map", False),      # the whole path must match
    ("/a/**/b", "/a/b", True),
    ("/a/**/b", "/a/x/y/b", True),
    ("/img/?.png", "/img/1.png", True),
    ("/img/?.png", "/img/12.png", False),
    ("/img/?.png", "/img//.png", False),
    ("/about", "/about", True),
    ("/about", "/about/", False),
    ("/a+b(1).txt", "/a+b(1).txt", True),            # regex characters are literal
    ("/a.txt", "/aXtxt", False),
    ("/**", "/anything/at/all", True),
])
def test_glob(pattern, path, matches):
    assert bool(compile_glob(pattern).fullmatch(path)) is matches


def test_patterns_must_be_absolute():
    with pytest.raises(ValueError, match="starts with '/'"):
        compile_glob("*.css")


def test_later_rules_replace_earlier_fields():
    rules = (
        header_rule("/**", {"X-Frame-Options": "DENY", "Cache-Control": "no-cache"}),
        header_rule("/assets/**", {"Cache-Control": "public, max-age=31536000, immutable"}),
    )
    assert headers_for(rules, "/assets/a.js") == {
        "x-frame-options": "DENY", "cache-control": "public, max-age=31536000, immutable"}
    assert headers_for(rules, "/index.html") == {"x-frame-options": "DENY", "cache-control": "no-cache"}
    assert headers_for((), "/x") == {}
