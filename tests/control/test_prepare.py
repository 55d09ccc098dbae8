"""FastAPI's first-request work done ahead (control/api/prepare.py)."""

from __future__ import annotations

import fastapi.routing as routing

from owncdn.control.api import create_app
from owncdn.control.api.prepare import prepare
from owncdn.control.store import Store, sqlite_url


def endpoints(app) -> list:
    out, todo = [], list(app.router.routes)
    while todo:
        route = todo.pop()
        if isinstance(route, routing.APIRoute):
            out.append(route.endpoint)
        todo += getattr(getattr(route, "original_router", None), "routes", [])
    return out


def test_every_endpoint_s_source_context_is_read_ahead(tmp_path, monkeypatch):
    store = Store(sqlite_url(tmp_path / "state.db"))
    store.migrate()
    app = create_app(store)
    monkeypatch.setattr(routing, "_endpoint_context_cache", {})  # as in a fresh process
    found = endpoints(app)
    assert len(found) > 40
    assert prepare(app) == len(found)
    cached = routing._endpoint_context_cache
    assert all(id(f) in cached and cached[id(f)]["line"] > 0 for f in found)


def test_a_fastapi_without_that_work_gets_nothing_done(tmp_path, monkeypatch):
    app = create_app(Store(sqlite_url(tmp_path / "state.db")))  # not migrated: warming it fails quietly
    monkeypatch.delattr(routing, "_extract_endpoint_context")
    assert prepare(app) == 0


def test_what_the_first_bundle_needs_is_loaded_ahead():
    import subprocess
    import sys

    code = ("import sys; from owncdn.core.content import bundle; assert 'blake3' not in sys.modules; "
            "bundle.prepare(); assert 'blake3' in sys.modules and bundle._HEADER is not None")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_router_s_route_contexts_are_built_ahead(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    store = Store(sqlite_url(tmp_path / "state.db"))
    store.migrate()
    app = create_app(store)
    built = []
    original = routing._IncludedRouter._build_effective_context

    def counted(self, route):
        built.append(route)
        return original(self, route)

    monkeypatch.setattr(routing._IncludedRouter, "_build_effective_context", counted)
    prepare(app)
    assert len(built) > 40  # each route, for the router it is included in
    built.clear()
    with TestClient(app) as client:
        assert client.get("/v1/health").status_code == 200  # matched against the routers before it too
        assert client.get("/v1/no-such-thing").status_code == 404  # against every router
    assert built == []
