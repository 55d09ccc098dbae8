"""owncdn.core.content.globs: path patterns of header rules (rules 1-4)."""

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
    rule = header_rule(pattern, {"X-A": "b"})                     # Rule 4: RE2 matches the same
    assert (headers_for((rule,), path) == {"x-a": "b"}) is matches


def test_header_rules_match_in_linear_time():
    """Rule 4: with Python's re this pattern took 15 s against this path (backtracking)."""
    rule = header_rule("/**/a/**/a/**/b", {"X-A": "b"})
    assert type(rule.regex).__module__.startswith("re2")
    assert headers_for((rule,), "/a" * 2000) == {} and headers_for((rule,), "/a/x/a/y/b") == {"x-a": "b"}


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
