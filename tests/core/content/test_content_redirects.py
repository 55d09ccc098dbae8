"""owncdn.core.content.redirects: a pushed site's redirect rules (rules 1-6)."""

from __future__ import annotations

import pytest

from owncdn.core.content.redirects import find_redirect, find_rewrites, redirect_rule

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
    ("/a", "/b", 304, "status must be one of"),
    ("/a", "/b", 410, "status must be one of"),
    ("/a", "https://x.example/", 200, "a rewrite"),   # Rule 6: a path of the release
    ("/a", "/b?x=1", 200, "a rewrite"),
    ("/a", "/b#top", 404, "a rewrite"),
    ("/a", "/b\\c", 200, "a rewrite"),
    ("/a", "/b\x00", 200, "control characters"),
    ("/a", "/b/:splat", 200, "needs a 'from' ending in '/*'"),
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


SPA = (
    redirect_rule("/app/*", "/app/index.html", 200),
    redirect_rule("/app/*", "/never.html", 301),      # a redirect: tried by find_redirect only
    redirect_rule("/docs/*", "/docs/404.html", 404),
    redirect_rule("/v2/*", "/versions/2/:splat", 200),
    redirect_rule("/*", "/index.html", 200),
)


@pytest.mark.parametrize("path, expected", [
    # Rule 6: every rewrite that matches, in the order written; :splat as decoded
    ("/app/settings", [(200, "/app/index.html"), (200, "/index.html")]),
    ("/app", [(200, "/app/index.html"), (200, "/index.html")]),
    ("/docs/x/y", [(404, "/docs/404.html"), (200, "/index.html")]),
    ("/v2/caf\u00e9 menu", [(200, "/versions/2/caf\u00e9 menu"), (200, "/index.html")]),
    ("/other", [(200, "/index.html")]),
])
def test_find_rewrites(path, expected):
    assert find_rewrites(SPA, path) == expected


def test_redirects_and_rewrites_are_apart():
    assert find_redirect(SPA, "/app/x", "") == (301, "/never.html")   # the rewrite before it is passed over
    assert find_rewrites(RULES, "/old") == []
    assert redirect_rule("/a", "/my page.html", 200).target == "/my page.html"   # kept decoded: a file's path
