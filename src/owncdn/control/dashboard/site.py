"""The dashboard's page and assets.

Rule 1: only the files named in ``ASSETS`` are served (no path from the URL ever
reaches the file system), each read once from the package.
Rule 2: every answer carries a Content-Security-Policy that allows scripts, styles,
fonts, images and connections from this origin only: the dashboard works with no
network but the control plane, and injected markup could not run.
Rule 3: the assets change with the package, so they are sent with ``no-cache``
(revalidated, never stale after an upgrade).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from owncdn.control.api.errors import ApiProblem

__all__ = ["ASSETS", "CSP", "router"]

router = APIRouter(include_in_schema=False)

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "worldmap.js": "text/javascript; charset=utf-8",
    "pages.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer"}


@cache
def asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _answer(name: str) -> Response:
    return Response(asset(name), media_type=ASSETS[name], headers=HEADERS)


@router.get("/")
def index() -> Response:
    return _answer("index.html")


@router.get("/dashboard/{name}")
def static(name: str) -> Response:
    if name not in ASSETS:
        raise ApiProblem(404, "not_found", f"the dashboard has no file {name!r}")
    return _answer(name)
