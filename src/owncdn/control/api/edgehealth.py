"""``GET /v1/health/edges``: what the health monitor thinks of every edge (read scope).

The monitor (``owncdn.control.health``) writes; this only reads the store, so any
replica answers the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from owncdn.control.store import Token

from .auth import Ctx, require
from .errors import error_responses
from .schemas import utc

__all__ = ["EdgeHealthOut", "router"]

router = APIRouter(tags=["health"])


class EdgeHealthOut(BaseModel):
    id: str
    name: str
    env: str
    location: str
    address: str = Field(description="HOST:PORT of the edge's public listener, as it registered.")
    healthy: bool = Field(description="The monitor's verdict, after hysteresis; true until first checked.")
    successes: int = Field(description="Consecutive good checks.")
    failures: int = Field(description="Consecutive failed checks.")
    last_check: datetime | None = Field(description="When it was last checked; null if never.")
    seconds_since_check: float | None
    changed_at: datetime | None = Field(description="When `healthy` last changed (or the first check).")
    last_error: str = Field(description="Why the last check failed; empty when it passed.")
    load: dict | None = Field(None, description="What the edge last reported: loop_lag_seconds, cpu_steal_ratio, "
                                                "load1/5/15 (null before its first answer, or without a monitor here).")
    admin: str | None = Field(None, description="HOST:PORT of the edge's admin listener, as it reported it.")
    disk: dict | None = Field(None, description="The disk of the edge's state directory, as it last reported it: "
                                                "path, free and total bytes (null before its first answer).")


@router.get("/v1/health/edges", response_model=list[EdgeHealthOut], summary="Health of every edge",
            responses=error_responses(401, 403, 422))
def edge_health(
    ctx: Ctx, request: Request, _: Annotated[Token, Depends(require("read"))],
    env: Annotated[str | None, Query(description="Only the edges of this environment.")] = None,
) -> list[EdgeHealthOut]:
    now = datetime.now(UTC).timestamp()
    monitor = getattr(request.app.state, "health_monitor", None)
    infos = monitor.edges if monitor is not None else {}
    return [
        EdgeHealthOut(
            id=e.node_id, name=e.name, env=e.env, location=e.location, address=e.address,
            healthy=e.healthy, successes=e.successes, failures=e.failures, last_check=utc(e.checked_at),
            seconds_since_check=None if e.checked_at is None else round(max(0.0, now - e.checked_at), 1),
            changed_at=utc(e.changed_at), last_error=e.error,
            load=infos[e.node_id].load.as_dict() if e.node_id in infos else None,
            admin=infos[e.node_id].admin if e.node_id in infos else None,
            disk=infos[e.node_id].disk if e.node_id in infos else None,
        )
        for e in ctx.store.edge_health(env)
    ]
