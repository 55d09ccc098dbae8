"""owncdn.core.content.redirects: a pushed site's redirect rules (rules 1-7)."""

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


PLACEHOLDERS = (
    redirect_rule("/news/:year/:month/:slug", "/blog/:year/:slug?m=:month", 301),
    redirect_rule("/u/:id", "https://accounts.example:8443/users/:id", 302),
    redirect_rule("/v/:version/*", "/versions/:version/:splat", 308),
    redirect_rule("/app/:page", "/app/index.html", 200),
    redirect_rule("/:lang/docs/*", "/docs/:splat?lang=:lang", 302),
)


@pytest.mark.parametrize("path, expected", [
    # Rule 1: a placeholder matches one segment that is not empty; Rule 2: filled into 'to'
    ("/news/2024/05/hello", (301, "/blog/2024/hello?m=05")),
    ("/news/2024/05/", None),                        # an empty segment
    ("/news/2024/05", None),                         # too few
    ("/news/2024/05/hello/more", None),              # too many: no splat
    ("/u/42", (302, "https://accounts.example:8443/users/42")),   # the port is no placeholder
    ("/u/a b", (302, "https://accounts.example:8443/users/a%20b")),
    ("/v/1.2/lib/x.html", (308, "/versions/1.2/lib/x.html")),
    ("/v/1.2", (308, "/versions/1.2/")),             # with a splat, the prefix itself matches
    ("/v/1.2/", (308, "/versions/1.2/")),
    ("/v", None),
    ("/en/docs/intro", (302, "/docs/intro?lang=en")),
    ("/app/settings", None),                         # a rewrite: never a redirect
])
def test_placeholders(path, expected):
    assert find_redirect(PLACEHOLDERS, path, "") == expected


def test_placeholders_in_rewrites_are_decoded():
    rules = (redirect_rule("/p/:slug", "/posts/:slug.html", 200),)
    assert find_rewrites(rules, "/p/caf\u00e9 menu") == [(200, "/posts/caf\u00e9 menu.html")]
    assert find_rewrites(PLACEHOLDERS, "/app/settings") == [(200, "/app/index.html")]


@pytest.mark.parametrize("source, target, message", [
    ("/a/:b", "/x/:c", "':c' in 'to' is not a placeholder of 'from'"),
    ("/a/:b/:b", "/x", "names the placeholder ':b' twice"),
    ("/a/:1b", "/x", "expected ':' and a name"),
    ("/a/:", "/x", "expected ':' and a name"),
    ("/a/:b-c", "/x", "expected ':' and a name"),
    ("/a/:splat/*", "/x", "not ':splat'"),
    ("/a", "https://user:secret@x.example/:who", "':who' in 'to' is not a placeholder"),
])
def test_invalid_placeholders(source, target, message):
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        redirect_rule(source, target, 301)


NFC, NFD = "caf\u00e9", "cafe\u0301"   # "café" composed, and decomposed (as macOS writes file names)


@pytest.mark.parametrize("source, path, expected", [
    (f"/{NFC}", f"/{NFC}", (301, "/coffee")),
    (f"/{NFC}", f"/{NFD}", (301, "/coffee")),         # Rule 7: a decomposed request finds a composed rule
    (f"/{NFD}", f"/{NFC}", (301, "/coffee")),         # ... and a rule written decomposed a browser's request
    (f"/{NFD}/*", f"/{NFC}/x", (301, "/coffee")),
    (f"/{NFC}", "/cafe", None),                       # an accent is not dropped
])
def test_non_ascii_rules_and_paths_compare_composed(source, path, expected):
    rules = (redirect_rule(source, "/coffee"),)
    assert find_redirect(rules, path, "") == expected


def test_a_placeholder_gives_what_it_matched_composed():
    rules = (redirect_rule("/menu/:item", "/carte/:item", 302),)
    assert find_redirect(rules, f"/menu/{NFD}", "") == (302, "/carte/caf%C3%A9")
