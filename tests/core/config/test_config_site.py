"""The `site` block of push services (core/config/site.py): defaults, and errors that
name the file, line and field."""

from __future__ import annotations

import pytest

from owncdn.core.config import ConfigError, parse_config

BASE = """version: 1
services:
  - name: blog
    hostnames: [blog.test]
    mode: push
"""


def parse(text: str):
    return parse_config(text, "cdn.yaml", lambda kind, name: None)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(text)
    return [str(p) for p in err.value.problems]


def test_defaults():
    site = parse(BASE).services[0].site
    assert (site.index, site.pretty_urls, site.not_found, site.redirects, site.headers) == (
        "index.html", True, "404.html", [], [])


def test_a_full_site_block():
    site = parse(BASE + """    site:
      index: index.htm
      pretty_urls: false
      not_found: errors/404.html
      redirects:
        - {from: /old, to: /new}
        - {from: /blog/*, to: "https://blog.example/:splat", status: 308}
        - {from: /app/*, to: /app/index.html, status: 200}
      headers:
        - path: /assets/**
          set: {Cache-Control: "public, max-age=31536000, immutable"}
""").services[0].site
    assert site.redirects[1].from_ == "/blog/*" and site.redirects[1].status == 308
    assert (site.redirects[2].to, site.redirects[2].status) == ("/app/index.html", 200)
    assert site.headers[0].set == {"Cache-Control": "public, max-age=31536000, immutable"}


@pytest.mark.parametrize("block, expected", [
    ("site: {index: a/index.html}", "cdn.yaml:6:19: services[0].site.index: expected a file name without '/'"),
    ("site: {not_found: /404.html}", "cdn.yaml:6:23: services[0].site.not_found: expected a path inside the release"),
    ("site: {not_found: ../404.html}", "services[0].site.not_found: expected a path inside the release"),
    ("site: {redirects: [{from: old, to: /new}]}", "cdn.yaml:6:31: services[0].site.redirects[0].from: 'from' must be a path"),
    ("site: {redirects: [{from: /a*, to: /b}]}", "services[0].site.redirects[0].from: 'from' may only end in '/*'"),
    ("site: {redirects: [{from: /a, to: /b/:splat}]}", "services[0].site.redirects[0].to: ':splat' in 'to' needs"),
    ("site: {redirects: [{from: '/a/:id', to: '/b/:ib'}]}", "services[0].site.redirects[0].to: ':ib' in 'to' is not a placeholder"),
    ("site: {redirects: [{from: '/a/:id/:id', to: /b}]}", "services[0].site.redirects[0].from: 'from' names the placeholder"),
    ("site: {redirects: [{from: /a, to: /b, status: 410}]}", "services[0].site.redirects[0].status"),
    ("site: {redirects: [{from: /a/*, to: 'https://x.test/', status: 200}]}",
     "services[0].site.redirects[0].to: 'to' of a status 200 rule (a rewrite) must be a path of the release"),
    ("site: {redirects: [{from: /a, too: /b}]}", "services[0].site.redirects[0].too"),
    ("site: {headers: [{path: assets/*, set: {X-A: b}}]}", "services[0].site.headers[0].path: a path pattern starts with '/'"),
    ("site: {headers: [{path: /a, set: {Content-Length: '1'}}]}", "services[0].site.headers[0].set: 'Content-Length' is derived"),
    ("site: {headers: [{path: /a, set: {ETag: x}}]}", "'ETag' is derived from the file"),
    ("site: {headers: [{path: /a, set: {'bad name': x}}]}", "is not a valid header name"),
    ("site: {pretty_url: true}", "services[0].site.pretty_url"),
])
def test_errors_name_the_field(block, expected):
    found = problems(BASE + "    " + block + "\n")
    assert any(expected in p for p in found), found


def test_only_push_services_have_a_site():
    found = problems("""version: 1
services:
  - name: web
    hostnames: [web.test]
    origins: [http://origin.test]
    site: {pretty_urls: false}
""")
    assert any("services[0].site: only a push service serves a site" in p for p in found), found


def test_the_push_site_example():
    from pathlib import Path

    from owncdn.core.content.manifest import FileEntry
    from owncdn.core.content.site import FileAnswer, RedirectAnswer, answer, site_rules

    example = Path(__file__).resolve().parents[3] / "examples" / "push-site.yaml"
    config = parse_config(example.read_text(), "push-site.yaml", lambda kind, name: None)
    blog = config.service("blog")
    assert blog.mode == "push" and not blog.origins
    rules = site_rules(blog.site)
    assert answer(rules, {}, "/2019/05/post", None, 0) == RedirectAnswer(301, "/archive/2019/05/post", rules.redirects[1])
    assert answer(rules, {}, "/news/2024/hello?x=1", None, 0) == RedirectAnswer(301, "/blog/2024/hello?x=1",
                                                                                 rules.redirects[2])
    files = {"index.html": FileEntry("0" * 64, 5), "app.3f2a1c.js": FileEntry("1" * 64, 9),
             "docs/404.html": FileEntry("2" * 64, 3), "404.html": FileEntry("3" * 64, 3)}
    docs = answer(rules, files, "/docs/nope", None, 0)
    assert isinstance(docs, FileAnswer) and (docs.status, docs.file) == (404, "docs/404.html")
    app = site_rules(config.service("app").site)
    shell = answer(app, files, "/u/42/settings", None, 0)
    assert isinstance(shell, FileAnswer) and (shell.status, shell.file) == (200, "index.html")
    assert answer(app, files, "/app.3f2a1c.js", None, 0).file == "app.3f2a1c.js"
    assert config.service("downloads").site.not_found is None
