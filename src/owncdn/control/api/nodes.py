"""Nodes (edges and DNS servers): registration, event stream, reports, acks, status.

Rule 1: a node registers once with the bootstrap token and gets its own token,
bound to its id; with it, it opens its event stream (``events``), reports the
version it applied or rejected, and acks purges. Nothing else.

Rule 2: ``drift`` in the status means a node does not run the environment's
latest version, or rejected it; ``seconds_since_contact`` tells a silent node
from a connected one (a connected one is heard from at least every 10 s).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from owncdn.control.hub import purge_topic
from owncdn.control.store import Node, Token

from .channels import state_changed
from .auth import ApiContext, Ctx, bootstrap_token, node_token, require
from .errors import ApiProblem, error_responses
from .events import EventStream
from .schemas import (
    AckIn, AckOut, EnvStatus, NodeOut, NodeRegister, NodeRegistered, NodeStatus, ReportIn, node_out, utc,
)
from .versions import Env

__all__ = ["router", "seconds_since"]

router = APIRouter(tags=["nodes"])
NodeId = Annotated[str, Path(description="The node's id, from registration.")]

_EVENTS_DOC = """Server-sent events (`text/event-stream`) for this node:

```
event: config
data: {"env": "production", "number": 7, "source": "version: 1\\n..."}

event: purge
data: {"id": 42, "spec": {"url": "https://blog.example.com/a.css", "soft": false}}

: ping
```

First a `config` event if the environment's latest version is newer than
`version`, then every purge after `purge_after`; then new versions and purges
as they are stored, and a `: ping` comment after 10 s of silence. Reconnect
with the last version applied and the last purge id seen."""


def seconds_since(when: datetime | None, now: datetime) -> float | None:
    """Seconds from ``when`` to ``now`` (``None`` if never), rounded to 0.1 s."""
    when = utc(when)
    return None if when is None else round(max(0.0, (now - when).total_seconds()), 1)


def existing_node(ctx: ApiContext, node_id: str) -> Node:
    node = ctx.store.get_node(node_id)
    if node is None:
        raise ApiProblem(404, "not_found", f"there is no node {node_id}; it may have been deleted: register again")
    return node


@router.post(
    "/v1/nodes/register", status_code=201, response_model=NodeRegistered,
    summary="Register a node (bootstrap token)", responses=error_responses(400, 401, 403, 422),
)
def register(body: NodeRegister, ctx: Ctx, _: Annotated[Token, Depends(bootstrap_token)]) -> NodeRegistered:
    """Record a new edge or DNS server and return its own token, bound to it."""
    node = ctx.store.register_node(body.name, body.kind, body.location, body.env, body.address)
    _, text = ctx.store.create_token(f"node {body.name}", frozenset({"node"}), node_id=str(node.id))
    return NodeRegistered(node_id=str(node.id), token=text)


@router.get("/v1/nodes", response_model=list[NodeOut], summary="List nodes", responses=error_responses(401, 403, 422))
def list_nodes(
    ctx: Ctx, _: Annotated[Token, Depends(require("read"))],
    env: Annotated[str | None, Query(description="Only the nodes of this environment.")] = None,
) -> list[NodeOut]:
    return [node_out(n) for n in ctx.store.list_nodes(env)]


@router.delete(
    "/v1/nodes/{node_id}", status_code=204, response_class=Response,
    summary="Delete a node and revoke its tokens", responses={204: {"description": "Deleted."}, **error_responses(401, 403, 404)},
)
def delete_node(node_id: NodeId, ctx: Ctx, _: Annotated[Token, Depends(require("admin"))]) -> Response:
    ctx.tokens.clear()  # revocation takes effect at once on this replica
    if not ctx.store.delete_node(node_id):
        raise ApiProblem(404, "not_found", f"there is no node {node_id}; GET /v1/nodes lists them")
    return Response(status_code=204)


@router.get(
    "/v1/nodes/{node_id}/events", response_class=StreamingResponse, summary="The node's event stream (SSE)",
    description=_EVENTS_DOC,
    responses={200: {"description": "An endless event stream.", "content": {"text/event-stream": {"schema": {"type": "string"}}}}, **error_responses(401, 403, 404, 422)},
)
async def events(
    node_id: NodeId, ctx: Ctx, _: Annotated[Token, Depends(node_token)],
    version: Annotated[int, Query(ge=0, description="The version the node runs; 0 for none.")] = 0,
    purge_after: Annotated[int, Query(ge=0, description="The last purge id the node has seen; 0 for none.")] = 0,
    address: Annotated[str | None, Query(min_length=1, max_length=300, description="Where the node can be reached now, when it changed since it registered (a restart on another port).")] = None,
) -> StreamingResponse:
    node = await run_in_threadpool(existing_node, ctx, node_id)
    if address is not None and address != node.address:
        node = await run_in_threadpool(ctx.store.set_node_address, node_id, address)
        state_changed(ctx)  # health checks and DNS answers follow the new address
    stream = EventStream(ctx, node, version, purge_after, ping_seconds=ctx.ping_seconds)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream.run(), media_type="text/event-stream", headers=headers)


@router.post(
    "/v1/nodes/{node_id}/report", response_model=NodeOut,
    summary="Report the version applied or rejected", responses=error_responses(400, 401, 403, 404, 422),
)
def report(node_id: NodeId, body: ReportIn, ctx: Ctx, _: Annotated[Token, Depends(node_token)]) -> NodeOut:
    existing_node(ctx, node_id)
    return node_out(ctx.store.node_report(node_id, body.version, body.status, body.reason))


@router.post(
    "/v1/nodes/{node_id}/purges/{purge_id}/ack", response_model=AckOut,
    summary="Acknowledge a purge", responses=error_responses(400, 401, 403, 404, 422),
)
def ack_purge(
    node_id: NodeId, purge_id: Annotated[int, Path(ge=1, description="The purge's id.")], body: AckIn, ctx: Ctx,
    _: Annotated[Token, Depends(node_token)],
) -> AckOut:
    node = existing_node(ctx, node_id)
    purge = ctx.store.get_purge(purge_id)
    if purge is None or purge.env != node.env:
        raise ApiProblem(404, "not_found", f"environment '{node.env}' has no purge {purge_id}")
    ctx.store.ack_purge(purge_id, node_id, body.ms, body.removed)  # also records contact
    ctx.hub.notify(purge_topic(purge_id))
    return AckOut(purge_id=purge_id, node_id=node_id, ms=body.ms, removed=body.removed, at=datetime.now(UTC))


@router.get(
    "/v1/envs/{env}/status", response_model=EnvStatus, tags=["status"],
    summary="Versions and drift of every node of an environment", responses=error_responses(401, 403, 422),
)
def status(env: Env, ctx: Ctx, _: Annotated[Token, Depends(require("read"))]) -> EnvStatus:
    latest = ctx.store.latest_version(env)
    latest_number = latest.number if latest else 0
    now = datetime.now(UTC)
    nodes = [
        NodeStatus(
            id=str(n.id), name=n.name, kind=n.kind, location=n.location, address=n.address,
            running_version=n.running_version, reported_version=n.reported_version, status=n.status,
            reason=n.reason or "", last_contact=utc(n.last_contact),
            drift=(n.running_version or 0) != latest_number or n.status == "rejected",
            seconds_since_contact=seconds_since(n.last_contact, now),
        )
        for n in ctx.store.list_nodes(env)
    ]
    return EnvStatus(env=env, latest_version=latest.number if latest else None, nodes=nodes)
