"""A real browser (Chromium, through Playwright) loads a page and its assets from the
edge over HTTPS: it negotiates HTTP/2 with the edge's own frame layer (core/http/h2server.py),
gets every object, and the next visitor is served from the cache."""

from __future__ import annotations

from owncdn.testing.https import HttpsEdge
from owncdn.testing.origin import FakeOrigin

CHROMIUM = "/usr/bin/chromium"
CACHEABLE = "public, max-age=300"
PAGE = (b'<!doctype html><html><head><meta charset="utf-8"><title>h2</title>'
        b'<link rel="stylesheet" href="/style.css"><script src="/app.js"></script></head>'
        b'<body><img src="/logo.bin" id="logo"><p id="p">hello</p></body></html>')


async def test_chromium_loads_a_page_over_http2_and_the_next_visitor_hits_the_cache():
    from playwright.async_api import async_playwright

    origin = FakeOrigin()
    origin.route("/", body=PAGE, headers={"Content-Type": "text/html", "Cache-Control": CACHEABLE})
    origin.route("/style.css", body=b"p { color: rgb(1, 2, 3); }" + b" " * 40_000,
                 headers={"Content-Type": "text/css", "Cache-Control": CACHEABLE})
    origin.route("/app.js", body=b"window.loaded = 42;", headers={"Content-Type": "text/javascript",
                                                                  "Cache-Control": CACHEABLE})
    origin.route("/logo.bin", body=bytes(range(256)) * 1024, headers={"Content-Type": "image/x-test",
                                                                       "Cache-Control": CACHEABLE})
    async with HttpsEdge(origin) as t:
        url = f"https://www.example.test:{t.tls_port}/"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--host-resolver-rules=MAP *.example.test 127.0.0.1"])
            try:
                caches: dict[str, list] = {}
                visits = []
                for _ in range(2):  # two visitors, each with an empty browser cache
                    context = await browser.new_context(ignore_https_errors=True)  # the test CA is not the system's
                    page = await context.new_page()
                    page.on("response", lambda r: caches.setdefault(r.url.rsplit("/", 1)[1], []).append(
                        (r.status, r.headers.get("x-cache"))))
                    await page.goto(url, wait_until="load")
                    visits.append(await page.evaluate("""() => ({
                        protocol: performance.getEntriesByType('navigation')[0].nextHopProtocol,
                        color: getComputedStyle(document.getElementById('p')).color,
                        js: window.loaded,
                        assets: performance.getEntriesByType('resource').map(e => [e.name, e.nextHopProtocol])})"""))
                    await context.close()
            finally:
                await browser.close()
    for visit in visits:
        assert (visit["protocol"], visit["color"], visit["js"]) == ("h2", "rgb(1, 2, 3)", 42)
        assert {name.rsplit("/", 1)[1] for name, proto in visit["assets"] if proto == "h2"} >= {
            "app.js", "logo.bin", "style.css"}
    for name in ("", "style.css", "app.js", "logo.bin"):
        assert caches[name] == [(200, "MISS"), (200, "HIT")], (name, caches[name])
        assert origin.hits("/" + name) == 1
