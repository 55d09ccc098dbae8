"""The web dashboard the control plane serves at ``/``: the CDN at a glance.

- ``site``    the page and its assets (``static/``: HTML, CSS and small vanilla JS
              modules, no build step), served by the control plane itself with a
              Content-Security-Policy that allows nothing from elsewhere.
- ``api``     the few read-only endpoints the dashboard needs beyond the REST API:
              who the token is, a version's diff, a route explanation.
- ``events``  ``GET /v1/dashboard/events``: a server-sent "changed" tick, so an open
              page refreshes at once (polling stays as the fallback).

The browser keeps the API token the user pasted in ``sessionStorage`` and sends it
as ``Authorization: Bearer`` on every ``/v1`` call; the page itself is public and
holds no data. ``install_dashboard(app)`` is the one hook in ``create_app``.
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install_dashboard"]


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` and ``/dashboard/*``, and its API endpoints."""
    from . import api, events, site

    app.include_router(api.router)
    app.include_router(events.router)
    app.include_router(site.router)
