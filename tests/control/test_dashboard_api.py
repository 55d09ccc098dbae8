"""The dashboard's server side without a browser: the page and its assets (only those,
with a Content-Security-Policy and nothing from elsewhere), ``whoami``, a version's diff
and ``route explain`` over the API, on a real SQLite store served by uvicorn."""

from __future__ import annotations

import re

import httpx
import pytest

from owncdn.control.api import ApiServer, create_app
from owncdn.control.dashboard.site import ASSETS, asset
from owncdn.control.store import Store, sqlite_url

V1 = """\
version: 1
dns: {zone: cdn.test}
locations:
  - {name: fra, lat: 50.11, lon: 8.68, addresses: [192.0.2.1]}
  - {name: sin, lat: 1.35, lon: 103.82, addresses: [192.0.2.3]}
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: [https://origin.example.com]
    headers:
      request:
        set: {X-Origin-Auth: "${env:ORIGIN_TOKEN}"}
"""
V2 = V1.replace("blog.example.com]", "blog.example.com, www.example.com]").replace("${env:ORIGIN_TOKEN}", "${env:OTHER}")


@pytest.fixture
def api(tmp_path):
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    tokens = {name: store.create_token(name, scopes)[1]
              for name, scopes in [("admin", {"admin"}), ("read", {"read"}), ("bootstrap", {"node"})]}
    with ApiServer(create_app(store, zone="cdn.test")) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        def call(method: str, path: str, token: str | None = "admin", **kw) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens.get(token, token)}"} if token else {}
            return http.request(method, path, headers=headers, **kw)
        yield call
    store.close()


def test_the_page_and_every_asset_are_served_with_a_policy_that_allows_only_this_origin(api):
    page = api("GET", "/", None)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    for name, media in ASSETS.items():
        r = api("GET", f"/dashboard/{name}", None)
        assert r.status_code == 200 and r.headers["content-type"] == media and r.headers["content-security-policy"] == csp


def test_every_file_the_page_loads_is_listed_and_none_comes_from_elsewhere():
    wanted = set(re.findall(r'/dashboard/([\w.-]+)', asset("index.html").decode()))
    for name in ASSETS:
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([\w.-]+)"', asset(name).decode()))
    assert wanted <= set(ASSETS), wanted - set(ASSETS)
    for name in ASSETS:
        text = asset(name).decode().replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://(?!\S*example|\S*cdn\.test)", text), name  # only placeholders


@pytest.mark.parametrize("path", ["/dashboard/nothing.js", "/dashboard/..%2Fsite.py", "/dashboard/%2E%2E%2F__init__.py"])
def test_a_file_not_listed_is_404(api, path):
    assert api("GET", path, None).status_code == 404


def test_whoami_names_the_token_and_refuses_a_wrong_one(api):
    assert api("GET", "/v1/dashboard/whoami", "read").json() == {"name": "read", "scopes": ["read"], "zone": "cdn.test"}
    for token in (None, "not-a-token"):
        r = api("GET", "/v1/dashboard/whoami", token)
        assert r.status_code == 401 and r.json()["error"]["message"]


def test_a_versions_diff_is_owncdn_plans_and_keeps_secret_references(api):
    for source in (V1, V2):
        assert api("POST", "/v1/envs/production/versions", json={"source": source}).status_code == 201
    first = api("GET", "/v1/envs/production/versions/1/diff", "read").json()
    assert first["previous"] is None  # against nothing, as `owncdn plan` before the first apply
    assert any(line.startswith("+ service blog (hostnames: blog.example.com;") for line in first["text"].splitlines())
    second = api("GET", "/v1/envs/production/versions/2/diff", "read").json()
    assert second["previous"] == 1
    assert second["text"].splitlines() == [
        '+ services[blog].hostnames: "www.example.com"',
        '~ services[blog].headers.request.set.X-Origin-Auth: "${env:ORIGIN_TOKEN}" -> "${env:OTHER}"',
    ]
    assert {"kind": "add", "path": "services[blog].hostnames", "old": None, "new": "www.example.com"} in second["changes"]
    assert api("GET", "/v1/envs/production/versions/9/diff").status_code == 404


def test_route_explain_uses_the_latest_version_and_the_registered_edges(api):
    assert api("GET", "/v1/route/explain", params={"client": "80.130.1.1", "name": "blog.cdn.test"}).status_code == 404
    api("POST", "/v1/envs/production/versions", json={"source": V1})
    for name, location, address in (("edge-fra", "fra", "192.0.2.1:80"), ("edge-sin", "sin", "192.0.2.3:80")):
        body = {"name": name, "kind": "edge", "location": location, "env": "production", "address": address}
        assert api("POST", "/v1/nodes/register", "bootstrap", json=body).status_code == 201
    got = api("GET", "/v1/route/explain", "read", params={"client": "80.130.1.1", "name": "blog.cdn.test"}).json()
    lines = got["lines"]
    assert got["version"] == 1 and lines[0].startswith("client 80.130.1.1: at 50.11, 8.68")
    assert re.match(r"\s+1\. fra\s+0 km\s+healthy", lines[2]) and "edge edge-fra" in lines[3]
    assert "answer A: 192.0.2.1 from fra (ttl 30)" in lines
    ecs = api("GET", "/v1/route/explain", params={"client": "80.130.1.1", "name": "blog.cdn.test", "ecs": "1.32.192.0/24"}).json()
    assert any(line.startswith("ECS scope: /") for line in ecs["lines"])
    other = api("GET", "/v1/route/explain", params={"client": "80.130.1.1", "name": "x.example.org"}).json()
    assert other["lines"] == ["x.example.org: not a service name of zone cdn.test (expected <service>.cdn.test)"]
    for params in ({"client": "nowhere", "name": "blog.cdn.test"}, {"client": "80.130.1.1", "name": "blog.cdn.test", "ecs": "1.2.3.4"}):
        r = api("GET", "/v1/route/explain", params=params)
        assert r.status_code == 422 and "must be" in r.json()["error"]["message"]


@pytest.fixture
def served(tmp_path):
    """The API on a store the test can also write to (as the ACME manager does)."""
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    tokens = {name: store.create_token(name, scopes)[1] for name, scopes in [("admin", {"admin"}), ("read", {"read"})]}
    with ApiServer(create_app(store, zone="cdn.test")) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        def call(method: str, path: str, token: str | None = "admin", **kw) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens.get(token, token)}"} if token else {}
            return http.request(method, path, headers=headers, **kw)
        call.http, call.tokens = http, tokens
        yield call, store
    store.close()


def test_a_certificates_history_lists_issuance_renewal_upload_and_failures_newest_first(served):
    from cryptography import x509

    from owncdn.testing.certs import TestCA

    api, store = served
    ca = TestCA()
    first, second = ca.issue(["blog.example.com"], days=90), ca.issue(["blog.example.com"], days=90)
    store.want_cert("blog@production", "production", ["blog.example.com"], "http-01", "https://ca.test/dir")
    store.cert_failed("blog@production", "urn:ietf:params:acme:error:rateLimited: too many orders", 0.0)

    def keep(leaf):
        meta = x509.load_pem_x509_certificate(leaf.cert_pem.encode())
        store.store_cert("blog@production", names=["blog.example.com"], cert_pem=leaf.cert_pem, key_pem=leaf.key_pem,
                         fingerprint="f" * 64, issuer="CN=owncdn test CA", not_before=0.0,
                         not_after=meta.not_valid_after_utc.timestamp(), renew_at=None)
        return format(meta.serial_number, "x")

    serials = [keep(first), keep(second)]
    history = api("GET", "/v1/certs/blog@production/history", "read")
    assert history.status_code == 200, history.text
    events = history.json()
    assert [e["kind"] for e in events] == ["renewed", "issued", "failed"]
    assert [e["serial"] for e in events] == [serials[1], serials[0], ""]
    assert events[0]["issuer"] == "CN=owncdn test CA" and events[0]["directory"] == "https://ca.test/dir"
    assert events[0]["not_after"] is not None and events[2]["not_after"] is None
    assert events[2]["error"].startswith("urn:ietf:params:acme:error:rateLimited")
    assert "PRIVATE KEY" not in history.text and "key" not in events[0]

    leaf = ca.issue(["www.example.com"], days=30)
    assert api("PUT", "/v1/certs/www", json={"cert_pem": leaf.cert_pem, "key_pem": leaf.key_pem}).status_code == 200
    assert [e["kind"] for e in api("GET", "/v1/certs/www/history").json()] == ["uploaded"]
    assert api("GET", "/v1/certs/nothing/history").status_code == 404
    assert api("GET", "/v1/certs/www/history", None).status_code == 401
    assert api("DELETE", "/v1/certs/www").status_code == 204
    assert store.cert_history("www") == []  # a deleted certificate takes its history with it


def _next_event(lines) -> str:
    for line in lines:
        if line.startswith("event: "):
            return line
    raise AssertionError("the stream ended")


def test_the_dashboard_event_stream_ticks_at_once_when_a_version_is_applied(served):
    api, _ = served
    assert api("GET", "/v1/dashboard/events", None).status_code == 401
    headers = {"Authorization": f"Bearer {api.tokens['read']}"}
    with api.http.stream("GET", "/v1/dashboard/events?env=production", headers=headers) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert _next_event(lines) == "event: changed"  # the current state, at once
        assert api("POST", "/v1/envs/production/versions", json={"source": V1}).status_code == 201
        assert _next_event(lines) == "event: changed"
