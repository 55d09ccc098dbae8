"""Edges whose event stream ended are not waited for (owncdn.core.contact, events.py
Rule 6): a release status, a purge and the contact batch, on a real SQLite store
behind the REST API. The store's clock runs behind on demand, so "heard from 20 s
ago" needs no sleeping; the API's status reads the real time."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from owncdn.control.api import ApiServer, create_app
from owncdn.control.api.events import ContactBatch, flush_contacts
from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.store import Store, sqlite_url

SITE = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    mode: push
"""


class Lagging:
    """A clock ``lag`` seconds behind the real one."""

    def __init__(self) -> None:
        self.lag = 0.0

    def __call__(self) -> float:
        return time.time() - self.lag


@pytest.fixture
def fleet(tmp_path):
    clock = Lagging()
    store = Store(sqlite_url(tmp_path), clock=clock)
    store.migrate()
    blobs = DirBlobStore(tmp_path / "blobs")
    app = create_app(store, blobs=blobs)
    _, admin = store.create_token("admin", {"admin"})
    with ApiServer(app) as server, httpx.Client(base_url=server.url, timeout=10,
                                                headers={"Authorization": f"Bearer {admin}"}) as http:
        assert http.post("/v1/envs/production/versions", json={"source": SITE}).status_code == 201
        data = b"x"
        name = hashlib.sha256(data).hexdigest()
        assert http.put(f"/v1/blobs/{name}", content=data).status_code < 300
        manifest = {"files": {"index.html": {"sha256": name, "size": 1}}}
        assert http.post("/v1/services/blog/releases", json={"manifest": manifest}).status_code == 201
        nodes = {n: store.register_node(n, "edge", "fra", "production", "192.0.2.1").id for n in ("a", "b", "c")}
        yield http, store, clock, nodes
    store.close()


def names(rows: list[dict]) -> list[str]:
    return [r["name"] for r in rows]


def test_an_edge_whose_stream_ended_is_named_and_not_waited_for(fleet):
    http, store, clock, nodes = fleet
    clock.lag = 20
    for name, node_id in nodes.items():
        store.stream_started(node_id, f"s-{name}")  # heard from 20 s ago
    now = time.time()
    store.nodes_contact({}, {nodes["c"]: ("s-c", now - 10),  # gone for 10 s
                             nodes["b"]: ("s-b", now - 1)})   # gone for 1 s: it may be reconnecting
    st = http.get("/v1/services/blog/releases/1/status").json()
    assert (names(st["pending"]), names(st["disconnected"]), st["complete"]) == (["a", "b"], ["c"], False)

    for name in ("a", "b"):
        store.report_node_release(nodes[name], "blog", 1, "serving")
    started = time.monotonic()
    st = http.get("/v1/services/blog/releases/1/status?wait=30").json()
    assert st["complete"] and names(st["serving"]) == ["a", "b"] and names(st["disconnected"]) == ["c"]
    assert time.monotonic() - started < 10  # not the 30 s of the wait, nor c's 60 s window

    store.nodes_contact({}, {nodes["c"]: ("s-old", now)})  # an older stream's end: changes nothing
    store.stream_started(nodes["c"], "s-c2")  # c is back: waited for again
    st = http.get("/v1/services/blog/releases/1/status").json()
    assert (names(st["pending"]), st["disconnected"], st["complete"]) == (["c"], [], False)


def test_a_purge_does_not_wait_for_an_edge_whose_stream_ended(fleet):
    http, store, clock, nodes = fleet
    clock.lag = 20
    for name, node_id in nodes.items():
        store.stream_started(node_id, f"s-{name}")
    store.nodes_contact({}, {nodes["c"]: ("s-c", time.time() - 10)})
    got = http.post("/v1/envs/production/purges", json={"url": "/x"}).json()
    assert sorted(names(got["pending"])) == ["a", "b"]

    answer: list[dict] = []
    waiting = threading.Thread(target=lambda: answer.append(
        http.post("/v1/envs/production/purges?wait=30", json={"url": "/y"}, timeout=40).json()))
    started = time.monotonic()
    waiting.start()
    while not store.purges_after("production", got["id"]):
        time.sleep(0.01)
    [purge] = store.purges_after("production", got["id"])
    store.ack_purge(purge.id, nodes["a"], 1.0, 0)
    store.nodes_contact({}, {nodes["b"]: ("s-b", time.time() - 10)})  # b stops while the purge waits
    waiting.join(40)
    [st] = answer
    assert st["complete"] and names(st["acked"]) == ["a"] and st["pending"] == []
    assert time.monotonic() - started < 20  # not the 30 s of the wait


async def test_the_batch_writes_stream_ends_and_what_waits_at_shutdown(tmp_path):
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    try:
        a = store.register_node("a", "edge", "x", "prod", "1").id
        store.stream_started(a, "s1")
        batch = ContactBatch(store)
        loop = asyncio.get_running_loop()
        batch.end(loop, a, "s1")
        heard_at = store.now() + 5
        batch.heard["n-00000000"] = heard_at
        batch.heard[a] = heard_at

        class Ctx:
            contacts = batch

        await flush_contacts(Ctx())  # before the batch's own delay
        node = store.get_node(a)
        assert node.stream_ended_at is not None and node.last_contact == heard_at
        assert batch.gone == {"n-00000000"} and batch.heard == {} and batch.ended == {}
        await asyncio.sleep(0.6)  # the batch's own turn comes with nothing left to write
    finally:
        store.close()


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


async def test_two_replicas_share_stream_ends_and_a_late_old_end_changes_nothing(store_url):
    """Two control-plane replicas (each its app, hub and Store) on one database: SQLite
    and PostgreSQL (conftest.py)."""
    stores = [Store(store_url), Store(store_url)]
    stores[0].migrate()
    _, admin = stores[0].create_token("admin", {"admin"})
    _, bootstrap = stores[0].create_token("bootstrap", {"node"})
    servers = [ApiServer(create_app(s, blobs=DirBlobStore(Path(tempfile.mkdtemp())))).start() for s in stores]
    a, b = (httpx.AsyncClient(base_url=s.url, timeout=20, headers={"Authorization": f"Bearer {admin}"}) for s in servers)
    try:
        assert (await a.post("/v1/envs/production/versions", json={"source": SITE})).status_code == 201
        name = hashlib.sha256(b"x").hexdigest()
        assert (await a.put(f"/v1/blobs/{name}", content=b"x")).status_code < 300
        assert (await b.put(f"/v1/blobs/{name}", content=b"x")).status_code < 300  # each its own blob directory
        manifest = {"files": {"index.html": {"sha256": name, "size": 1}}}
        assert (await a.post("/v1/services/blog/releases", json={"manifest": manifest})).status_code == 201
        body = {"name": "edge-1", "kind": "edge", "location": "fra", "env": "production", "address": "192.0.2.1"}
        got = (await a.post("/v1/nodes/register", json=body, headers={"Authorization": f"Bearer {bootstrap}"})).json()
        node_id, node_auth = got["node_id"], {"Authorization": f"Bearer {got['token']}"}
        status = "/v1/services/blog/releases/1/status"

        def ended_at():
            return stores[1].get_node(node_id).stream_ended_at

        async def stream(client: httpx.AsyncClient, opened: asyncio.Event, stop: asyncio.Event) -> None:
            async with client.stream("GET", f"/v1/nodes/{node_id}/events", headers=node_auth) as r:
                assert r.status_code == 200
                lines = r.aiter_lines()  # held: a dropped iterator closes the connection when collected
                await lines.__anext__()
                opened.set()
                await stop.wait()

        async def open_stream(client: httpx.AsyncClient) -> tuple[asyncio.Event, asyncio.Task]:
            opened, stop = asyncio.Event(), asyncio.Event()
            task = asyncio.ensure_future(stream(client, opened, stop))
            await asyncio.wait_for(opened.wait(), 10)
            return stop, task

        # a stream on replica A ends: replica B leaves the edge out once the grace is over
        stop, task = await open_stream(a)
        await _until(lambda: stores[1].get_node(node_id).last_contact is not None, "the first contact")
        stop.set()
        await task
        await _until(lambda: ended_at() is not None, "the end written by replica A")
        st = (await b.get(status)).json()
        assert [n["name"] for n in st["pending"]] == ["edge-1"]  # within the grace
        started = time.monotonic()
        st = (await b.get(status + "?wait=15")).json()
        assert st["complete"] and [n["name"] for n in st["disconnected"]] == ["edge-1"] and st["pending"] == []
        assert time.monotonic() - started < 12

        # it reconnects to replica B: waited for again on A
        stop_b, task_b = await open_stream(b)
        await _until(lambda: ended_at() is None, "the new stream clearing the end")
        st = (await a.get(status)).json()
        assert [n["name"] for n in st["pending"]] == ["edge-1"] and st["disconnected"] == []

        # an old stream on A noticed to end after the newer one on B opened: nothing changes
        stop_a, task_a = await open_stream(a)  # newest now: A's
        stop_b.set()
        await task_b  # B's older stream ends: not the newest, not written
        await asyncio.sleep(1.0)  # the contact batch's delay, twice
        assert ended_at() is None
        stop_a.set()
        await task_a
        await _until(lambda: ended_at() is not None, "the newest stream's end")
    finally:
        await a.aclose()
        await b.aclose()
        for server in servers:
            server.stop()
        for s in stores:
            s.close()
