"""``create_app``: the REST API as a FastAPI application."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from owncdn.control.health import HealthChannel
from owncdn.control.hub import Hub
from owncdn.control.store import Store

from . import edgehealth, nodes, purges, services, tokens, versions
from . import blobgc
from . import blobs as blob_api
from . import releases
from . import logs as log_api
from . import certs as cert_api
from .auth import ApiContext
from .errors import install_error_handlers
from .releasechannels import release_channels
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
               channels: tuple = (), blobs=None, analytics=None) -> FastAPI:
    """The API over ``store``. ``zone`` is the DNS zone service names live in
    (``<service>.<zone>``); ``hub`` wakes event streams and purge waits (a new
    one by default; share one between apps that share a store in one process);
    ``channels`` are extra state channels for the event streams (``channels``);
    ``blobs`` is the blob store of pushed releases (``owncdn.control.blobs``; without
    one the blob endpoints answer 503)."""
    app = FastAPI(title="owncdn control plane", version="1", description=DESCRIPTION)
    app.state.owncdn = ApiContext(store=store, hub=hub or Hub(), zone=zone.strip(".").lower(),
                                   channels=[HealthChannel(), *release_channels(), *channels])
    app.state.blobs = blobs
    app.state.analytics = analytics  # shipped access logs in DuckDB (owncdn.control.analytics)
    _add_certificates(app)
    install_error_handlers(app)
    # the push's routers first: a request is matched against the routes in the order
    # included, about 7 us each here, and a push makes dozens (no path of theirs is
    # one of the others')
    for module in (blob_api, blobgc, releases):
        app.include_router(module.router)
    for module in (versions, services, nodes, purges, tokens, edgehealth):
        app.include_router(module.router)
    app.include_router(health_router)
    app.include_router(log_api.router)  # /v1/logs, /v1/stats (api/logs.py)
    _add_watch(app)  # origin health, alerts, cache state, probes, /metrics
    from owncdn.control.dashboard import install_dashboard

    install_dashboard(app)  # the web dashboard at / (control/dashboard)
    return app


def _add_watch(app: FastAPI) -> None:
    """Origin health, alerts, cache state, probes (``watch``), the ``admin`` channel that
    gives edges their probe token (``owncdn.control.diagnostics``), and ``/metrics``
    (``owncdn.control.metrics``). The server sets ``health_monitor`` and ``alerts``."""
    from owncdn.control.diagnostics import AdminChannel, admin_key
    from owncdn.control.metrics import install_metrics

    from . import watch

    app.state.admin_key = admin_key()
    app.state.health_monitor = None
    app.state.alerts = None
    app.state.owncdn.channels.append(AdminChannel(app.state.admin_key))
    app.include_router(watch.router)
    install_metrics(app)


def _add_certificates(app: FastAPI) -> None:
    """Certificates: the ``/v1/certs`` endpoints and the ``cert`` / ``acme_dns`` /
    ``acme_http`` channels (``owncdn.control.acme``); ``app.state.acme_manager`` is set
    by the server that runs the manager, so ``renew`` can wake it."""
    from owncdn.control.acme import acme_channels
    from owncdn.control.acme.sealing import Sealer

    app.state.acme_sealer = Sealer.from_env()
    app.state.acme_manager = None
    app.state.owncdn.channels.extend(acme_channels(app.state.acme_sealer))
    app.include_router(cert_api.router)
