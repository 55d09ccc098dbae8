"""Serving a push service through a real edge, with releases installed directly into its
release store (no control plane): pretty URLs, redirects, the 404 page, header rules,
precompressed siblings, ETag / 304, ranges, HEAD, sendfile, switching, restarts."""

from __future__ import annotations

import asyncio
import gzip
import json
import os

import brotli
import pytest

from owncdn.core.config import parse_config
from owncdn.core.content.digest import digest
from owncdn.edge.bodies import DiskBody
from owncdn.edge.server import AdminApp, EdgeServer
from owncdn.edge.static import ANY_CODING, warm_release
from owncdn.testing.client import HttpClient

CONFIG = """
version: 1
edge: {id: edge-p, location: test}
services:
  - name: blog
    hostnames: [blog.test]
    mode: push
    site:
      redirects:
        - {from: /old, to: /about}
        - {from: /feed/*, to: "https://feeds.example/:splat", status: 302}
      headers:
        - path: /assets/**
          set: {Cache-Control: "public, max-age=31536000, immutable"}
  - name: plain
    hostnames: [plain.test]
    mode: push
    site: {pretty_urls: false, not_found: null}
  - name: app
    hostnames: [app.test]
    mode: push
    site:
      redirects:
        - {from: /help/*, to: /help/404.html, status: 404}
        - {from: /*, to: /index.html, status: 200}
"""
RELEASED = 1_700_000_000.0
BIG = os.urandom(3 << 20)  # 3 MiB: a mapped blob sent with sendfile
JS = b"console.log('hello');\n" * 500
SITE = {
    "index.html": b"<h1>home</h1>",
    "about.html": b"<h1>about</h1>",
    "docs/index.html": b"<h1>docs</h1>",
    "404.html": b"<h1>not found</h1>",
    "assets/app.js": JS,
    "assets/app.js.gz": gzip.compress(JS),
    "assets/app.js.br": b"pretend-brotli",
    "downloads/big.bin": BIG,
}


class PushEdge:
    def __init__(self, state, access_log="off"):
        self.state = state
        self.access_log = access_log

    async def __aenter__(self):
        config = parse_config(CONFIG, "push.yaml", lambda kind, name: None)
        self.server = await EdgeServer.start(config, access_log=self.access_log, state_dir=self.state)
        self.store = self.server.edge.releases
        return self

    async def __aexit__(self, *exc):
        await self.server.close()

    def client(self, host="blog.test"):
        return HttpClient("127.0.0.1", self.server.port, default_host=host)

    async def get(self, path, host="blog.test", method="GET", **kw):
        async with self.client(host) as c:
            return await c.request(method, path, **kw)


@pytest.fixture
def state(tmp_path):
    return tmp_path / "edge"


async def test_before_the_first_release_the_edge_says_503(state):
    async with PushEdge(state) as t:
        r = await t.get("/")
    assert r.status == 503 and r.cache == "PUSH"
    assert b"no release of service 'blog' has reached this edge yet" in r.body
    assert r.headers["retry-after"] == "5"


async def test_pretty_urls_redirects_and_the_404_page(state):
    async with PushEdge(state) as t:
        t.store.install("blog", 1, SITE, released_at=RELEASED)
        home, about, docs, docs_slash, about_html, old, feed, missing = [
            await t.get(p) for p in ("/", "/about", "/docs", "/docs/", "/about.html", "/old?x=1", "/feed/a/b",
                                     "/nope")]
    assert (home.status, home.body, home.cache) == (200, b"<h1>home</h1>", "PUSH")
    assert (about.status, about.body) == (200, b"<h1>about</h1>")
    assert (docs.status, docs.headers["location"]) == (308, "/docs/")
    assert docs_slash.body == b"<h1>docs</h1>"
    assert (about_html.status, about_html.headers["location"]) == (308, "/about")
    assert (old.status, old.headers["location"]) == (301, "/about?x=1")
    assert (feed.status, feed.headers["location"]) == (302, "https://feeds.example/a/b")
    assert (missing.status, missing.body) == (404, b"<h1>not found</h1>")
    assert missing.headers["content-type"] == "text/html; charset=utf-8"
    for r in (home, about, docs, missing):
        assert r.headers["x-served-by"] == "edge-p (test)" and r.headers["x-request-id"]


async def test_a_miss_gets_the_nearest_404_page(state):
    """site Rule 1: a bare not_found name is looked for from the path's directory up."""
    async with PushEdge(state) as t:
        t.store.install("blog", 1, {**SITE, "docs/404.html": b"no such doc"})
        doc, top = [await t.get(p) for p in ("/docs/a/b", "/blog/x")]
    assert (doc.status, doc.body) == (404, b"no such doc")
    assert (top.status, top.body) == (404, b"<h1>not found</h1>")


async def test_plain_urls_and_a_plain_404(state):
    async with PushEdge(state) as t:
        t.store.install("plain", 1, {"index.html": b"i", "a.html": b"a", "404.html": b"x"})
        a, pretty, missing = [await t.get(p, host="plain.test") for p in ("/a.html", "/a", "/zzz")]
    assert (a.status, a.body) == (200, b"a")
    assert pretty.status == 404 and missing.status == 404
    assert b"/zzz is not part of this site's current release" in missing.body


async def test_rewrites_answer_in_place_for_paths_no_file_answers(state):
    """redirects Rule 6: a single-page app's fallback, and a section's own 404 page."""
    app = {"index.html": b"<div id=app></div>", "app.3f2a.js": JS, "help/intro.html": b"intro",
           "help/404.html": b"no such help page", "404.html": b"never sent: the rewrites answer first"}
    async with PushEdge(state) as t:
        t.store.install("app", 1, app, released_at=RELEASED)
        route, script, intro, lost = [await t.get(p, host="app.test")
                                      for p in ("/u/42/settings?tab=2", "/app.3f2a.js", "/help/intro", "/help/nope")]
        same = await t.get("/u/7", host="app.test", headers={"If-None-Match": route.headers["etag"]})
        head = await t.get("/u/7", host="app.test", method="HEAD")
    assert (route.status, route.body, route.cache) == (200, b"<div id=app></div>", "PUSH")
    assert "location" not in route.headers and route.headers["content-type"] == "text/html; charset=utf-8"
    assert (script.status, script.body) == (200, JS)          # a file is never hidden by a rewrite
    assert (intro.status, intro.body) == (200, b"intro")
    assert (lost.status, lost.body) == (404, b"no such help page")
    assert (same.status, same.body) == (304, b"")              # the ETag of index.html, at any route
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", str(len(app["index.html"])))


GUIDE = b"".join(b"<p>Section %d of the guide: how owncdn pushes a site.</p>\n" % i for i in range(2000))


async def test_text_files_go_out_compressed_as_accept_encoding_prefers(state):
    """static Rule 7, site Rule 2: the edge's own br and gzip forms of a file without siblings."""
    site = {**SITE, "guide.html": GUIDE, "noise.txt": os.urandom(8000)}
    async with PushEdge(state) as t:
        t.store.install("blog", 1, site, released_at=RELEASED)
        br = await t.get("/guide", headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
        gz = await t.get("/guide", headers={"Accept-Encoding": "gzip"})
        plain = await t.get("/guide")
        again = await t.get("/guide", headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
        same = await t.get("/guide", headers={"Accept-Encoding": "br", "If-None-Match": br.headers["etag"]})
        head = await t.get("/guide", method="HEAD", headers={"Accept-Encoding": "br"})
        ranged = await t.get("/guide", headers={"Accept-Encoding": "br", "Range": "bytes=0-9"})
        noise = await t.get("/noise.txt", headers={"Accept-Encoding": "br, gzip"})
        exposition = t.server.edge.metrics.exposition().decode()
    assert (br.status, br.headers["content-encoding"], br.headers["vary"]) == (200, "br", "Accept-Encoding")
    assert brotli.decompress(br.body) == GUIDE and len(br.body) < len(GUIDE) // 10   # the first request too
    assert br.headers["content-length"] == str(len(br.body))
    assert br.headers["content-type"] == "text/html; charset=utf-8"
    assert (gz.headers["content-encoding"], gzip.decompress(gz.body)) == ("gzip", GUIDE)
    assert "content-encoding" not in plain.headers and plain.body == GUIDE and plain.headers["vary"] == "Accept-Encoding"
    assert br.headers["etag"] == gz.headers["etag"] == "W/" + plain.headers["etag"]
    assert again.body == br.body
    assert (same.status, same.body) == (304, b"")
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", str(len(br.body)))
    assert (ranged.status, ranged.body, ranged.headers.get("content-encoding")) == (206, GUIDE[:10], None)
    assert "content-encoding" not in noise.headers and noise.body == site["noise.txt"]   # not worth it
    assert 'owncdn_edge_push_compressed_forms_total{coding="br"} 1.0' in exposition
    assert 'owncdn_edge_push_compressed_forms_total{coding="gzip"} 1.0' in exposition


async def test_a_large_text_file_goes_out_as_it_is_until_its_form_is_made(state, monkeypatch):
    monkeypatch.setattr("owncdn.edge.static.WAIT_BYTES", 1000)   # GUIDE is larger: not waited for
    async with PushEdge(state) as t:
        t.store.install("blog", 1, {**SITE, "guide.html": GUIDE})
        first = await t.get("/guide", headers={"Accept-Encoding": "gzip"})
        sha = t.store.live["blog"].files["guide.html"].sha256
        for _ in range(500):
            if t.server.edge.variants.get(sha, "gzip"):
                break
            await asyncio.sleep(0.01)
        later = await t.get("/guide", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in first.headers and first.body == GUIDE and first.headers["vary"] == "Accept-Encoding"
    assert later.headers["content-encoding"] == "gzip" and gzip.decompress(later.body) == GUIDE


async def test_a_restarted_edge_reads_its_forms_back_and_a_new_release_drops_those_no_longer_named(state):
    """variants Rule 3, formfiles Rule 4: forms are kept on the edge's disk with its blobs."""
    async with PushEdge(state) as t:
        t.store.install("blog", 1, {**SITE, "guide.html": GUIDE})
        made = await t.get("/guide", headers={"Accept-Encoding": "br"})
        sha = t.store.live["blog"].files["guide.html"].sha256
    assert made.headers["content-encoding"] == "br"
    assert (state / "push" / "forms" / sha[:2] / f"{sha}.br").exists()
    async with PushEdge(state) as t:
        again = await t.get("/guide", headers={"Accept-Encoding": "br"})
        exposition = t.server.edge.metrics.exposition().decode()
        t.store.install("blog", 2, {**SITE, "guide.html": GUIDE + b"<p>one more</p>"})
        t.store.install("blog", 3, SITE)       # the guide's first blob is in neither the live nor the previous release
        t.store.collect()
    assert again.headers["content-encoding"] == "br" and again.body == made.body
    assert "owncdn_edge_push_compressed_forms_loaded_total 1.0" in exposition
    assert 'owncdn_edge_push_compressed_forms_total{coding="br"} 0.0' in exposition   # not made again
    assert not (state / "push" / "forms" / sha[:2] / f"{sha}.br").exists()


async def test_warming_a_release_makes_the_forms_of_large_text_files_in_the_background(state, monkeypatch):
    """static Rule 7, variants Rule 5: a first visitor gets the large file compressed too."""
    import threading

    from owncdn.edge.static import warm_release

    monkeypatch.setattr("owncdn.edge.static.WAIT_BYTES", 1000)   # GUIDE is "large"
    site = {**SITE, "guide.html": GUIDE, "shipped.js": GUIDE + b"//", "shipped.js.br": b"its own"}
    async with PushEdge(state) as t:
        t.store.install("blog", 1, site)
        edge = t.server.edge
        await warm_release(edge, "blog")
        files = t.store.live["blog"].files
        sha, own = files["guide.html"].sha256, files["shipped.js"].sha256
        assert set(edge.variants.making) <= {(sha, "br"), (sha, "gzip")}   # not the file with its own siblings
        for _ in range(500):
            if edge.variants.get(sha, "br") and edge.variants.get(sha, "gzip"):
                break
            await asyncio.sleep(0.01)
        first = await t.get("/guide", headers={"Accept-Encoding": "br"})
        idle = [th for th in threading.enumerate() if th.name.startswith("owncdn-compress-idle")]
        assert idle and os.getpriority(os.PRIO_PROCESS, idle[0].native_id) == 19   # its thread alone
        assert os.getpriority(os.PRIO_PROCESS, 0) != 19
    assert first.headers["content-encoding"] == "br" and brotli.decompress(first.body) == GUIDE
    assert edge.variants.get(own, "br") is None and edge.variants.get(own, "gzip") is None


async def test_compression_switched_off(state):
    async with PushEdge(state) as t:
        t.store.install("blog", 1, {**SITE, "guide.html": GUIDE})
        text = CONFIG.replace("      headers:\n        - path: /assets/**", "      compress: false\n      headers:\n        - path: /assets/**", 1)
        t.server.edge.apply_config(parse_config(text, "push.yaml", lambda kind, name: None))
        r = await t.get("/guide", headers={"Accept-Encoding": "br, gzip"})
    assert r.body == GUIDE and "content-encoding" not in r.headers and "vary" not in r.headers


async def test_a_releases_redirects_file_applies_with_that_release(state, caplog):
    """static Rule 8: the rules travel with the files; the file itself is not served."""
    one = {**SITE, "_redirects": b"/about /v1-about 302\n/u/:id /users/:id\n"}
    two = {**SITE, "_redirects": b"/about /v2-about 302\n/bad line here now\n"}
    async with PushEdge(state) as t:
        t.store.install("blog", 1, one)
        first, user, hidden, old = [await t.get(p) for p in ("/about", "/u/7?x=1", "/_redirects", "/old")]
        t.store.install("blog", 2, two)
        second = await t.get("/about")
        t.store.install("blog", 3, SITE)
        plain = await t.get("/about")
    assert (first.status, first.headers["location"]) == (302, "/v1-about")
    assert (user.status, user.headers["location"]) == (302, "/users/7?x=1")     # 302 unless said
    assert (hidden.status, hidden.body) == (404, b"<h1>not found</h1>")
    assert (old.status, old.headers["location"]) == (301, "/about")     # cdn.yaml's rules after the file's
    assert (second.status, second.headers["location"]) == (302, "/v2-about")   # its bad line left out, logged
    assert any("_redirects:2:" in r.getMessage() for r in caplog.records)
    assert (plain.status, plain.body) == (200, b"<h1>about</h1>")


async def test_a_releases_headers_file_applies_with_that_release(state):
    headers = b"/assets/*\n  Cache-Control: no-store\n  X-Team: web\n/*\n  X-Frame-Options: DENY\n"
    async with PushEdge(state) as t:
        t.store.install("blog", 1, {**SITE, "_headers": headers})
        script, page, hidden = [await t.get(p) for p in ("/assets/app.js", "/about", "/_headers")]
        t.store.install("blog", 2, SITE)
        after = await t.get("/assets/app.js")
    assert script.headers["cache-control"] == "no-store" and script.headers["x-team"] == "web"   # after cdn.yaml's
    assert page.headers["x-frame-options"] == "DENY" and "x-team" not in page.headers
    assert hidden.status == 404
    assert after.headers["cache-control"] == "public, max-age=31536000, immutable" and "x-team" not in after.headers


async def test_explain_says_how_each_edges_release_answers(state):
    """adminapi Rule 1, for push services (`owncdn explain`'s cache lines)."""
    from owncdn.cli.watch_cmds import cache_lines
    from owncdn.edge.adminapi import cache_state

    async with PushEdge(state) as t:
        edge = t.server.edge
        before = cache_state(edge, "http://app.test/")
        t.store.install("blog", 7, {**SITE, "guide.html": GUIDE, "_redirects": b"/x /about 302\n"})
        t.store.install("app", 2, {"index.html": b"shell", "help/404.html": b"no help"})
        blog = {p: cache_state(edge, f"http://blog.test{p}")["release"]
                for p in ("/old", "/about.html", "/guide", "/assets/app.js", "/x", "/nope")}
        route, lost = [cache_state(edge, f"http://app.test{p}") for p in ("/u/1", "/help/x")]
    assert before["release"] is None and before["service"] == "app"
    assert blog["/old"] == {"number": 7, "status": 301, "location": "/about", "rule": "/old -> /about (301, cdn.yaml)"}
    assert blog["/x"] == {"number": 7, "status": 302, "location": "/about", "rule": "/x -> /about (302, _redirects)"}
    assert blog["/about.html"] == {"number": 7, "status": 308, "location": "/about"}   # a pretty URL: no rule
    assert blog["/guide"] == {"number": 7, "status": 200, "file": "guide.html", "size": len(GUIDE), "coding": "br"}
    assert blog["/assets/app.js"]["file"] == "assets/app.js.br" and blog["/assets/app.js"]["coding"] == "br"
    assert blog["/nope"] == {"number": 7, "status": 404, "file": "404.html", "size": 18, "coding": None}
    assert route["release"]["rule"] == "/* -> /index.html (200, cdn.yaml)" and route["release"]["file"] == "index.html"
    assert lost["release"]["status"] == 404 and lost["release"]["file"] == "help/404.html"
    lines = cache_lines([dict(route, edge="edge-p"), dict(before, edge="edge-q", location="test2")])
    assert lines[1].split() == ["test", "edge-p", "release", "2:", "HTTP", "200", "index.html", "(5", "bytes);",
                                "rule", "/*", "->", "/index.html", "(200,", "cdn.yaml)"]
    assert lines[2].endswith("no release of this push service here yet (503)")


async def test_a_site_pushed_from_a_mac_answers_its_composed_links(state):
    """paths Rule 6: file names decomposed (NFD, as macOS gives them), links composed (NFC)."""
    async with PushEdge(state) as t:
        t.store.install("blog", 1, {"index.html": b"i", "cafe\u0301.html": b"menu", "404.html": b"x"})
        composed, decomposed, html = [await t.get(p) for p in ("/caf%C3%A9", "/cafe%CC%81", "/caf%C3%A9.html")]
    assert (composed.status, composed.body) == (200, b"menu")
    assert (decomposed.status, decomposed.body) == (200, b"menu")
    assert (html.status, html.headers["location"]) == (308, "/cafe%CC%81")


async def test_fields_etag_and_conditional_requests(state):
    async with PushEdge(state) as t:
        t.store.install("blog", 1, SITE, released_at=RELEASED)
        r = await t.get("/about")
        same = await t.get("/about", headers={"If-None-Match": r.headers["etag"]})
        since = await t.get("/about", headers={"If-Modified-Since": r.headers["last-modified"]})
        changed = await t.get("/about", headers={"If-None-Match": '"something-else"'})
        failed = await t.get("/about", headers={"If-Match": '"something-else"'})
    assert r.headers["etag"].startswith('"') and len(r.headers["etag"]) == 34
    assert r.headers["last-modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert r.headers["cache-control"] == "public, max-age=0, must-revalidate"
    assert r.headers["accept-ranges"] == "bytes" and "date" in r.headers
    assert (same.status, same.body, same.headers["etag"]) == (304, b"", r.headers["etag"])
    assert since.status == 304
    assert changed.status == 200 and failed.status == 412


async def test_precompressed_siblings_by_accept_encoding(state):
    async with PushEdge(state) as t:
        t.store.install("blog", 1, SITE, released_at=RELEASED)
        plain = await t.get("/assets/app.js")
        gz = await t.get("/assets/app.js", headers={"Accept-Encoding": "gzip"})
        br = await t.get("/assets/app.js", headers={"Accept-Encoding": "gzip, deflate, br"})
        refused = await t.get("/assets/app.js", headers={"Accept-Encoding": "br;q=0, gzip;q=0"})
        again = await t.get("/assets/app.js", headers={"Accept-Encoding": "gzip", "If-None-Match": gz.headers["etag"]})
    assert plain.body == JS and "content-encoding" not in plain.headers
    assert gz.headers["content-encoding"] == "gzip" and gzip.decompress(gz.body) == JS
    assert br.headers["content-encoding"] == "br" and br.body == b"pretend-brotli"
    assert refused.body == JS
    for r in (plain, gz, br, refused):
        assert r.headers["vary"] == "Accept-Encoding"
        assert r.headers["content-type"] == "text/javascript; charset=utf-8"
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert len({plain.headers["etag"], gz.headers["etag"], br.headers["etag"]}) == 3
    assert again.status == 304 and again.headers["vary"] == "Accept-Encoding"


async def test_ranges_head_and_sendfile(state):
    async with PushEdge(state) as t:
        t.store.install("blog", 1, SITE, released_at=RELEASED)
        whole = await t.get("/downloads/big.bin")
        one = await t.get("/downloads/big.bin", headers={"Range": "bytes=1000-1999"})
        tail = await t.get("/downloads/big.bin", headers={"Range": "bytes=-10"})
        two = await t.get("/downloads/big.bin", headers={"Range": "bytes=0-9, 100-109"})
        beyond = await t.get("/downloads/big.bin", headers={"Range": f"bytes={len(BIG)}-"})
        if_range = await t.get("/downloads/big.bin", headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
        head = await t.get("/downloads/big.bin", method="HEAD")
        js_range = await t.get("/assets/app.js", headers={"Range": "bytes=0-6", "Accept-Encoding": "gzip"})
        live = t.store.live["blog"]
        mapped = [b for b in live.bodies.values() if type(b) is DiskBody]
    assert whole.status == 200 and whole.body == BIG
    assert whole.headers["content-type"] == "application/octet-stream"
    assert (one.status, one.body, one.headers["content-range"]) == (206, BIG[1000:2000], f"bytes 1000-1999/{len(BIG)}")
    assert tail.body == BIG[-10:]
    assert two.status == 206 and two.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert BIG[0:10] in two.body and BIG[100:110] in two.body
    assert (beyond.status, beyond.headers["content-range"]) == (416, f"bytes */{len(BIG)}")
    assert if_range.status == 200 and len(if_range.body) == len(BIG)
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", str(len(BIG)))
    # a range request gets the plain file, not a compressed sibling
    assert (js_range.status, js_range.body) == (206, JS[:7]) and "content-encoding" not in js_range.headers
    assert len(mapped) == 1 and mapped[0].size == len(BIG)


async def test_only_get_and_head(state):
    async with PushEdge(state) as t:
        t.store.install("blog", 1, SITE)
        r = await t.get("/", method="POST", body=b"x")
    assert (r.status, r.headers["allow"]) == (405, "GET, HEAD")


async def test_a_switch_serves_the_new_release_at_once_and_survives_a_restart(state):
    async with PushEdge(state) as t:
        t.store.install("blog", 1, {"index.html": b"one", "keep.txt": b"same"})
        first = await t.get("/")
        kept = await t.get("/keep.txt")
        t.store.install("blog", 2, {"index.html": b"two", "keep.txt": b"same"})
        second = await t.get("/")
        kept2 = await t.get("/keep.txt")
    assert (first.body, second.body) == (b"one", b"two")
    assert first.headers["etag"] != second.headers["etag"]
    assert kept.headers["etag"] == kept2.headers["etag"]
    saved = json.loads((state / "push" / "releases" / "blog.json").read_text())
    assert saved["number"] == 2 and saved["previous"]["number"] == 1
    async with PushEdge(state) as t:
        again = await t.get("/")
        stats = AdminApp(t.server.edge).stats()["releases"]
    assert again.body == b"two"
    assert stats["blog"] == {"serving": 2, "id": saved["id"], "files": 2, "previous": 1}


async def test_access_log_and_metrics_count_push_responses(state, tmp_path):
    log = tmp_path / "access.log"
    async with PushEdge(state, access_log=str(log)) as t:
        t.store.install("blog", 1, SITE)
        await t.get("/")
        await t.get("/nope")
        t.server.edge.log.flush()
        counts = t.server.edge.counts
        exposition = t.server.edge.metrics.exposition().decode()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["path"], x["status"], x["cache"], x["service"]) for x in lines] == [
        ("/", 200, "PUSH", "blog"), ("/nope", 404, "PUSH", "blog")]
    assert counts["PUSH"] == 2
    assert 'cache="PUSH"' in exposition and 'service="blog"' in exposition
    assert 'owncdn_edge_release{service="blog"} 1.0' in exposition
    assert f"owncdn_edge_release_blobs {len(set(SITE.values()))}.0" in exposition


async def test_a_pull_only_edge_on_its_own_writes_no_release_store(tmp_path):
    config = parse_config("version: 1\nservices:\n  - {name: web, hostnames: [web.test], origins: ['http://127.0.0.1:9']}\n",
                          "pull.yaml", lambda kind, name: None)
    server = await EdgeServer.start(config, access_log="off", state_dir=tmp_path / "edge")
    try:
        assert server.edge.releases is None and not (tmp_path / "edge" / "push").exists()
    finally:
        await server.close()


async def test_a_new_config_changes_the_headers_of_the_same_release(state):
    async with PushEdge(state) as t:
        t.store.install("blog", 1, SITE)
        before = await t.get("/assets/app.js")
        text = CONFIG.replace('Cache-Control: "public, max-age=31536000, immutable"', "Cache-Control: no-cache")
        t.server.edge.apply_config(parse_config(text, "push.yaml", lambda kind, name: None))
        after = await t.get("/assets/app.js")
    assert before.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert after.headers["cache-control"] == "no-cache" and after.body == JS


async def test_a_live_release_is_warmed_for_its_first_visitors(state):
    """edge/static.py rules 2 and 6: the usual URLs' heads built, small bodies read, before any request."""
    async with PushEdge(state) as t:
        t.store.install("blog", 1, SITE, released_at=RELEASED)
        built = await warm_release(t.server.edge, "blog")
        live = t.store.live["blog"]
        warmed = sorted(target for target, coding in live.memo if coding is ANY_CODING)
        small = {digest(SITE[p]) for p in ("index.html", "about.html", "docs/index.html", "404.html")}
        bodies = set(live.bodies)
        entries = len(live.memo)
        for accept in ("gzip", "br, zstd", "identity"):   # one head serves every Accept-Encoding
            r = await t.get("/about", headers={"Accept-Encoding": accept})
            assert (r.status, r.body) == (200, b"<h1>about</h1>") and "vary" not in r.headers
        unchanged = len(live.memo) == entries
        await t.get("/assets/app.js", headers={"Accept-Encoding": "gzip"})   # has siblings: varies
        await t.get("/assets/app.js", headers={"Accept-Encoding": "br"})
    # app.js and its siblings vary on Accept-Encoding, so they wait for a request; big.bin is mapped, not read
    assert built == 5 and warmed == ["/", "/404", "/about", "/docs/", "/downloads/big.bin"]
    assert bodies == small and unchanged
    assert {("/assets/app.js", "gzip"), ("/assets/app.js", "br")} <= set(live.memo)


async def test_an_edge_on_its_own_warms_the_releases_it_finds_at_start(state):
    """edge/static.py rule 6 without a control plane: the release on disk is warmed at start."""
    async with PushEdge(state) as t:
        t.store.install("blog", 1, SITE, released_at=RELEASED)
    async with PushEdge(state) as t:
        await asyncio.gather(*t.server.warming)
        warmed = sorted(target for target, coding in t.store.live["blog"].memo if coding is ANY_CODING)
        r = await t.get("/about")
    assert warmed == ["/", "/404", "/about", "/docs/", "/downloads/big.bin"]
    assert (r.status, r.body) == (200, b"<h1>about</h1>")


@pytest.mark.parametrize("algo", ["blake3", "sha256"])  # a release pushed before BLAKE3 is checked with SHA-256
async def test_after_a_reboot_a_corrupt_unflushed_blob_is_never_served(state, monkeypatch, algo):
    monkeypatch.setattr("owncdn.edge.releases.system_boot_id", lambda: "boot-a")
    async with PushEdge(state) as t:
        t.store.install("blog", 1, SITE, released_at=RELEASED, algo=algo)  # not flushed yet (releases.py rule 6)
        about = t.store.blob_path(digest(SITE["about.html"], algo))
    about.write_bytes(b"<h1>ab\0ut</h1>")  # the OS crashed before the page cache was written back
    monkeypatch.setattr("owncdn.edge.releases.system_boot_id", lambda: "boot-b")
    async with PushEdge(state) as t:
        r = await t.get("/about")
        assert r.status == 503 and b"ab\0ut" not in r.body
        assert "blog" in t.store.pending  # fetched again once a control plane sends it
        r = await t.get("/")
        assert r.status == 200 and r.body == SITE["index.html"]
