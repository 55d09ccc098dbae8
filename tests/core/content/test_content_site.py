"""owncdn.core.content.site: what a pushed site answers, and conditional requests against
those answers (RFC 9110 §13) with ETags from the content hash and the release time."""

from __future__ import annotations

import hashlib

import pytest

from owncdn.core.content.globs import header_rule
from owncdn.core.content.manifest import FileEntry
from owncdn.core.content.mediatypes import content_type
from owncdn.core.content.redirects import redirect_rule
from owncdn.core.content.site import (
    DEFAULT_CACHE_CONTROL, FileAnswer, PlainAnswer, RedirectAnswer, SiteRules, answer, compressed, etag,
)
from owncdn.core.http.conditional import evaluate_conditionals
from owncdn.core.http.headers import Headers, format_http_date

RELEASED = 1_700_000_000.0


def entry(text: str) -> FileEntry:
    data = text.encode()
    return FileEntry(hashlib.sha256(data).hexdigest(), len(data))


FILES = {
    "index.html": entry("home"),
    "about.html": entry("about"),
    "404.html": entry("not here"),
    "app.js": entry("js" * 100),
    "app.js.br": entry("brotli"),
    "app.js.gz": entry("gzip"),
    "assets/logo.3f2a.svg": entry("<svg/>"),
}
RULES = SiteRules(
    redirects=(redirect_rule("/old/*", "/new/:splat"), redirect_rule("/app.js", "/never")),
    headers=(header_rule("/assets/**", {"Cache-Control": "public, max-age=31536000, immutable"}),
             header_rule("/**", {"X-Frame-Options": "DENY"})),
)


def ask(target: str, accept: str | None = None, rules: SiteRules = RULES, files=FILES):
    return answer(rules, files, target, accept, RELEASED)


def test_a_page_with_its_fields():
    got = ask("/about")
    assert isinstance(got, FileAnswer)
    assert (got.status, got.file, got.size) == (200, "about.html", 5)
    fields = dict(got.fields)
    assert fields == {
        "content-type": "text/html; charset=utf-8",
        "etag": etag(FILES["about.html"].sha256),
        "last-modified": format_http_date(RELEASED),
        "cache-control": DEFAULT_CACHE_CONTROL,
        "accept-ranges": "bytes",
        "x-frame-options": "DENY",
    }
    assert fields["etag"] == '"%s"' % FILES["about.html"].sha256[:32]


def test_order_redirect_rules_before_files():
    assert ask("/old/x?y=1") == RedirectAnswer(301, "/new/x?y=1", RULES.redirects[0])   # with the rule that said so
    assert ask("/app.js") == RedirectAnswer(301, "/never", RULES.redirects[1])     # Rule 1: rules before files


SPA_FILES = {**FILES, "app/index.html": entry("app shell"), "docs/404.html": entry("docs: not here"),
             "docs/intro.html": entry("intro")}
SPA = SiteRules(
    redirects=(redirect_rule("/docs/*", "/docs/404.html", 404),
               redirect_rule("/app/*", "/app/", 200),
               redirect_rule("/gone/*", "/no-such-file.html", 200),   # finds no file: passed over
               redirect_rule("/*", "/index.html", 200)),
    headers=(header_rule("/app/**", {"Cache-Control": "no-cache"}),),
)


@pytest.mark.parametrize("target, status, file", [
    # redirects Rule 6: rewrites answer paths no file answers, in place, with their status
    ("/app/settings/profile", 200, "app/index.html"),
    ("/app/a/b/", 200, "app/index.html"),
    ("/docs/missing", 404, "docs/404.html"),  # a section's own not-found page
    ("/gone/x", 200, "index.html"),
    ("/anything/else", 200, "index.html"),
    # files first: a rewrite never hides one
    ("/app.js", 200, "app.js"),
    ("/docs/intro", 200, "docs/intro.html"),
    ("/about", 200, "about.html"),
])
def test_rewrites_after_the_files(target, status, file):
    got = ask(target, rules=SPA, files=SPA_FILES)
    assert isinstance(got, FileAnswer)
    assert (got.status, got.file) == (status, file)


def test_a_rewrite_has_the_fields_of_its_file_and_the_rules_of_the_path_asked_for():
    got = ask("/app/settings", "br, gzip", rules=SPA, files=SPA_FILES)
    assert got.rule == SPA.redirects[1] and ask("/app/", rules=SPA, files=SPA_FILES).rule is None   # which rewrite
    fields = dict(got.fields)
    assert fields["etag"] == etag(SPA_FILES["app/index.html"].sha256)
    assert fields["content-type"] == "text/html; charset=utf-8"
    assert fields["cache-control"] == "no-cache"   # /app/** matched the request's path
    canonical = ask("/app/", rules=SPA, files=SPA_FILES)   # the file at its own URL: the same ETag
    assert dict(canonical.fields)["etag"] == fields["etag"] and canonical.status == 200
    assert ask("/app", rules=SPA, files=SPA_FILES) == RedirectAnswer(308, "/app/")   # a file's other spelling: as before
    # without a rewrite that finds a file, the not-found page as before
    only_gone = SiteRules(redirects=(redirect_rule("/gone/*", "/no-such-file.html", 200),))
    assert (ask("/gone/x", rules=only_gone).status, ask("/gone/x", rules=only_gone).file) == (404, "404.html")


def test_pretty_redirects_and_errors():
    assert ask("/about.html") == RedirectAnswer(308, "/about")
    assert ask("/../x") == PlainAnswer(400, "the request path is not a valid path")
    got = ask("/missing")
    assert (got.status, got.file) == (404, "404.html")
    plain = ask("/missing", rules=SiteRules(not_found=None))
    assert isinstance(plain, PlainAnswer) and plain.status == 404 and "/missing" in plain.reason
    no_page = ask("/missing", files={"index.html": FILES["index.html"]})
    assert isinstance(no_page, PlainAnswer) and no_page.status == 404


@pytest.mark.parametrize("accept, file, encoding", [
    (None, "app.js", None),
    ("gzip", "app.js.gz", "gzip"),
    ("gzip, br", "app.js.br", "br"),
    ("br;q=0, gzip;q=0", "app.js", None),
])
def test_precompressed_siblings(accept, file, encoding):
    rules = SiteRules()
    got = ask("/app.js", accept, rules=rules)
    fields = dict(got.fields)
    assert got.file == file and fields.get("content-encoding") == encoding
    assert fields["vary"] == "Accept-Encoding"                    # on every representation
    assert fields["content-type"] == "text/javascript; charset=utf-8"
    assert fields["etag"] == etag(FILES[file].sha256)              # each its own strong ETag


def test_no_vary_without_siblings_and_header_rules_by_path():
    got = ask("/assets/logo.3f2a.svg", "br")
    fields = dict(got.fields)
    assert "vary" not in fields and "content-encoding" not in fields
    assert fields["cache-control"] == "public, max-age=31536000, immutable"
    assert fields["content-type"] == "image/svg+xml; charset=utf-8"


def d(t: float) -> str:
    return format_http_date(t)


TAG = etag(FILES["about.html"].sha256)


@pytest.mark.parametrize("method, request_fields, expected", [
    # §13.1.2 If-None-Match, weak comparison: a match is 304 for GET and HEAD
    ("GET", [("If-None-Match", TAG)], 304),
    ("HEAD", [("If-None-Match", TAG)], 304),
    ("GET", [("If-None-Match", "W/" + TAG)], 304),
    ("GET", [("If-None-Match", '"other", ' + TAG)], 304),
    ("GET", [("If-None-Match", "*")], 304),
    ("GET", [("If-None-Match", '"other"')], None),
    # §13.1.3 If-Modified-Since against the release time
    ("GET", [("If-Modified-Since", d(RELEASED))], 304),
    ("GET", [("If-Modified-Since", d(RELEASED + 60))], 304),
    ("GET", [("If-Modified-Since", d(RELEASED - 1))], None),
    ("GET", [("If-Modified-Since", "yesterday")], None),            # invalid date: ignored
    # "A recipient MUST ignore If-Modified-Since if the request contains an If-None-Match"
    ("GET", [("If-None-Match", '"other"'), ("If-Modified-Since", d(RELEASED))], None),
    # §13.1.1 If-Match, strong comparison
    ("GET", [("If-Match", TAG)], None),
    ("GET", [("If-Match", "W/" + TAG)], 412),
    ("GET", [("If-Match", '"other"')], 412),
    # §13.1.4 If-Unmodified-Since
    ("GET", [("If-Unmodified-Since", d(RELEASED - 1))], 412),
    ("GET", [("If-Unmodified-Since", d(RELEASED))], None),
])
def test_conditional_requests_against_a_release(method, request_fields, expected):
    got = ask("/about")
    fields = Headers(list(got.fields) + [("date", d(RELEASED + 3600))])
    assert evaluate_conditionals(method, Headers(request_fields), got.status, fields) == expected


def test_a_new_release_of_the_same_bytes_keeps_its_etag():
    """Strong ETags come from content: an unchanged file revalidates across releases."""
    first = dict(ask("/about").fields)["etag"]
    later = dict(answer(RULES, FILES, "/about", None, RELEASED + 86400).fields)["etag"]
    assert first == later


@pytest.mark.parametrize("name, expected", [
    ("index.html", "text/html; charset=utf-8"),
    ("a/b/STYLE.CSS", "text/css; charset=utf-8"),
    ("app.mjs", "text/javascript; charset=utf-8"),
    ("font.woff2", "font/woff2"),
    ("release.tar.gz", "application/gzip"),
    ("Makefile", "application/octet-stream"),
    (".bashrc", "application/octet-stream"),
    ("x.unknown", "application/octet-stream"),
    ("deploy.YML", "application/yaml; charset=utf-8"),
    ("Cargo.toml", "application/toml; charset=utf-8"),
    ("map.geojson", "application/geo+json; charset=utf-8"),
    ("scene.glb", "model/gltf-binary"),
    ("photo.jxl", "image/jxl"),
    ("talk.opus", "audio/ogg"),
    ("talk.vtt", "text/vtt; charset=utf-8"),
    ("app-1.2.iso.sha256", "text/plain; charset=utf-8"),
    ("src.7z", "application/x-7z-compressed"),
])
def test_content_type(name, expected):
    assert content_type(name) == expected


TEXT_FILES = {**FILES, "guide.html": entry("g" * 5000), "big.css": entry("c" * 2000), "photo.jpg": entry("j" * 5000)}


@pytest.mark.parametrize("target, accept, compress, vary", [
    # Rule 2: text without siblings: the edge's form the client prefers, Vary either way
    ("/guide", "gzip, deflate, br, zstd", "br", True),
    ("/guide", "gzip, deflate", "gzip", True),
    ("/guide", "br;q=0.5, gzip", "gzip", True),
    ("/guide", "x-gzip", "gzip", True),
    ("/guide", "identity", None, True),
    ("/guide", "*;q=0, identity", None, True),
    ("/guide", None, None, True),                  # no field: the file as it is (negotiate Rule 3)
    ("/big.css", "br", "br", True),
    # not compressed: small, not text, or with siblings of its own (sent as they are)
    ("/about", "br", None, False),                  # 5 bytes
    ("/photo.jpg", "br", None, False),
    ("/app.js", "br", None, True),                  # app.js.br is sent instead
])
def test_compressed_forms_by_accept_encoding(target, accept, compress, vary):
    got = ask(target, accept, rules=SiteRules(), files=TEXT_FILES)
    assert got.compress == compress
    assert (dict(got.fields).get("vary") == "Accept-Encoding") is vary


def test_the_compressed_form_has_a_weak_etag_and_its_coding():
    plain = ask("/guide", "br", files=TEXT_FILES)
    form = compressed(plain, "br", 42)
    fields = dict(form.fields)
    assert (form.status, form.file, form.sha256, form.size, form.compress) == (200, "guide.html", plain.sha256, 42, None)
    assert fields["etag"] == "W/" + dict(plain.fields)["etag"]
    assert fields["content-encoding"] == "br" and fields["vary"] == "Accept-Encoding"
    assert fields["content-type"] == "text/html; charset=utf-8"
    assert fields["x-frame-options"] == "DENY"       # the header rules as for the file
    missing = ask("/nope", "gzip", files={**TEXT_FILES, "404.html": entry("n" * 3000)})
    assert (missing.status, missing.compress) == (404, "gzip")   # the not-found page too


def test_compression_can_be_switched_off():
    rules = SiteRules(compress=False)
    got = ask("/guide", "br, gzip", rules=rules, files=TEXT_FILES)
    assert got.compress is None and "vary" not in dict(got.fields)


def test_the_rules_of_a_redirects_file_come_first_and_the_file_is_not_served():
    from owncdn.core.content.redirectsfile import parse_redirects_file
    from owncdn.core.content.site import with_file_rules

    files = {**FILES, "_redirects": entry("/about /elsewhere 302\n/old/x /from-file\n/* /index.html 200\n")}
    rules = with_file_rules(RULES, parse_redirects_file("/about /elsewhere 302\n/old/x /from-file\n/* /index.html 200\n"))
    assert with_file_rules(RULES, []) is RULES
    assert ask("/about", rules=rules, files=files) == RedirectAnswer(302, "/elsewhere", rules.redirects[0])
    assert ask("/old/x", rules=rules, files=files) == RedirectAnswer(302, "/from-file", rules.redirects[1])   # before cdn.yaml's /old/*
    assert ask("/old/y", rules=rules, files=files) == RedirectAnswer(301, "/new/y", RULES.redirects[0])       # then cdn.yaml's
    hidden = ask("/_redirects", rules=SiteRules(), files=files)
    assert (hidden.status, hidden.file) == (404, "404.html")
    shell = ask("/_redirects", rules=rules, files=files)          # a rewrite answers as for any missing path
    assert (shell.status, shell.file) == (200, "index.html")
    assert ask("/x", rules=SiteRules(redirects=rules.redirects[2:3]), files=files).file == "index.html"
    to_file = SiteRules(redirects=(redirect_rule("/r", "/_redirects", 200),))
    assert ask("/r", rules=to_file, files=files).file == "404.html"   # nor through a rewrite


def test_the_rules_of_a_headers_file_come_after_the_configs_and_the_file_is_not_served():
    from owncdn.core.content.headersfile import parse_headers_file
    from owncdn.core.content.site import with_file_rules

    text = "/assets/*\n  Cache-Control: no-cache\n  X-From: file\n/*\n  ! X-Frame-Options\n  ! Cache-Control\n"
    files = {**FILES, "_headers": entry(text)}
    rules = with_file_rules(RULES, headers=parse_headers_file(text))
    logo = dict(ask("/assets/logo.3f2a.svg", rules=rules, files=files).fields)
    assert logo["x-from"] == "file" and "x-frame-options" not in logo
    assert "cache-control" not in logo            # set by cdn.yaml, then by the file, then taken off by it
    page = dict(ask("/about", rules=rules, files=files).fields)
    assert "cache-control" not in page and "x-frame-options" not in page and page["etag"]
    hidden = ask("/_headers", rules=rules, files=files)
    assert (hidden.status, hidden.file) == (404, "404.html")



NESTED = {**FILES, "docs/404.html": entry("docs: not here"), "docs/guide/404.html": entry("guide: not here"),
          "docs/guide/intro.html": entry("intro")}


@pytest.mark.parametrize("target, page", [
    # Rule 1: a bare not_found name, the nearest one from the path's directory up
    ("/nope", "404.html"),
    ("/docs/nope", "docs/404.html"),
    ("/docs/x/", "docs/404.html"),
    ("/docs", "404.html"),                       # /docs is in the top directory
    ("/docs/guide/a/b/c", "docs/guide/404.html"),
    ("/docs/other/q", "docs/404.html"),
    ("/elsewhere/deep/x", "404.html"),
])
def test_the_nearest_not_found_page(target, page):
    got = ask(target, rules=SiteRules(), files=NESTED)
    assert (got.status, got.file) == (404, page)


def test_a_not_found_page_with_a_directory_is_that_file_only():
    rules = SiteRules(not_found="docs/404.html")
    assert ask("/x/y", rules=rules, files=NESTED).file == "docs/404.html"
    assert ask("/docs/guide/q", rules=rules, files=NESTED).file == "docs/404.html"
    assert isinstance(ask("/x", rules=SiteRules(not_found="missing/404.html"), files=NESTED), PlainAnswer)
