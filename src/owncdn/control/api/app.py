"""``create_app``: the REST API as a FastAPI application."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from owncdn.control.hub import Hub
from owncdn.control.store import Store

from . import nodes, purges, services, tokens, versions
from .auth import ApiContext
from .errors import install_error_handlers
from .schemas import Health

__all__ = ["create_app"]

DESCRIPTION = """The owncdn control plane: config versions per environment, services,
nodes (edges and DNS servers) with their event streams, purges and tokens.

Authenticate with `Authorization: Bearer <token>`. Every error is
`{"error": {"status", "code", "message", "problems"?}}`."""

health_router = APIRouter(tags=["health"])


@health_router.get("/v1/health", response_model=Health, summary="Is the API up? (no token needed)")
def health() -> Health:
    return Health(ok=True)


def create_app(store: Store, *, zone: str = "cdn.test", hub: Hub | None = None,
               channels: tuple = ()) -> FastAPI:
    """The API over ``store``. ``zone`` is the DNS zone service names live in
    (``<service>.<zone>``); ``hub`` wakes event streams and purge waits (a new
    one by default; share one between apps that share a store in one process);
    ``channels`` are extra state channels for the event streams (``channels``)."""
    app = FastAPI(title="owncdn control plane", version="1", description=DESCRIPTION)
    app.state.owncdn = ApiContext(store=store, hub=hub or Hub(), zone=zone.strip(".").lower(),
                                   channels=list(channels))
    install_error_handlers(app)
    for module in (versions, services, nodes, purges, tokens):
        app.include_router(module.router)
    app.include_router(health_router)
    return app
