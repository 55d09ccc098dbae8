"""owncdn.core.content.redirects: a pushed site's redirect rules (rules 1-5)."""

from __future__ import annotations

import pytest

from owncdn.core.content.redirects import find_redirect, redirect_rule

RULES = (
    redirect_rule("/old", "/new"),
    redirect_rule("/blog/*", "/posts/:splat", 308),
    redirect_rule("/docs/*", "https://docs.example.com/:splat", 302),
    redirect_rule("/blog/special", "/never"),  # after the splat that covers it: never used
    redirect_rule("/search", "/find?engine=1", 307),
)


@pytest.mark.parametrize("path, query, expected", [
    ("/old", "", (301, "/new")),
    ("/old/", "", None),                          # exact means exact
    ("/older", "", None),
    ("/blog", "", (308, "/posts/")),              # a splat rule covers its prefix itself
    ("/blog/", "", (308, "/posts/")),
    ("/blog/2024/hello", "", (308, "/posts/2024/hello")),
    ("/blog/special", "", (308, "/posts/special")),  # Rule 3: first match wins
    ("/blogger", "", None),
    ("/docs/a b", "", (302, "https://docs.example.com/a%20b")),
    ("/old", "?x=1", (301, "/new?x=1")),          # Rule 4: the query goes along
    ("/blog/a", "?p=2", (308, "/posts/a?p=2")),
    ("/search", "?q=x", (307, "/find?engine=1")),  # ... unless the target has its own
    ("/", "", None),
])
def test_find_redirect(path, query, expected):
    assert find_redirect(RULES, path, query) == expected


@pytest.mark.parametrize("source, target, status, message", [
    ("old", "/new", 301, "'from' must be a path"),
    ("/a*", "/b", 301, "only end in '/*'"),
    ("/*/x", "/b", 301, "only end in '/*'"),
    ("/a?x=1", "/b", 301, "without a query"),
    ("/a", "new", 301, "'to' must be a path"),
    ("/a", "ftp://x/", 301, "'to' must be a path"),
    ("/a", "/b c", 301, "spaces"),
    ("/a", "/b/:splat", 301, "needs a 'from' ending in '/*'"),
    ("/a", "/b", 200, "status must be one of"),
    ("/a", "/b", 304, "status must be one of"),
])
def test_invalid_rules(source, target, status, message):
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("?", r"\?")):
        redirect_rule(source, target, status)


def test_targets_are_percent_encoded():
    rule = redirect_rule("/cafe", "/caf\u00e9?q=\u00fc")
    assert find_redirect((rule,), "/cafe", "") == (301, "/caf%C3%A9?q=%C3%BC")


def test_root_splat_matches_everything():
    rules = (redirect_rule("/*", "https://new.example/:splat", 301),)
    assert find_redirect(rules, "/", "") == (301, "https://new.example/")
    assert find_redirect(rules, "/a/b", "") == (301, "https://new.example/a/b")
