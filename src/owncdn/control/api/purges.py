"""Purges: store one, announce it to the nodes, optionally wait for their acks.

Rule 1: a purge names exactly one of ``url``, ``prefix``, ``tag`` or
``all=true``; ``soft`` marks objects stale instead of removing them;
``service`` limits it to one service of the latest version. The stored spec
holds only what was given: ``{"url": ..., "soft": false}``.

Rule 2: the nodes a purge waits for are the environment's nodes in contact
(``owncdn.core.contact``: heard from within the last ``CONTACT_WINDOW`` seconds,
and not left out because their event stream ended; a node that has been away gets
every purge it missed when it reconnects, before anything else). ``?wait=S``
waits up to S seconds (at most 60) for all of them to ack, woken by each ack
and re-checking the store every second (acks may land on another replica); a node
whose event stream ends meanwhile and stays gone is no longer waited for.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Query
from starlette.concurrency import run_in_threadpool

from owncdn.control.hub import RECHECK_SECONDS, purge_topic
from owncdn.control.store import Purge, Token
from owncdn.core.contact import CONTACT_WINDOW, IN_CONTACT, contact_state

from .auth import ApiContext, Ctx, require
from .errors import ApiProblem, error_responses
from .schemas import PurgeAcked, PurgeCreate, PurgePending, PurgeStatus, utc
from .versions import Env

__all__ = ["CONTACT_WINDOW", "MAX_WAIT", "purge_spec", "router"]

router = APIRouter(tags=["purges"])

"""Nodes heard from within this many seconds are expected to ack a purge."""
MAX_WAIT = 60.0


def purge_spec(body: PurgeCreate, services: list[str] | None) -> dict[str, Any]:
    """The stored spec of a purge request; 422 naming what is wrong."""
    given = [name for name in ("url", "prefix", "tag") if getattr(body, name) is not None]
    given += ["all"] if body.all else []
    if len(given) != 1:
        got = f"got {', '.join(given)}" if given else "got none"
        raise ApiProblem(422, "invalid_purge", f"a purge needs exactly one of url, prefix, tag or all=true ({got})")
    kind = given[0]
    spec: dict[str, Any] = {kind: True if kind == "all" else getattr(body, kind)}
    if kind in ("url", "prefix"):
        _check_target(kind, spec[kind])
    if kind == "tag" and not spec["tag"].strip():
        raise ApiProblem(422, "invalid_purge", "tag must not be empty")
    spec["soft"] = body.soft
    if body.service is not None:
        if services is None or body.service not in services:
            known = f"known services: {', '.join(services)}" if services else "the environment has no services yet"
            raise ApiProblem(422, "unknown_service", f"there is no service '{body.service}' in the latest version; {known}")
        spec["service"] = body.service
    return spec


def _check_target(kind: str, value: str) -> None:
    if value.startswith("/"):
        return
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        return
    raise ApiProblem(422, "invalid_purge", f"{kind} must be a path starting with '/' or an http(s):// URL, got {value!r}")


@router.post(
    "/v1/envs/{env}/purges", status_code=201, response_model=PurgeStatus,
    summary="Purge cached content", responses=error_responses(400, 401, 403, 422),
)
async def create_purge(
    env: Env, body: PurgeCreate, ctx: Ctx, _: Annotated[Token, Depends(require("purge"))],
    wait: Annotated[float | None, Query(gt=0, le=MAX_WAIT, description="Wait up to this many seconds (at most 60) until every node in contact has acked.")] = None,
) -> PurgeStatus:
    """Store a purge; every node of the environment receives it at once. With
    `wait`, answer when all nodes in contact acked it, or when the time is up
    (`complete` tells which)."""
    purge = await run_in_threadpool(_create, ctx, env, body)
    ctx.hub.notify(env)
    expected = await run_in_threadpool(_nodes_in_contact, ctx, env)
    if wait is None:
        return await run_in_threadpool(_status, ctx, purge, expected)
    return await _wait_for_acks(ctx, purge, expected, wait)


@router.get(
    "/v1/envs/{env}/purges/{purge_id}", response_model=PurgeStatus,
    summary="Show a purge and its acks", responses=error_responses(401, 403, 404, 422),
)
def get_purge(
    env: Env, purge_id: Annotated[int, Path(ge=1, description="The purge's id.")], ctx: Ctx,
    _: Annotated[Token, Depends(require("read", "purge"))],
) -> PurgeStatus:
    """The purge with the nodes that acked it and those (in contact now) that have not."""
    purge = ctx.store.get_purge(purge_id)
    if purge is None or purge.env != env:
        raise ApiProblem(404, "not_found", f"environment '{env}' has no purge {purge_id}")
    return _status(ctx, purge, _nodes_in_contact(ctx, env))


def _create(ctx: ApiContext, env: str, body: PurgeCreate) -> Purge:
    services = None
    if body.service is not None:
        latest = ctx.store.latest_version(env)
        services = [s.get("name") for s in ((latest.snapshot or {}).get("services") or [])] if latest else None
    return ctx.store.add_purge(env, purge_spec(body, services))


def _nodes_in_contact(ctx: ApiContext, env: str) -> dict[str, str]:
    """Node id -> name for the nodes of ``env`` in contact (Rule 2)."""
    now = time.time()
    return {
        str(n.id): n.name for n in ctx.store.list_nodes(env)
        if contact_state(n.last_contact, n.stream_ended_at, now) == IN_CONTACT
    }


def _status(ctx: ApiContext, purge: Purge, expected: dict[str, str], recheck: bool = False) -> PurgeStatus:
    """``recheck``: leave out the expected nodes no longer in contact (Rule 2)."""
    if recheck:
        live = _nodes_in_contact(ctx, purge.env)
        expected = {node_id: name for node_id, name in expected.items() if node_id in live}
    acks = ctx.store.purge_acks(purge.id)
    names = {str(n.id): n.name for n in ctx.store.list_nodes(purge.env)} if acks else {}
    acked = [
        PurgeAcked(node_id=str(a.node_id), name=names.get(str(a.node_id), str(a.node_id)), ms=a.ms, removed=a.removed)
        for a in acks
    ]
    done = {a.node_id for a in acked}
    pending = [PurgePending(node_id=node_id, name=name) for node_id, name in expected.items() if node_id not in done]
    return PurgeStatus(
        id=purge.id, spec=purge.spec, created_at=utc(purge.created_at), acked=acked, pending=pending, complete=not pending,
    )


async def _wait_for_acks(ctx: ApiContext, purge: Purge, expected: dict[str, str], wait: float) -> PurgeStatus:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    topic = purge_topic(purge.id)
    while True:
        since = ctx.hub.generation(topic)  # before reading the store (hub Rule 3)
        status = await run_in_threadpool(_status, ctx, purge, expected, True)
        remaining = deadline - loop.time()
        if status.complete or remaining <= 0 or ctx.hub.closed:
            return status
        await ctx.hub.wait(topic, min(RECHECK_SECONDS, remaining), since)
