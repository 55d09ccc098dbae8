"""owncdn.core.content.redirectsfile: a pushed site's own ``_redirects`` file (rules 1-5)."""

from __future__ import annotations

import pytest

from owncdn.core.content.redirects import RedirectRule, find_redirect, find_rewrites
from owncdn.core.content.redirectsfile import MAX_RULES, parse_redirects_file, redirects_file_rules

FILE = """# moved pages
/old-page        /new-page              301
/blog/*          /posts/:splat
\t/news/:year/:id\t/archive/:year/:id   308!

/app/*           /app/index.html        200
/docs/*          /docs/404.html         404
/search          /find?engine=1         307
/go              https://example.org/   302
"""


def test_a_file_of_every_kind_of_rule():
    rules = parse_redirects_file(FILE)
    assert rules == [
        RedirectRule("/old-page", "/new-page", 301),
        RedirectRule("/blog/*", "/posts/:splat", 302),          # Rule 1: 302 unless said
        RedirectRule("/news/:year/:id", "/archive/:year/:id", 308),   # "!" accepted
        RedirectRule("/app/*", "/app/index.html", 200),
        RedirectRule("/docs/*", "/docs/404.html", 404),
        RedirectRule("/search", "/find?engine=1", 307),
        RedirectRule("/go", "https://example.org/", 302),
    ]
    rules = tuple(rules)
    assert find_redirect(rules, "/news/2024/7", "") == (308, "/archive/2024/7")
    assert find_rewrites(rules, "/app/x") == [(200, "/app/index.html")]


@pytest.mark.parametrize("line, problem", [
    ("/old", "expected '<from> <to> [status]'"),
    ("/a /b 302 extra", "got 4 words"),
    ("/a /b 3o2", "expected a status such as 301"),
    ("/a /b 30", "expected a status such as 301"),
    ("/a /b 410", "status must be one of"),
    ("/store id=:id /blog/:id 301", "conditions such as 'id=:id'"),         # Rule 2: Netlify's query conditions
    ("/ /fr/ 302 Country=fr", "conditions such as 'Country=fr'"),
    ("/ /fr/ 302 Language=fr", "conditions such as 'Language=fr'"),
    ("/admin/* /admin/:splat 200! Role=admin", "conditions such as 'Role=admin'"),
    ("/api/* https://api.example.com/:splat 200", "a rewrite"),              # a proxy
    ("old /new", "'from' must be a path"),
    ("/a/:id /b/:other", "':other' in 'to' is not a placeholder"),
])
def test_bad_lines_are_named(line, problem):
    text = "/fine /ok\n" + line + "\n"
    with pytest.raises(ValueError) as err:
        parse_redirects_file(text)
    assert str(err.value).startswith("_redirects:2: ") and problem in str(err.value)
    rules, problems = redirects_file_rules(text)     # Rule 3: the edge keeps the good lines
    assert rules == [RedirectRule("/fine", "/ok", 302)] and len(problems) == 1


def test_every_bad_line_is_listed():
    with pytest.raises(ValueError) as err:
        parse_redirects_file("/a\n/b\n/ok /fine\n/c\n")
    assert [line.split(":")[1] for line in str(err.value).splitlines()] == ["1", "2", "4"]


def test_limits():
    many = "".join(f"/p{i} /q{i}\n" for i in range(MAX_RULES + 1))
    rules, problems = redirects_file_rules(many)
    assert len(rules) == MAX_RULES and problems == [f"_redirects:{MAX_RULES + 1}: more than {MAX_RULES} rules"]
    rules, problems = redirects_file_rules("#" * (300 << 10))
    assert rules == [] and "larger than 256 KiB" in problems[0]


def test_windows_line_ends_and_a_byte_order_mark():
    assert parse_redirects_file("\ufeff/a /b\r\n/c /d 301\r\n") == [RedirectRule("/a", "/b", 302), RedirectRule("/c", "/d", 301)]
