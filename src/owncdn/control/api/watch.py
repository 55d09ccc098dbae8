"""Origin health, alerts, edges' cache state and probes.

``GET /v1/health/origins`` and ``GET /v1/alerts`` read what this replica's monitor
keeps in memory (``owncdn.control.origins`` Rule 4); ``GET /v1/cache`` and
``POST /v1/probe`` ask every edge of an environment (``owncdn.control.diagnostics``).
A probe makes every edge send a request, so it needs scope deploy (or admin).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from owncdn.control.diagnostics import fan_out
from owncdn.control.store import Token

from .auth import Ctx, require
from .errors import ApiProblem, error_responses
from .schemas import utc

__all__ = ["router"]

router = APIRouter(tags=["health"])


class OriginHealthOut(BaseModel):
    env: str
    service: str
    origin: str = Field(description="The origin URL as configured.")
    url: str = Field(description="What is requested to check it.")
    healthy: bool
    successes: int
    failures: int
    status: int | None = Field(description="Status of the last answer; null when there was none.")
    ms: float | None = Field(description="Time to the last answer, in milliseconds.")
    last_check: datetime | None
    changed_at: datetime | None
    last_error: str


class ProbeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: str = Field("production", description="Environment whose edges probe.")
    url: str = Field(pattern=r"^https?://", description="The URL every edge fetches.")
    timeout: float = Field(10.0, gt=0, le=60, description="Seconds each edge may take.")
    host: str | None = Field(None, pattern=r"^[^\s]+$", max_length=300,
                             description="Host to send instead of the URL's (probe an edge address for a service).")


def _monitor(request: Request):
    return getattr(request.app.state, "health_monitor", None)


def _no_monitor() -> ApiProblem:
    return ApiProblem(503, "no_monitor", "this control-plane replica runs no health monitor (--no-health): "
                                         "ask another replica")


@router.get("/v1/health/origins", response_model=list[OriginHealthOut], summary="Health of every origin",
            responses=error_responses(401, 403, 503))
def origin_health(
    request: Request, _: Annotated[Token, Depends(require("read"))],
    env: Annotated[str | None, Query(description="Only the origins of this environment.")] = None,
) -> list[OriginHealthOut]:
    monitor = _monitor(request)
    if monitor is None:
        raise _no_monitor()
    out = []
    for h in monitor.origins.health(env):
        t, s = h.target, h.state.state
        out.append(OriginHealthOut(env=t.env, service=t.service, origin=t.origin, url=t.url, healthy=h.healthy,
                                   successes=s.successes, failures=s.failures, status=h.status, ms=h.ms,
                                   last_check=utc(h.checked_at), changed_at=utc(h.changed_at), last_error=h.error))
    return out


@router.get("/v1/alerts", summary="Alerts raised by this replica, newest last", responses=error_responses(401, 403))
def alerts(request: Request, _: Annotated[Token, Depends(require("read"))]) -> list[dict]:
    found = getattr(request.app.state, "alerts", None)
    if found is None:
        return []
    return [{"time": utc(at), "alert": a.kind, "severity": a.severity, "env": a.env, "subject": a.subject,
             "message": a.message} for at, a in found.recent]


async def _edges(ctx, request: Request, env: str):
    import asyncio

    monitor = _monitor(request)
    if monitor is None:
        raise _no_monitor()
    edges = await asyncio.to_thread(ctx.store.edge_health, env)
    return monitor, edges


@router.get("/v1/cache", summary="Each edge's cache state for a URL", responses=error_responses(401, 403, 422, 503))
async def cache_state(
    ctx: Ctx, request: Request, _: Annotated[Token, Depends(require("read"))],
    url: Annotated[str, Query(pattern=r"^https?://", description="The URL, as visitors ask for it.")],
    env: Annotated[str, Query(description="Environment whose edges to ask.")] = "production",
) -> list[dict]:
    monitor, edges = await _edges(ctx, request, env)
    from urllib.parse import quote

    return await fan_out(edges, monitor.edges, request.app.state.admin_key, "GET", f"/cache?url={quote(url, safe='')}")


@router.post("/v1/probe", summary="Fetch a URL from every edge: time to first byte and total",
             responses=error_responses(401, 403, 422, 503))
async def probe(ctx: Ctx, request: Request, body: ProbeIn,
                _: Annotated[Token, Depends(require("deploy"))]) -> list[dict]:
    monitor, edges = await _edges(ctx, request, body.env)
    return await fan_out(edges, monitor.edges, request.app.state.admin_key, "POST", "/probe",
                         json={"url": body.url, "timeout": body.timeout, "host": body.host}, timeout=body.timeout + 2)
