"""The REST API over a real SQLite store, served by uvicorn on loopback.

Each test gets its own store file and server; ``Api`` is a thin httpx wrapper
that sends a named token (``admin``, ``read``, ``deploy``, ``purge``,
``bootstrap``, or a node token) with each request.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from owncdn.control.api import ApiServer, create_app
from owncdn.control.hub import Hub
from owncdn.control.store import Store, sqlite_url

SITE = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: [https://origin.example.com]
    headers:
      request:
        set: {X-Origin-Auth: "${env:ORIGIN_TOKEN}"}
"""

BROKEN = """\
version: 1
services:
  - name: Blog
    hostnames: [blog.example.com]
    origins: [ftp://origin.example.com]
"""


class Api:
    """httpx against the server, with the tokens made at set-up."""

    def __init__(self, url: str, http: httpx.Client, store: Store, hub: Hub) -> None:
        self.url, self.http, self.store, self.hub = url, http, store, hub
        self.tokens = {
            name: store.create_token(name, scopes)[1]
            for name, scopes in [("admin", {"admin"}), ("read", {"read"}), ("deploy", {"deploy"}),
                                 ("purge", {"purge"}), ("bootstrap", {"node"})]
        }

    def call(self, method: str, path: str, token: str | None = "admin", **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        return self.http.request(method, path, headers=headers, **kw)

    def ok(self, method: str, path: str, token: str | None = "admin", **kw) -> dict | list:
        r = self.call(method, path, token, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def register(self, name: str, env: str = "prod") -> tuple[str, str]:
        body = {"name": name, "kind": "edge", "location": "fra", "env": env, "address": "192.0.2.1"}
        got = self.ok("POST", "/v1/nodes/register", "bootstrap", json=body)
        self.tokens[name] = got["token"]
        return got["node_id"], got["token"]


class Swap:
    """An ASGI app that forwards to ``app``: one server for the module, a fresh app per test."""

    app = None

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server():
    swap = Swap()
    with ApiServer(swap) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield swap, server.url, http


@pytest.fixture
def api(tmp_path, server):
    swap, url, http = server
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    hub = Hub()
    swap.app = create_app(store, zone="cdn.test", hub=hub)
    yield Api(url, http, store, hub)
    store.close()


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()["error"]
    assert body["status"] == status and body["code"] and body["message"]
    return body


# -- auth ------------------------------------------------------------------------------

def test_health_needs_no_token(api):
    assert api.ok("GET", "/v1/health", token=None) == {"ok": True}


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/tokens"), ("POST", "/v1/tokens"), ("DELETE", "/v1/tokens/x"),
    ("POST", "/v1/envs/prod/versions"), ("GET", "/v1/envs/prod/versions"), ("POST", "/v1/envs/prod/rollback"),
    ("GET", "/v1/envs/prod/services"), ("POST", "/v1/envs/prod/services"), ("GET", "/v1/envs/prod/status"),
    ("POST", "/v1/nodes/register"), ("GET", "/v1/nodes"), ("DELETE", "/v1/nodes/n-1"),
    ("GET", "/v1/nodes/n-1/events"), ("POST", "/v1/nodes/n-1/report"), ("POST", "/v1/nodes/n-1/purges/1/ack"),
    ("POST", "/v1/envs/prod/purges"), ("GET", "/v1/envs/prod/purges/1"),
])
def test_every_endpoint_but_health_needs_a_valid_token(api, method, path):
    for token in (None, "ocdn_0123456789abcdef_wrong", "not-even-a-token"):
        body = error(api.call(method, path, token, json={}), 401)
        assert "token" in body["message"]


def test_a_revoked_token_is_refused(api):
    made = api.ok("POST", "/v1/tokens", json={"name": "ci", "scopes": ["read"]})
    assert api.call("GET", "/v1/nodes", made["token"]).status_code == 200
    assert api.call("DELETE", f"/v1/tokens/{made['id']}").status_code == 204
    assert "revoked" in error(api.call("GET", "/v1/nodes", made["token"]), 401)["message"]
    listed = {t["id"]: t for t in api.ok("GET", "/v1/tokens")}
    assert listed[made["id"]]["revoked"] is True and "token" not in listed[made["id"]]
    assert error(api.call("DELETE", "/v1/tokens/nope"), 404)["code"] == "not_found"


# (method, path, body, scopes that may call it besides admin)
SCOPED = [
    ("GET", "/v1/tokens", None, set()),
    ("POST", "/v1/tokens", {"name": "x", "scopes": ["read"]}, set()),
    ("POST", "/v1/envs/prod/versions", {"source": SITE}, {"deploy"}),
    ("GET", "/v1/envs/prod/versions", None, {"read", "deploy"}),
    ("GET", "/v1/envs/prod/versions/1", None, {"read", "deploy"}),
    ("POST", "/v1/envs/prod/rollback", {"to": 1}, {"deploy"}),
    ("GET", "/v1/envs/prod/services", None, {"read", "deploy"}),
    ("POST", "/v1/envs/prod/services", {"origin": "https://shop.example.com"}, {"deploy"}),
    ("GET", "/v1/envs/prod/status", None, {"read"}),
    ("GET", "/v1/nodes", None, {"read"}),
    ("POST", "/v1/envs/prod/purges", {"all": True}, {"purge"}),
    ("GET", "/v1/envs/prod/purges/1", None, {"read", "purge"}),
    ("POST", "/v1/nodes/register", {"name": "e9", "kind": "edge", "location": "x", "env": "prod", "address": "a"}, {"bootstrap"}),
]


@pytest.mark.parametrize("method,path,body,allowed", SCOPED, ids=[f"{m} {p}" for m, p, _, _ in SCOPED])
def test_scopes(api, method, path, body, allowed):
    api.ok("POST", "/v1/envs/prod/versions", json={"source": SITE})
    api.ok("POST", "/v1/envs/prod/purges", json={"all": True})
    node_id, _ = api.register("edge-1")
    for token in ("read", "deploy", "purge", "bootstrap", "edge-1"):
        r = api.call(method, path, token, json=body)
        if token in allowed:
            assert r.status_code < 300, (token, r.text)
        else:
            assert token in error(r, 403)["message"] or "bootstrap" in r.text or "belongs to" in r.text
    assert api.call(method, path, "admin", json=body).status_code not in (401, 403)


def test_a_node_token_acts_only_for_its_own_node(api):
    api.ok("POST", "/v1/envs/prod/versions", json={"source": SITE})
    a, _ = api.register("edge-a")
    b, _ = api.register("edge-b")
    report = {"version": 1, "status": "applied"}
    assert api.ok("POST", f"/v1/nodes/{a}/report", "edge-a", json=report)["running_version"] == 1
    assert f"belongs to node {a}" in error(api.call("POST", f"/v1/nodes/{b}/report", "edge-a", json=report), 403)["message"]
    assert "bootstrap" in error(api.call("POST", f"/v1/nodes/{a}/report", "bootstrap", json=report), 403)["message"]
    assert error(api.call("GET", f"/v1/nodes/{b}/events", "edge-a"), 403)
    # a node token cannot register more nodes, nor read anything else
    body = {"name": "x", "kind": "dns", "location": "fra", "env": "prod", "address": "a"}
    assert "bootstrap token" in error(api.call("POST", "/v1/nodes/register", "edge-a", json=body), 403)["message"]
    error(api.call("GET", "/v1/envs/prod/versions", "edge-a"), 403)
    # deleting a node revokes its token
    assert api.call("DELETE", f"/v1/nodes/{a}").status_code == 204
    error(api.call("POST", f"/v1/nodes/{a}/report", "edge-a", json=report), 401)
    error(api.call("DELETE", f"/v1/nodes/{a}"), 404)


# -- versions ----------------------------------------------------------------------------

def test_a_valid_version_is_stored_with_its_source_as_written(api):
    made = api.call("POST", "/v1/envs/prod/versions", "deploy", json={"source": SITE, "comment": "first"})
    assert made.status_code == 201
    v = made.json()
    assert (v["env"], v["number"], v["comment"], v["author"], v["services"]) == ("prod", 1, "first", "deploy", ["blog"])
    shown = api.ok("GET", "/v1/envs/prod/versions/1", "read")
    assert shown["source"] == SITE  # the secret reference is kept for the nodes to resolve
    assert shown["snapshot"]["services"][0]["headers"]["request"]["set"] == {"X-Origin-Auth": "<secret>"}
    assert [x["number"] for x in api.ok("GET", "/v1/envs/prod/versions", "read")] == [1]
    assert error(api.call("GET", "/v1/envs/prod/versions/7"), 404)["message"] == "environment 'prod' has no version 7; the latest is v1"


def test_an_invalid_version_is_422_with_every_problem_and_nothing_is_stored(api):
    body = error(api.call("POST", "/v1/envs/prod/versions", json={"source": BROKEN, "filename": "site.yaml"}), 422)
    assert body["code"] == "invalid_config" and "nothing was stored" in body["message"]
    assert body["problems"] == [
        "site.yaml:3:11: services[0].name: expected a lowercase name of letters, digits and hyphens like 'fra', got 'Blog'",
        "site.yaml:5:15: services[0].origins[0].url: expected an http:// or https:// URL, got 'ftp://origin.example.com'",
    ]
    yaml_error = error(api.call("POST", "/v1/envs/prod/versions", json={"source": "version: [1\n"}), 422)
    assert yaml_error["problems"][0].startswith("cdn.yaml:")
    assert api.ok("GET", "/v1/envs/prod/versions") == []
    assert api.store.latest_version("prod") is None


def test_rollback_is_a_new_version_with_the_old_source(api):
    api.ok("POST", "/v1/envs/prod/versions", json={"source": SITE})
    api.ok("POST", "/v1/envs/prod/versions", json={"source": "version: 1\n"})
    r = api.call("POST", "/v1/envs/prod/rollback", "deploy", json={"to": 1})
    assert r.status_code == 201
    assert (r.json()["number"], r.json()["comment"], r.json()["services"]) == (3, "rollback to v1", ["blog"])
    assert api.ok("GET", "/v1/envs/prod/versions/3")["source"] == SITE
    assert error(api.call("POST", "/v1/envs/prod/rollback", json={"to": 9}), 404)
    assert [v["number"] for v in api.ok("GET", "/v1/envs/prod/versions")] == [3, 2, 1]


# -- services ----------------------------------------------------------------------------

def test_a_service_from_an_origin_url_alone_gets_a_cname(api):
    r = api.call("POST", "/v1/envs/prod/services", "deploy", json={"origin": "https://Origin.Example.com:8443/app"})
    assert r.status_code == 201
    made = r.json()
    assert made["cname"] == "origin-example-com.cdn.test" and made["version"] == 1
    assert made["service"] == {"name": "origin-example-com", "hostnames": ["origin-example-com.cdn.test"],
                               "origins": ["https://Origin.Example.com:8443/app"], "mode": "pull"}
    # appended to the latest source, which keeps its secret references
    api.ok("POST", "/v1/envs/prod/versions", json={"source": SITE})
    again = api.ok("POST", "/v1/envs/prod/services", json={"origin": "http://shop.example.com", "name": "shop"})
    assert (again["cname"], again["version"]) == ("shop.cdn.test", 3)
    source = api.ok("GET", "/v1/envs/prod/versions/3")["source"]
    assert "${env:ORIGIN_TOKEN}" in source
    listed = api.ok("GET", "/v1/envs/prod/services", "read")
    assert listed["version"] == 3
    assert [(s["name"], s["hostnames"]) for s in listed["services"]] == [
        ("blog", ["blog.example.com"]), ("shop", ["shop.cdn.test"])]


def test_service_errors(api):
    api.ok("POST", "/v1/envs/prod/services", json={"origin": "https://shop.example.com", "name": "shop"})
    assert error(api.call("POST", "/v1/envs/prod/services", json={"origin": "https://x.example.com", "name": "shop"}), 409)["code"] == "service_exists"
    assert "origin URL" in error(api.call("POST", "/v1/envs/prod/services", json={"origin": "ftp://x"}), 422)["message"]
    assert error(api.call("POST", "/v1/envs/prod/services", json={"origin": "https://x.example.com", "name": "Bad Name"}), 422)["code"] == "invalid_name"
    assert [v["number"] for v in api.ok("GET", "/v1/envs/prod/versions")] == [1]
    assert api.ok("GET", "/v1/envs/staging/services") == {"env": "staging", "version": None, "services": []}


# -- nodes and status ----------------------------------------------------------------------

def test_status_shows_versions_and_drift_after_reports(api):
    api.ok("POST", "/v1/envs/prod/versions", json={"source": SITE})
    a, _ = api.register("edge-a")
    b, _ = api.register("edge-b")
    c, _ = api.register("edge-c")
    api.ok("POST", f"/v1/nodes/{a}/report", "edge-a", json={"version": 1, "status": "applied"})
    api.ok("POST", f"/v1/nodes/{b}/report", "edge-b", json={"version": 1, "status": "applied"})
    api.ok("POST", "/v1/envs/prod/versions", json={"source": SITE.replace("blog.example", "www.example")})
    api.ok("POST", f"/v1/nodes/{a}/report", "edge-a", json={"version": 2, "status": "applied"})
    node = api.ok("POST", f"/v1/nodes/{b}/report", "edge-b", json={"version": 2, "status": "rejected", "reason": "no secret"})
    assert (node["running_version"], node["reported_version"], node["status"]) == (1, 2, "rejected")
    status = api.ok("GET", "/v1/envs/prod/status", "read")
    assert status["env"] == "prod" and status["latest_version"] == 2
    nodes = {n["name"]: n for n in status["nodes"]}
    assert {k: (n["running_version"], n["status"], n["drift"]) for k, n in nodes.items()} == {
        "edge-a": (2, "applied", False), "edge-b": (1, "rejected", True), "edge-c": (None, "new", True)}
    assert nodes["edge-b"]["reason"] == "no secret"
    assert 0 <= nodes["edge-a"]["seconds_since_contact"] < 5 and nodes["edge-c"]["seconds_since_contact"] is None
    assert {n["id"] for n in api.ok("GET", "/v1/nodes", "read")} == {a, b, c}
    assert api.ok("GET", "/v1/nodes?env=staging", "read") == []


# -- purges --------------------------------------------------------------------------------

def test_purge_requests_are_checked(api):
    api.ok("POST", "/v1/envs/prod/versions", json={"source": SITE})
    for body, words in [
        ({}, "exactly one of url, prefix, tag or all=true (got none)"),
        ({"url": "/a", "tag": "x"}, "(got url, tag)"),
        ({"url": "a.css"}, "a path starting with '/'"),
        ({"all": True, "service": "shop"}, "no service 'shop'"),
    ]:
        assert words in error(api.call("POST", "/v1/envs/prod/purges", "purge", json=body), 422)["message"]
    made = api.call("POST", "/v1/envs/prod/purges", "purge", json={"prefix": "/img/", "soft": True, "service": "blog"})
    assert made.status_code == 201
    assert made.json()["spec"] == {"prefix": "/img/", "soft": True, "service": "blog"}
    assert made.json()["complete"] is True  # no node is in contact
    assert api.ok("GET", f"/v1/envs/prod/purges/{made.json()['id']}", "read")["spec"]["prefix"] == "/img/"
    error(api.call("GET", f"/v1/envs/staging/purges/{made.json()['id']}"), 404)


def test_purge_with_wait_returns_when_every_node_in_contact_acked(api, monkeypatch):
    from owncdn.control.api import purges
    from owncdn.control.hub import Hub

    monkeypatch.setattr(purges, "RECHECK_SECONDS", 60.0)  # beyond the wait: no re-check before it ends
    woken, wait = [], Hub.wait

    async def spied(self, *args, **kwargs):
        woken.append(await wait(self, *args, **kwargs))
        return woken[-1]

    monkeypatch.setattr(Hub, "wait", spied)
    nodes = [api.register(f"edge-{i}") for i in range(2)]
    silent, _ = api.register("edge-silent")  # never heard from: not waited for
    for node_id, _ in nodes:
        api.store.node_contact(node_id)

    def ack_when_it_exists(node_id: str, token: str, delay: float) -> None:
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as http:
            while not api.store.purges_after("prod", 0):
                time.sleep(0.01)
            time.sleep(delay)
            pid = api.store.purges_after("prod", 0)[0].id
            http.post(f"/v1/nodes/{node_id}/purges/{pid}/ack", json={"ms": 1.5, "removed": 3}).raise_for_status()

    threads = [threading.Thread(target=ack_when_it_exists, args=(n, t, 0.1 * i)) for i, (n, t) in enumerate(nodes)]
    for t in threads:
        t.start()
    r = api.call("POST", "/v1/envs/prod/purges?wait=10", "purge", json={"url": "https://blog.example.com/a"})
    for t in threads:
        t.join()
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["complete"] is True and body["pending"] == []
    assert sorted(a["name"] for a in body["acked"]) == ["edge-0", "edge-1"]
    assert all(a["ms"] == 1.5 and a["removed"] == 3 for a in body["acked"])
    assert silent not in {a["node_id"] for a in body["acked"]}
    assert woken and all(woken)  # woken by the acks each time, never by the wait's end


def test_purge_wait_ends_at_the_deadline_with_the_pending_nodes(api):
    node_id, _ = api.register("edge-slow")
    api.store.node_contact(node_id)
    t0 = time.monotonic()
    body = api.ok("POST", "/v1/envs/prod/purges?wait=0.3", "purge", json={"tag": "home"})
    assert 0.3 <= time.monotonic() - t0 < 10  # at the 0.3 s deadline, not after 60 s
    assert body["complete"] is False and body["acked"] == []
    assert body["pending"] == [{"node_id": node_id, "name": "edge-slow"}]
    assert "less than or equal to 60" in error(api.call("POST", "/v1/envs/prod/purges?wait=61", json={"all": True}), 422)["message"]
    api.ok("POST", f"/v1/nodes/{node_id}/purges/{body['id']}/ack", "edge-slow", json={"ms": 0, "removed": 0})
    assert api.ok("GET", f"/v1/envs/prod/purges/{body['id']}")["complete"] is True
    error(api.call("POST", f"/v1/nodes/{node_id}/purges/999/ack", "edge-slow", json={"ms": 0, "removed": 0}), 404)


# -- the event stream ----------------------------------------------------------------------

async def read_events(lines, count: int, timeout: float = 2.0,
                      skip=("channel_keys",)) -> list[tuple[str, dict | None]]:
    """The next ``count`` events (pings as ("ping", None)), leaving out ``skip``
    (the key listings after a stream's first state: tests/control/test_channels.py)."""
    events: list[tuple[str, dict | None]] = []
    event, data = None, None

    async def collect() -> None:
        nonlocal event, data
        async for line in lines:
            if line == ": ping":
                events.append(("ping", None))
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and event:
                if event not in skip:
                    events.append((event, data))
                event, data = None, None
            if len(events) == count:
                return

    await asyncio.wait_for(collect(), timeout)
    return events


async def test_the_event_stream_catches_up_then_sends_new_versions_and_purges_at_once(api):
    await asyncio.to_thread(api.ok, "POST", "/v1/envs/prod/versions", json={"source": SITE})
    purge = await asyncio.to_thread(api.ok, "POST", "/v1/envs/prod/purges", json={"all": True})
    node_id, token = await asyncio.to_thread(api.register, "edge-1")
    assert api.store.get_node(node_id).last_contact is None
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=10) as http:
        async with http.stream("GET", f"/v1/nodes/{node_id}/events", params={"version": 0, "purge_after": 0}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = r.aiter_lines()
            first = await read_events(lines, 2)
            assert first == [("config", {"env": "prod", "number": 1, "source": SITE}),
                             ("purge", {"id": purge["id"], "spec": {"all": True, "soft": False}})]
            for _ in range(200):  # recorded right after the send (events Rule 2)
                if api.store.get_node(node_id).last_contact is not None:
                    break
                await asyncio.sleep(0.01)
            assert api.store.get_node(node_id).last_contact is not None
            await asyncio.to_thread(api.ok, "POST", "/v1/envs/prod/versions", json={"source": "version: 1\n"})
            (event, data), = await read_events(lines, 1, timeout=5.0)  # woken, not the 10 s ping
            assert (event, data["number"]) == ("config", 2)
            await asyncio.to_thread(api.ok, "POST", "/v1/envs/prod/purges", json={"url": "/x"})
            (event, data), = await read_events(lines, 1, timeout=1.0)
            assert (event, data["spec"]) == ("purge", {"url": "/x", "soft": False})
            assert api.hub.waiter_count("prod") == 1
    # the client went away: its waiter is gone, nothing keeps running
    for _ in range(200):
        if api.hub.waiter_count() == 0:
            break
        await asyncio.sleep(0.01)
    assert api.hub.waiter_count() == 0


async def test_a_stream_resumed_with_what_the_node_has_sends_only_what_is_new(api):
    for source in (SITE, "version: 1\n"):
        await asyncio.to_thread(api.ok, "POST", "/v1/envs/prod/versions", json={"source": source})
    p1 = await asyncio.to_thread(api.ok, "POST", "/v1/envs/prod/purges", json={"tag": "a"})
    p2 = await asyncio.to_thread(api.ok, "POST", "/v1/envs/prod/purges", json={"tag": "b"})
    node_id, token = await asyncio.to_thread(api.register, "edge-1")
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as http:
        params = {"version": 2, "purge_after": p1["id"]}
        async with http.stream("GET", f"/v1/nodes/{node_id}/events", params=params) as r:
            assert await read_events(r.aiter_lines(), 1) == [("purge", {"id": p2["id"], "spec": {"tag": "b", "soft": False}})]


async def test_a_long_purge_backlog_is_sent_in_batches(api, monkeypatch):
    from owncdn.control.api import events as events_module

    monkeypatch.setattr(events_module, "BATCH", 2)
    ids = [(await asyncio.to_thread(api.ok, "POST", "/v1/envs/prod/purges", json={"tag": f"t{i}"}))["id"] for i in range(5)]
    node_id, token = await asyncio.to_thread(api.register, "edge-1")
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.stream("GET", f"/v1/nodes/{node_id}/events") as r:
            got = await read_events(r.aiter_lines(), 5)
    assert [data["id"] for _, data in got] == ids


@pytest.mark.parametrize("first", [True, False])
async def test_a_stream_writes_its_first_contact_at_once_and_later_ones_in_the_batch(api, first, monkeypatch):
    """Rule 2, through the API: the first send's contact is in the store right away."""
    from owncdn.control.api import events

    monkeypatch.setattr(events, "CONTACT_DELAY", 0.05 if first else 0.2)
    node_id, token = await asyncio.to_thread(api.register, "edge-1")
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        async with http.stream("GET", f"/v1/nodes/{node_id}/events", params={"version": 0, "purge_after": 0}) as r:
            assert r.status_code == 200
            for _ in range(200):
                if api.store.get_node(node_id).last_contact is not None:
                    break
                await asyncio.sleep(0.01)
            assert api.store.get_node(node_id).last_contact is not None
            if not first:  # the node deleted: the batch notices at the next contact, the stream ends
                await asyncio.to_thread(api.store.delete_node, node_id)
                await asyncio.sleep(1.1)  # past CONTACT_EVERY
                await asyncio.to_thread(api.ok, "POST", "/v1/envs/prod/versions", json={"source": "version: 1\n"})
                lines = [line async for line in r.aiter_lines()]  # ends
                assert any(line.startswith("event: config") for line in lines)


async def test_a_quiet_stream_sends_pings_and_records_contact(tmp_path):
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    _, bootstrap = store.create_token("bootstrap", {"node"})
    app = create_app(store)
    app.state.owncdn.ping_seconds = 0.2
    with ApiServer(app) as server:
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {bootstrap}"}) as http:
            r = await http.post("/v1/nodes/register", json={"name": "e", "kind": "dns", "location": "x", "env": "prod", "address": "a"})
            node_id, token = r.json()["node_id"], r.json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            async with http.stream("GET", f"/v1/nodes/{node_id}/events") as stream:
                lines = stream.aiter_lines()
                assert await read_events(lines, 1) == [("ping", None)]
                seen = store.get_node(node_id).last_contact
                for _ in range(10):  # contact is written at most once a second (CONTACT_EVERY)
                    assert await read_events(lines, 1) == [("ping", None)]
                    if store.get_node(node_id).last_contact > seen:
                        break
                assert store.get_node(node_id).last_contact > seen
    store.close()


# -- bad requests ------------------------------------------------------------------------

def test_malformed_json_is_400_with_a_clear_message(api):
    r = api.call("POST", "/v1/envs/prod/versions", content=b'{"source": ', headers={"Content-Type": "application/json"})
    body = error(r, 400)
    assert body["code"] == "malformed_json" and "not valid JSON" in body["message"]


@pytest.mark.parametrize("body,problem", [
    ({"source": 3}, "source: Input should be a valid string"),
    ({}, "source: this field is required"),
    ({"source": "version: 1\n", "comentt": "typo"}, "comentt: unknown field"),
    ([1, 2], "request body: expected a JSON object"),
])
def test_wrong_fields_and_types_are_422_naming_the_field(api, body, problem):
    got = error(api.call("POST", "/v1/envs/prod/versions", json=body), 422)
    assert got["code"] == "invalid_request" and any(problem in p for p in got["problems"]), got
    assert api.store.latest_version("prod") is None


def test_wrong_types_elsewhere(api):
    assert "scopes[0]" in error(api.call("POST", "/v1/tokens", json={"name": "x", "scopes": ["root"]}), 422)["message"]
    assert "scopes" in error(api.call("POST", "/v1/tokens", json={"name": "x", "scopes": "admin"}), 422)["message"]
    assert "all" in error(api.call("POST", "/v1/envs/prod/purges", json={"all": "yes"}), 422)["message"]
    assert "path.env" in error(api.call("GET", "/v1/envs/bad%20env/versions"), 422)["message"]
    assert api.ok("GET", "/v1/tokens") and len(api.ok("GET", "/v1/tokens")) == 5


def test_unknown_routes_and_methods_are_json(api):
    assert "GET /v1/nope" in error(api.call("GET", "/v1/nope"), 404)["message"]
    assert error(api.call("PUT", "/v1/health"), 405)["code"] == "method_not_allowed"


# -- the OpenAPI document ----------------------------------------------------------------

def test_the_api_scopes_are_the_stores():
    from typing import get_args

    from owncdn.control.api.schemas import Scope
    from owncdn.control.store import SCOPES

    assert set(get_args(Scope)) == SCOPES


def test_the_openapi_document_describes_every_operation(api):
    doc = api.ok("GET", "/openapi.json", token=None)
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    operations = [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 20  # the core API's; every operation is checked below
    for path, method, op in operations:
        assert op.get("summary"), (path, method)
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert ok, (path, method)
        for status in ok:
            if status == "204":
                continue
            content = op["responses"][status]["content"]
            schema = next(iter(content.values()))["schema"]
            assert schema, (path, method)
        if path != "/v1/health":
            assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


# -- the hub -----------------------------------------------------------------------------

async def test_hub_wakes_waiters_from_another_thread_and_cleans_up():
    hub = Hub()
    waiter = asyncio.create_task(hub.wait("prod", 5))
    await asyncio.sleep(0.01)
    assert hub.waiter_count("prod") == 1
    await asyncio.to_thread(hub.notify, "prod")
    assert await asyncio.wait_for(waiter, 1) is True
    assert await hub.wait("prod", 0.01) is False  # no notify: times out
    since = hub.generation("prod")
    hub.notify("prod")
    assert await hub.wait("prod", 5, since) is True  # a notify before the wait is not missed
    cancelled = asyncio.create_task(hub.wait("staging", 5))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert hub.waiter_count() == 0


async def test_a_hub_waiter_on_several_topics_wakes_on_any_and_misses_none():
    hub = Hub()
    topics = ("prod", "streams/prod/edge")
    waiter = asyncio.create_task(hub.wait(topics, 5))
    await asyncio.sleep(0.01)
    assert hub.waiter_count() == 1 and hub.waiter_count("prod") == 1 and hub.waiter_count("streams/prod/edge") == 1
    hub.notify("streams/prod/dns")  # another topic: still waiting
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await asyncio.to_thread(hub.notify, "streams/prod/edge")
    assert await asyncio.wait_for(waiter, 1) is True
    assert hub.waiter_count() == 0
    for moved in topics:  # a notify of either topic between reading `since` and waiting is not missed
        since = hub.generation(topics)
        hub.notify(moved)
        assert await hub.wait(topics, 5, since) is True
    since = hub.generation(topics)
    hub.notify("streams/prod/dns")
    assert await hub.wait(topics, 0.01, since) is False


async def test_closing_the_hub_ends_event_streams_so_shutdown_is_not_held_up(api):
    node_id, token = await asyncio.to_thread(api.register, "edge-1")
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.stream("GET", f"/v1/nodes/{node_id}/events") as r:
            for _ in range(200):
                if api.hub.waiter_count("prod"):
                    break
                await asyncio.sleep(0.01)
            api.hub.close()
            rest = await asyncio.wait_for(r.aread(), 2)
    assert b"event: config" not in rest and b"event: purge" not in rest  # only the channels' key lists
    assert all(line.startswith((b"event: channel_keys", b"data: ")) for line in rest.splitlines() if line)
    assert await api.hub.wait("prod", 5) is True  # closed: no more waiting


async def test_a_node_that_comes_back_elsewhere_updates_its_address(api):
    """An edge restarted on another port keeps its identity; the address it streams with is recorded."""
    node_id, token = await asyncio.to_thread(api.register, "edge-1")
    before = api.store.get_node(node_id).address
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as http:
        for address, expected in ((None, before), (before, before), ("127.0.0.9:8081", "127.0.0.9:8081")):
            params = {"version": 0} if address is None else {"version": 0, "address": address}
            async with http.stream("GET", f"/v1/nodes/{node_id}/events", params=params) as r:
                assert r.status_code == 200
            assert api.store.get_node(node_id).address == expected
        async with http.stream("GET", f"/v1/nodes/{node_id}/events", params={"address": ""}) as r:
            assert r.status_code == 422


@pytest.mark.parametrize("backend, trusted", [("sqlite", 60.0), ("postgresql", 2.0)])
def test_a_checked_token_is_trusted_longer_when_no_other_replica_shares_the_store(backend, trusted):
    """auth Rule 5: SQLite is one control plane's alone, and its revocations clear the
    cache; replicas sharing PostgreSQL re-read a token after 2 s."""
    from types import SimpleNamespace

    from owncdn.control.api.auth import ApiContext
    from owncdn.control.store import Token

    ctx = ApiContext(store=SimpleNamespace(backend=backend), hub=Hub(), zone="cdn.test")
    token = Token(id="t1", name="ci", scopes=frozenset({"deploy"}), node_id=None, created_at=0.0, revoked=False)
    ctx.tokens["ocdn_t1_secret"] = (token, 100.0)
    assert ctx.cached_token("ocdn_t1_secret", 100.0 + trusted - 0.01) is token
    assert ctx.cached_token("ocdn_t1_secret", 100.0 + trusted) is None
