"""``GET /v1/dashboard/events``: a server-sent-events stream that tells an open
dashboard page "something changed, refresh now".

Rule 1: the stream carries no data but a tick: ``event: changed`` with
``data: {"digest": "..."}``. The page re-reads the REST API it already polls, so a
lost tick costs latency, never correctness, and nothing is sent that the token's
``read`` scope could not read anyway.
Rule 2: a tick is sent when the *digest* of the environment's state differs from the
last one sent: the latest version, each node's running/reported version and status,
the newest purge and the acks of recent purges, the edges' health, the certificates
(id, last change, failures) and the current releases. One small read per check.
Rule 3: the stream checks when the hub wakes it (a new version or purge in the
environment; certificates or edge health anywhere, via ``notify_all``) and at least
once a second without a wake-up (``RECHECK_SECONDS``): purge acks, node reports and
writes on other control-plane replicas are seen that way (hub Rule 4).
Rule 4: the first event is the current digest (the page can tell the stream is up);
a ``: ping`` comment follows 15 s without a tick; the stream ends when the hub is
closed (shutdown) and the page reconnects, or falls back to polling.
Rule 5: ``EventSource`` cannot send an ``Authorization`` header, so the page reads the
stream with ``fetch`` and a ``ReadableStream`` reader; the token never goes in a URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from owncdn.control.api.auth import Ctx, require
from owncdn.control.api.errors import error_responses
from owncdn.control.hub import RECHECK_SECONDS
from owncdn.control.store import StoreError, Token

__all__ = ["PING_SECONDS", "RECENT_PURGES", "digest", "router"]

router = APIRouter(tags=["dashboard"])

PING_SECONDS = 15.0
RECENT_PURGES = 20
"""Acks are counted for this many of the environment's newest purges (Rule 2)."""


def digest(store, env: str) -> str:
    """A short hash of what the dashboard shows for ``env`` (Rule 2)."""
    from owncdn.control.store.certschema import CertificateRow
    from owncdn.control.store.releaseschema import CurrentReleaseRow
    from owncdn.control.store.schema import EdgeHealthRow, NodeRow, PurgeAckRow, PurgeRow, VersionRow

    def work(s) -> list:
        version = s.scalar(select(func.max(VersionRow.number)).where(VersionRow.env == env))
        nodes = s.execute(select(NodeRow.id, NodeRow.running_version, NodeRow.reported_version, NodeRow.status)
                          .where(NodeRow.env == env).order_by(NodeRow.id)).all()
        newest = s.scalar(select(func.max(PurgeRow.id)).where(PurgeRow.env == env)) or 0
        acks = s.scalar(select(func.count()).select_from(PurgeAckRow)
                        .where(PurgeAckRow.purge_id > newest - RECENT_PURGES, PurgeAckRow.purge_id <= newest))
        health = s.execute(select(EdgeHealthRow.node_id, EdgeHealthRow.healthy).order_by(EdgeHealthRow.node_id)).all()
        certs = s.execute(select(CertificateRow.id, CertificateRow.updated_at, CertificateRow.failures)
                          .order_by(CertificateRow.id)).all()
        releases = s.execute(select(CurrentReleaseRow.service, CurrentReleaseRow.number)
                             .where(CurrentReleaseRow.env == env).order_by(CurrentReleaseRow.service)).all()
        return [version, [list(r) for r in nodes], newest, acks, [list(r) for r in health],
                [list(r) for r in certs], [list(r) for r in releases]]

    state = store._read(work)
    return hashlib.sha256(json.dumps(state, separators=(",", ":")).encode()).hexdigest()[:16]


async def ticks(ctx, env: str, recheck: float = RECHECK_SECONDS, ping: float = PING_SECONDS) -> AsyncIterator[str]:
    """The SSE body (Rules 3 and 4)."""
    loop = asyncio.get_running_loop()
    hub, last = ctx.hub, None
    next_ping = loop.time() + ping
    while not hub.closed:
        since = hub.generation(env)
        try:
            now = await run_in_threadpool(digest, ctx.store, env)
        except StoreError:
            return
        if now != last:
            last = now
            yield f"event: changed\ndata: {json.dumps({'digest': now})}\n\n"
            next_ping = loop.time() + ping
        elif loop.time() >= next_ping:
            yield ": ping\n\n"
            next_ping = loop.time() + ping
        await hub.wait(env, min(recheck, max(0.0, next_ping - loop.time())), since)


@router.get("/v1/dashboard/events", summary="Ticks when what the dashboard shows changes (server-sent events)",
            response_class=StreamingResponse, description="`event: changed` with `data: {\"digest\": \"...\"}` at "
            "once and whenever what the dashboard shows changes; `: ping` after 15 s without one.",
            responses={200: {"description": "An endless event stream.",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                       **error_responses(401, 403)})
async def dashboard_events(ctx: Ctx, _: Annotated[Token, Depends(require("read"))],
                           env: Annotated[str, Query(max_length=64)] = "production") -> StreamingResponse:
    return StreamingResponse(ticks(ctx, env), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
