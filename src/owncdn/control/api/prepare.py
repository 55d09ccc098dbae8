"""Work FastAPI leaves to each endpoint's first request, done once the server is up.

    await asyncio.to_thread(prepare, app)   # control/server.py, in `owncdn control`

Rules:
1. FastAPI (0.16x) reads an endpoint's source lines the first time the endpoint is
   called (``inspect.getsourcelines``: its file read and tokenized), for its error
   messages, and caches them per endpoint. For this API's 59 endpoints that took 18
   ms here, about 9 of them inside a fresh control plane's first push (its bundle,
   announcement, release, fetch, acknowledgement and status requests). ``prepare``
   fills that cache for every route ahead, in a thread; a request that comes first
   fills its own entry as before.
2. A FastAPI without that cache (``fastapi.routing._extract_endpoint_context``) gets
   nothing done; an endpoint whose source cannot be read is left to FastAPI.
3. FastAPI (0.165) also builds an included router's route contexts (each route's
   dependencies and fields, again for the router it is included in) the first time a
   request is matched against that router, and the API's 16 routers are tried in order:
   81 ms here for all of them. In a fresh control plane the first ``GET /v1/health``
   (the 11th router) took 79 ms, 23 ms with them built ahead. ``prepare`` builds them
   all (``effective_route_contexts``, cached by FastAPI until the routes change). A
   FastAPI without that method gets nothing done here.
4. Then ``core.content.bundle.prepare()`` (Rule 5 there; ``owncdn edge`` calls it too)
   loads what the first bundle of a push needs, and the store compiles the statements
   a push reads with (``Store.warm``, ``releasestore`` Rule 11).
"""

from __future__ import annotations

__all__ = ["prepare"]


def prepare(app) -> int:
    """Rules 1, 3 and 4; how many endpoints were prepared."""
    from owncdn.core.content.bundle import prepare as prepare_bundles

    prepare_bundles()
    ctx = getattr(app.state, "owncdn", None)
    if ctx is not None:
        try:
            ctx.store.warm()
        except Exception:  # noqa: BLE001 - an optimisation: a store that cannot be read says so to the requests
            pass
    try:
        from fastapi import routing
    except ImportError:  # pragma: no cover - the API is FastAPI
        return 0
    for route in app.router.routes:  # Rule 3
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for _ in contexts():
                pass
    extract = getattr(routing, "_extract_endpoint_context", None)
    if extract is None:  # Rule 2
        return 0
    done = 0
    for route in _routes(app.router.routes):
        call = getattr(getattr(route, "dependant", None), "call", None)
        if call is not None:
            extract(call)  # cached by FastAPI; its own failures give an empty context
            done += 1
    return done


def _routes(routes):
    """The routes, those of included routers too."""
    for route in routes:
        yield route
        included = getattr(route, "original_router", None)  # an included router (FastAPI 0.16x)
        if included is not None:
            yield from _routes(included.routes)
