"""owncdn.core.content.headersfile: a pushed site's own ``_headers`` file (rules 1-4)."""

from __future__ import annotations

import pytest

from owncdn.core.content.globs import headers_for
from owncdn.core.content.headersfile import MAX_RULES, headers_file_rules, parse_headers_file

FILE = """# for every page
/*
  X-Frame-Options: DENY
  Link: </style.css>; rel=preload
  Link: </app.js>; rel=preload

/assets/*
\tCache-Control: public, max-age=31536000, immutable
/*.js
  X-Script: yes
/embed/:id
  ! X-Frame-Options
/nothing-here
"""


def test_a_file_of_every_kind_of_line():
    rules = parse_headers_file(FILE)
    assert [r.pattern for r in rules] == ["/*", "/assets/*", "/*.js", "/embed/:id"]   # a pattern with no field: none
    assert rules[0].fields == (("x-frame-options", "DENY"), ("link", "</style.css>; rel=preload, </app.js>; rel=preload"))
    assert rules[3].fields == (("x-frame-options", None),)


EVERY = {"x-frame-options": "DENY", "link": "</style.css>; rel=preload, </app.js>; rel=preload"}


@pytest.mark.parametrize("path, expected", [
    # Rule 1: * crosses '/', :name is one segment; later rules win; None takes off
    ("/", EVERY),
    ("/assets/css/site.css", {**EVERY, "cache-control": "public, max-age=31536000, immutable"}),
    ("/assets/js/app.js", {**EVERY, "cache-control": "public, max-age=31536000, immutable", "x-script": "yes"}),
    ("/deep/down/x.js", {**EVERY, "x-script": "yes"}),
    ("/x.json", EVERY),
    ("/embed/42", {**EVERY, "x-frame-options": None}),
    ("/embed/42/more", EVERY),
    ("/embed/", EVERY),
])
def test_patterns(path, expected):
    assert headers_for(tuple(parse_headers_file(FILE)), path) == expected


@pytest.mark.parametrize("text, problem", [
    ("  X-A: b\n", "_headers:1: a field comes before any path pattern"),
    ("https://example.com/*\n  X-A: b\n", "_headers:1: expected a path pattern starting with '/'"),
    ("/a?x=1\n  X-A: b\n", "_headers:1: a path pattern has no space, query or fragment"),
    ("/a\n  no colon here\n", "_headers:2: expected 'Name: value' or '! Name'"),
    ("/a\n  Bad Name: x\n", "_headers:2: 'Bad Name' is not a valid header name"),
    ("/a\n  Content-Length: 5\n", "_headers:2: 'Content-Length' is derived from the file"),
    ("/a\n  ! ETag\n", "_headers:2: 'ETag' is derived from the file"),
    ("/a\n  Vary: Cookie\n", "_headers:2: 'Vary' is derived from the file"),
    ("/a\n  X-A: b\x00c\n", "_headers:2: a header value must not contain CR, LF or NUL"),
    ("/admin/*\n  Basic-Auth: admin:s3cret\n", "_headers:2: 'Basic-Auth' (Netlify's password protection) is not supported"),
])
def test_bad_lines_are_named(text, problem):
    with pytest.raises(ValueError) as err:
        parse_headers_file(text)
    assert str(err.value).startswith(problem)
    assert headers_file_rules(text)[0] == []   # Rule 3: the edge keeps only good lines


def test_the_good_rules_are_kept_beside_a_bad_line():
    rules, problems = headers_file_rules("/a\n  X-A: 1\n  Content-Type: text/plain\n  ETag: x\n/b c\n  X-B: 2\n")
    assert [(r.pattern, r.fields) for r in rules] == [("/a", (("x-a", "1"), ("content-type", "text/plain")))]
    assert [p.split(":")[1] for p in problems] == ["4", "5"]   # the fields under a bad pattern go nowhere


def test_limits():
    many = "".join(f"/p{i}\n  X-A: b\n" for i in range(MAX_RULES + 1))
    rules, problems = headers_file_rules(many)
    assert len(rules) == MAX_RULES and problems == [f"_headers: more than {MAX_RULES} rules"]
    assert "larger than 256 KiB" in headers_file_rules("#" * (300 << 10))[1][0]


def test_windows_line_ends_and_a_byte_order_mark():
    (rule,) = parse_headers_file("\ufeff/a\r\n  X-A: b\r\n")
    assert (rule.pattern, rule.fields) == ("/a", (("x-a", "b"),))


def test_patterns_are_matched_in_linear_time():
    """globs Rule 4: '*' as '.*' three times over backtracked for a minute in Python's re."""
    (rule,) = parse_headers_file("/*a*a*b\n  X-A: 1\n")
    assert type(rule.regex).__module__.startswith("re2")
    assert headers_for((rule,), "/" + "a" * 8000) == {} and headers_for((rule,), "/xaya/zb") == {"x-a": "1"}
