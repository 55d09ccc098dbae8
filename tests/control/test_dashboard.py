"""The web dashboard in a real browser: Debian's Chromium driven by Playwright, against a
control plane and three edges in this process (``owncdn.testing.fleet``, real HTTP
listeners), fed by real requests made to the edges.

Every wait is on a selector (Playwright polls until it matches or its timeout); the
page refreshes every half second (``?refresh=0.5``). Screenshots of every page go to
``test-output/dashboard/`` (or ``$OWNCDN_TEST_OUTPUT/dashboard``).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import httpx
import pytest

from owncdn.testing.certs import TestCA
from owncdn.testing.fleet import Fleet
from owncdn.testing.origin import FakeOrigin

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("OWNCDN_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "dashboard"

SITE = """
version: 1
dns: {{zone: cdn.test}}
locations:
  - {{name: fra, city: Frankfurt, lat: 50.11, lon: 8.68, addresses: [127.0.1.1]}}
  - {{name: iad, city: Ashburn, lat: 38.95, lon: -77.45, addresses: [127.0.1.2]}}
  - {{name: sin, city: Singapore, lat: 1.35, lon: 103.82, addresses: [127.0.1.3]}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
    cache: {{default_ttl: {ttl}}}
"""


@pytest.fixture
async def origin():
    o = FakeOrigin()
    o.route("/", body=b"home" * 100, headers={"Cache-Control": "max-age=600"})
    o.route("/page", body=b"page" * 50, headers={"Cache-Control": "max-age=600"})
    await o.start()
    yield o
    await o.close()


@pytest.fixture
async def fleet(tmp_path, origin):
    async with Fleet(tmp_path, edges=3, locations=["fra", "iad", "sin"]) as f:
        v = await f.apply(SITE.format(origin=origin.url, ttl="60s"), comment="first")
        await f.wait_applied(v)
        yield f


@pytest.fixture
async def page(fleet):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.errors = errors
        await page.goto(f"{fleet.url}/?refresh=0.5")
        yield page
        await browser.close()
    assert not [e for e in errors if "401" not in e], errors  # a refused token logs its 401; nothing else may fail


async def sign_in(page, token: str) -> None:
    await page.fill("#token", token)
    await page.press("#token", "Enter")


async def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_a_wrong_token_is_refused_and_the_admin_token_signs_in(fleet, page):
    await page.wait_for_selector("#login-form")
    await sign_in(page, "not-a-token")
    error = await page.wait_for_selector("#login-error:not([hidden])")
    assert "Token refused" in await error.inner_text()
    assert "unknown or revoked" in await error.inner_text()
    await shot(page, "login-refused")
    assert await page.is_hidden("#shell")
    await sign_in(page, fleet.admin_token)
    await page.wait_for_selector("#config-version[data-version='1'][data-in-sync='true']")
    assert (await page.inner_text("#who")).startswith("admin (admin)")
    # the nav works from the keyboard: Tab to a link, Enter
    await page.focus("nav a[data-page='overview']")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.dataset.page") == "services"
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#services-table")
    assert await page.get_attribute("nav a[data-page='services']", "aria-current") == "page"
    # a read-only token signs in too, and may not purge
    await page.click("#logout")
    read = await asyncio.to_thread(fleet.api.create_token, "viewer", ["read"])
    await sign_in(page, read["token"])
    await page.wait_for_selector("#services-table")
    assert await page.is_disabled("#purge-submit")
    assert "no purge scope" in await page.inner_text("#purge")
    # the page itself allows nothing from elsewhere
    response = await page.request.get(f"{fleet.url}/")
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_charts_follow_real_requests_and_a_purge_is_acknowledged_by_every_edge(fleet, page, origin):
    for i in range(3):
        await fleet.get(i, "/")  # one miss per edge
        await fleet.get(i, "/")  # and a hit
    await fleet.get(0, "/page")
    await sign_in(page, fleet.admin_token)
    # 7 requests, 3 + 1 of them from the origin: the tiles and the charts say so
    await page.wait_for_selector("#tile-requests[data-value='7']")
    await page.wait_for_selector("#chart-requests[data-sum='7']")
    assert await page.inner_text("#tile-hit-ratio .value") == "42.9%"
    assert await page.get_attribute("#tile-bandwidth", "data-value") == str(3 * 2 * 400 + 200)
    assert await page.get_attribute("#tile-origin", "data-value") == str(3 * 400 + 200)
    assert "site" in await page.inner_text("#top-services")
    assert "No alerts since this control plane started" in await page.inner_text("#alerts")
    # an edge's report that it could not switch to a release is an alert, shown on the overview
    node = await asyncio.to_thread(fleet.store.register_node, "edge-x", "edge", "fra", "production", "192.0.2.7")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {fleet.admin_token}"}) as http:
        r = await http.post(f"{fleet.url}/v1/nodes/{node.id}/releases",
                            json={"service": "site", "number": 1, "status": "failed", "reason": "disk <b>full</b>"})
    assert r.status_code == 200, r.text
    row = await page.wait_for_selector("#alerts-table tbody tr")
    shown = await row.inner_text()
    assert "critical" in shown and "release_failed" in shown and "edge edge-x (production) could not switch" in shown
    assert "disk <b>full</b>" in shown and await page.query_selector("#alerts-table b") is None   # as text
    await asyncio.to_thread(fleet.store.delete_node, node.id)   # not an edge the purge below waits for
    await shot(page, "overview")
    await page.emulate_media(color_scheme="dark")
    await shot(page, "overview-dark")
    await page.emulate_media(color_scheme="light")

    await page.click("nav a[data-page='services']")
    await page.wait_for_selector("#services-table")
    row = await page.inner_text("#services-table tbody tr")
    assert "example.test" in row and "site.cdn.test" in row and origin.url in row
    await page.select_option("#purge-kind", "url")
    await page.fill("#purge-value", "http://example.test/")
    await page.click("#purge-submit")
    await page.wait_for_selector("#purge-result[data-complete='true']")
    acked = await page.eval_on_selector_all("#purge-acks li[data-state='acked']", "els => els.map(e => e.dataset.node)")
    assert sorted(acked) == ["edge-0", "edge-1", "edge-2"]
    assert "Every edge acknowledged (3 of 3)" in await page.inner_text("#purge-summary")
    await shot(page, "services-purge")
    assert (await fleet.get(1, "/")).headers["x-cache"] == "MISS"  # the purge really happened


async def test_rollback_edges_and_the_other_pages(fleet, page, origin):
    v2 = await fleet.apply(SITE.format(origin=origin.url, ttl="5m"), comment="longer ttl")
    await fleet.wait_applied(v2)
    await fleet.get(0, "/")
    await sign_in(page, fleet.admin_token)
    await page.wait_for_selector("#config-version[data-version='2']")

    await page.click("nav a[data-page='rollouts']")
    await page.wait_for_selector("#diff-text[data-version='2']")
    assert "~ services[site].cache.default_ttl: 60.0 -> 300.0" in await page.inner_text("#diff-text")
    await page.click("button[data-rollback='1']")
    await page.click("#rollback-confirm")
    await page.wait_for_selector("#versions-table[data-latest='3']")
    assert "rollback to v1" in await page.inner_text("#rollback-result")
    await fleet.wait_applied(3)
    await page.wait_for_selector("#diff-text[data-version='3']")
    assert "~ services[site].cache.default_ttl: 300.0 -> 60.0" in await page.inner_text("#diff-text")
    assert "No pushed releases" in await page.inner_text("#releases")
    await shot(page, "rollouts")

    for _ in range(300):  # the monitor has each edge's answer (load, disk) before the page asks for it
        if all(e["disk"] and e["load"] for e in await asyncio.to_thread(fleet.api.edge_health)):
            break
        await asyncio.sleep(0.05)
    await page.click("nav a[data-page='edges']")
    await page.wait_for_selector("#locations-table")
    for name in ("fra", "iad", "sin"):
        await page.wait_for_selector(f".map g.site[data-location='{name}'][data-state='up']")
    await page.wait_for_selector("#nodes-table")
    await page.wait_for_function("document.querySelector('#nodes-table').innerText.includes('Disk free')")
    nodes = await page.inner_text("#nodes-table")
    assert nodes.count("in sync") == 3 and "v3" in nodes and "Disk free" in nodes
    assert len(re.findall(r"\d [kMGT]?B \(\d+\.\d%\)", nodes)) == 3  # each edge's free disk, as its health answer said
    await page.fill("#route-client", "80.130.1.1")  # a resolver in Germany (DB-IP City Lite)
    await page.fill("#route-name", "site.cdn.test")
    await page.click("#route-submit")
    explained = await (await page.wait_for_selector("#route-out")).inner_text()
    assert "1. fra" in explained and "answer A: 127.0.1.1 from fra" in explained
    await shot(page, "edges")

    await page.click("nav a[data-page='logs']")
    # edge-0 served it, though edge-1 of the test before answered a byte-identical request head;
    # its line may come in a later refresh of the tail than the table's first rows
    row = "edge-0\tsite\t200\tMISS\tGET example.test/\t400"
    await page.wait_for_function("(row) => (document.querySelector('#tail-table')?.innerText || '').includes(row)", arg=row)
    assert row in await page.inner_text("#tail-table")
    await page.click("#query-run")
    await page.wait_for_selector("#query-table")
    assert "site" in await page.inner_text("#query-table")
    await shot(page, "logs")

    await page.click("nav a[data-page='usage']")
    await page.wait_for_selector("#usage-day-table")
    assert "site" in await page.inner_text("#usage-month-table")
    await shot(page, "usage")

    await page.click("nav a[data-page='certificates']")
    await page.wait_for_selector("#certs[data-state='ok']")
    leaf = TestCA().issue(["example.test"], days=30)
    await asyncio.to_thread(fleet.api.put_cert, "site-upload", leaf.cert_pem, leaf.key_pem)
    # read from the table on the page: a row handle taken before a live re-render is detached,
    # and a detached row's text has no tabs between its cells
    expected = "site-upload\texample.test\tvalid\tCN=owncdn test CA\t"
    await page.wait_for_function("(want) => (document.querySelector('#certs-table tbody')?.innerText || '').includes(want)",
                                 arg=expected)
    row = await page.inner_text("#certs-table tbody")
    assert expected in row and "(29 days)" in row
    await shot(page, "certificates")


async def test_pages_update_live_and_certificates_show_their_history(fleet, page, origin):
    # polling only every 10 minutes: whatever changes on the page now came by the event stream
    await page.goto(f"{fleet.url}/?refresh=600")
    await sign_in(page, fleet.admin_token)
    await page.wait_for_selector("#live[data-stream='up']")
    await page.click("nav a[data-page='rollouts']")
    await page.wait_for_selector("#versions-table[data-latest='1']")
    await fleet.apply(SITE.format(origin=origin.url, ttl="2m"), comment="live")
    await page.wait_for_selector("#versions-table[data-latest='2']")
    assert "live" in await page.inner_text("#versions-table")

    await page.click("nav a[data-page='certificates']")
    await page.wait_for_selector("#certs[data-state='ok']")
    leaf = TestCA().issue(["example.test"], days=20)
    await asyncio.to_thread(fleet.api.put_cert, "site-upload", leaf.cert_pem, leaf.key_pem)
    await asyncio.to_thread(fleet.store.cert_failed, "site-upload", "CA said no: rejectedIdentifier", 0.0)
    await page.wait_for_selector("#certs-table tbody tr.failing .expiry.warn[data-days='19']")
    await page.click("details[data-cert='site-upload'] summary")
    history = await (await page.wait_for_selector("details[data-cert='site-upload'][open] table.history")).inner_text()
    assert "failed\tCA said no: rejectedIdentifier" in history and "uploaded\tCN=owncdn test CA" in history
    # the next failure arrives live, and the open history stays open with it
    await asyncio.to_thread(fleet.store.cert_failed, "site-upload", "CA said no again", 0.0)
    await page.wait_for_selector("details[data-cert='site-upload'][open] table.history tbody tr:nth-child(3)")
    assert "failed\tCA said no again" in await page.inner_text("details[data-cert='site-upload'] table.history")
    await shot(page, "certificates-history")

    # a lone point at the right edge of a chart is drawn whole (its dot is 6 px wide)
    edges = await page.evaluate("""async () => {
        const { lineChart } = await import("/dashboard/charts.js");
        const fig = lineChart({ id: "t", title: "t", format: String,
          points: [{ t: new Date(0), v: null }, { t: new Date(60000), v: 1 }] });
        document.getElementById("main").append(fig);
        const svg = fig.querySelector("svg").getBoundingClientRect(), dot = fig.querySelector(".dot").getBoundingClientRect();
        return [dot.right + 3, svg.right];
    }""")
    assert edges[0] <= edges[1] + 0.5, edges


async def test_pushed_releases_roll_back_and_a_pruned_one_offers_no_button(fleet, page, origin, tmp_path):
    from owncdn.client.push import push_site
    from owncdn.control.blobgc import collect_blobs
    from owncdn.core.content.retention import Retention

    v2 = await fleet.apply(SITE.format(origin=origin.url, ttl="60s") + "  - {name: blog, hostnames: [blog.test], mode: push}\n")
    await fleet.wait_applied(v2)
    site = tmp_path / "public"
    site.mkdir()
    for n in (1, 2, 3):
        (site / "index.html").write_text(f"<h1>release {n}</h1>")
        await asyncio.to_thread(push_site, fleet.api, site, service="blog", comment=f"<b>v{n}</b>")
    status = await asyncio.to_thread(fleet.api.release_status, "production", "blog", 3, 30)
    assert status["complete"]  # no edge serves release 1 any more: retention keeps what an edge serves
    report = await asyncio.to_thread(collect_blobs, fleet.store, fleet.blobs, Retention(keep=2, grace=3600))
    assert report.pruned_releases == 1  # release 1 (blobgc Rule 5)
    await sign_in(page, fleet.admin_token)
    await page.click("nav a[data-page='rollouts']")
    await page.wait_for_selector("#releases-table [data-pruned='blog/1']")
    assert await page.query_selector("button[data-activate='blog/1']") is None
    shown = await page.inner_text("#releases-table")
    assert all(f"<b>v{n}</b>" in shown for n in (1, 2, 3))  # each release's comment, as text
    assert await page.query_selector("#releases-table b") is None
    await page.click("button[data-activate='blog/2']")
    await page.wait_for_selector("#releases-table button[data-activate='blog/3']")
    assert await asyncio.to_thread(fleet.store.current_release_number, "production", "blog") == 2

    # an edge in contact that cannot fetch the current release says why, next to who serves it
    full = await asyncio.to_thread(fleet.store.register_node, "edge-full", "edge", "fra", "production", "192.0.2.9")
    await asyncio.to_thread(fleet.store.node_contact, full.id)
    await asyncio.to_thread(fleet.store.report_node_release, full.id, "blog", 2, "retrying",
                            "no space left on this edge's disk (/srv/push: No space left on device); 1 blob not fetched")
    await page.click("nav a[data-page='overview']")
    await page.click("nav a[data-page='rollouts']")
    trouble = await page.wait_for_selector("#releases-table [data-trouble='edge-full']")
    assert await trouble.inner_text() == ("edge-full retrying: no space left on this edge's disk (/srv/push: "
                                          "No space left on device); 1 blob not fetched")
    assert await trouble.get_attribute("class") == "warn"
    await shot(page, "releases")


async def test_without_traffic_statistics_the_overview_shows_the_edges_own_figures(tmp_path):
    from playwright.async_api import async_playwright

    from owncdn.control.api import ApiServer, create_app
    from owncdn.control.store import Store, sqlite_url

    store = Store(sqlite_url(tmp_path))  # a control plane with no analytics store: /v1/stats answers 503
    store.migrate()
    admin = store.create_token("admin", {"admin"})[1]
    store.register_node("edge-a", "edge", "fra", "production", "127.0.0.1:9")
    with ApiServer(create_app(store, zone="cdn.test")) as server:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = await browser.new_page()
            page.set_default_timeout(15_000)
            await page.goto(f"{server.url}/?refresh=0.5")
            await sign_in(page, admin)
            await page.wait_for_selector("#glance-fallback")
            assert await page.inner_text("#tile-edges .value") == "1 of 1"
            assert await page.get_attribute("#traffic", "data-state") == "unavailable"
            await shot(page, "overview-without-stats")
            await browser.close()
    store.close()
