"""Bearer tokens and scopes: who may call what.

Rule 1: every endpoint but ``GET /v1/health`` needs ``Authorization: Bearer
<token>``; no token, or an unknown or revoked one, is 401.

Rule 2: ``admin`` may do everything. Otherwise the token needs one of the
scopes the endpoint names (``require``): ``read`` for GETs, ``deploy`` for
versions, services and rollback, ``purge`` for purges. A missing scope is 403.

Rule 3: ``node`` tokens act for nodes. A token made by registration is bound to
its node and may use only that node's endpoints (``node_token``); a ``node``
token bound to no node is a bootstrap token and may only register nodes
(``bootstrap_token``).

Rule 4: the dependencies here are coroutines: FastAPI runs a plain function
dependency in a worker thread, and a request checked by ``context``,
``authenticate`` and ``require`` had hopped there and back three times before its
endpoint began (about 2.4 ms of a one-file push's bundle request, waiting for the
pool and the interpreter lock). A token checked lately (Rule 5) is
taken from ``ApiContext.tokens`` on the event loop; only asking the store hops to a
worker thread.

Rule 5: a token is trusted for ``AUTH_CACHE_SECONDS`` (2 s) when control-plane replicas
share the store, for ``AUTH_CACHE_ALONE_SECONDS`` (60 s) when it is SQLite, which one
control plane uses alone: there every revocation (a token's, a node's deletion) goes
through this replica's API, which forgets the cached tokens at once, so the time only
bounds how long a change made to the file behind its back goes unseen. A push comes
more than 2 s after the last request with its token, as do the edges' fetches after
their last report: each asked the store again, a worker-thread hop apiece before
the request could begin (1-2 ms of a one-file push's bundle, and of each fetch).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from owncdn.control.hub import Hub
from owncdn.control.store import Store, Token

from .errors import ApiProblem

AUTH_CACHE_SECONDS = 2.0
"""How long a checked token is trusted without asking the store again when replicas
share the store (PostgreSQL): a token revoked through another control-plane replica
stops working within this time (at once on the replica that revoked it)."""
AUTH_CACHE_ALONE_SECONDS = 60.0
"""The same for a store no other replica uses (SQLite: one control plane per state
directory), Rule 5."""

__all__ = ["ApiContext", "Ctx", "bootstrap_token", "context", "node_token", "require"]

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `POST /v1/tokens` (or from node registration), sent as `Authorization: Bearer <token>`.",
)


@dataclass
class ApiContext:
    """What every endpoint works with: the store, the hub and the CDN zone."""

    store: Store
    hub: Hub
    zone: str
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    """Serialises read-modify-write of versions (adding a service) in this process."""
    ping_seconds: float = 10.0
    """Silence after which an event stream sends ``: ping``."""
    feeds: dict = field(default_factory=dict)
    """env -> (hub generation, read at, after purge id, latest number, purges): see
    events.EventStream._feed."""
    feed_lock: threading.Lock = field(default_factory=threading.Lock)
    contacts: object = None
    """events.ContactBatch: the event streams' contact writes put off and made together
    (events Rule 2), made at first use."""
    channels: list = field(default_factory=list)
    """State channels sent on every node's event stream (see ``channels``)."""
    service_modes: dict = field(default_factory=dict)
    """(env, version number) -> {service: mode} of that (immutable) version, for
    ``releases._push_service``: a push reads the latest number, not the whole version."""
    recent_manifests: OrderedDict = field(default_factory=OrderedDict)
    """(env, service) -> the manifest of the release last created here (releases
    Rules 9 and 10), under ``recent_lock``."""
    recent_lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict = field(default_factory=dict)
    """token text -> (Token, checked at): authentications reused for a while (Rule 5),
    so a node's stream of acknowledgements does not read the store for each one."""

    def cached_token(self, text: str, now: float) -> Token | None:
        """The token ``text`` checked lately (Rules 4, 5), else None."""
        hit = self.tokens.get(text)
        if hit is not None and now - hit[1] < self.auth_seconds():
            return hit[0]
        return None

    def auth_seconds(self) -> float:
        """Rule 5: how long a checked token is trusted."""
        return AUTH_CACHE_ALONE_SECONDS if getattr(self.store, "backend", None) == "sqlite" else AUTH_CACHE_SECONDS

    def authenticate(self, text: str, now: float) -> Token | None:
        token = self.cached_token(text, now)
        if token is not None:
            return token
        token = self.store.authenticate(text)
        if token is None:
            self.tokens.pop(text, None)
            return None
        if len(self.tokens) > 10_000:
            self.tokens.clear()
        self.tokens[text] = (token, now)
        return token


async def context(request: Request) -> ApiContext:
    return request.app.state.owncdn


Ctx = Annotated[ApiContext, Depends(context)]


async def authenticate(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Token:
    """The token of the request; 401 without a valid one (Rule 4: the store is asked
    in a worker thread, and only when the token was not checked lately)."""
    if credentials is None or not credentials.credentials:
        raise ApiProblem(401, "unauthorized", "this endpoint needs a token: send the header 'Authorization: Bearer <token>'")
    text, now = credentials.credentials, time.monotonic()
    token = ctx.cached_token(text, now)
    if token is None:
        token = await run_in_threadpool(ctx.authenticate, text, now)
    if token is None or token.revoked:
        raise ApiProblem(401, "unauthorized", "the token is unknown or revoked; ask an admin for a new one (POST /v1/tokens)")
    return token


def require(*scopes: str) -> Callable[..., Token]:
    """A dependency: the request's token, if it has ``admin`` or one of ``scopes``."""
    wanted = frozenset(scopes)

    async def check(request: Request, token: Annotated[Token, Depends(authenticate)]) -> Token:
        if "admin" in token.scopes or wanted & token.scopes:
            return token
        needs = " or ".join(sorted(wanted | {"admin"}))
        has = ", ".join(sorted(token.scopes)) or "none"
        raise ApiProblem(
            403, "forbidden",
            f"{request.method} {request.url.path} needs a token with scope {needs}; "
            f"token '{token.name}' has scopes: {has}",
        )

    return check


async def node_token(
    node_id: Annotated[str, Path(description="The node's id, from registration.")],
    token: Annotated[Token, Depends(require("node"))],
) -> Token:
    """A token that may act for node ``node_id``: that node's own, or admin."""
    if "admin" in token.scopes or token.node_id == node_id:
        return token
    if token.node_id is None:
        raise ApiProblem(403, "forbidden", f"token '{token.name}' is a bootstrap token: it may only register nodes (POST /v1/nodes/register); use the token registration returned")
    raise ApiProblem(403, "forbidden", f"token '{token.name}' belongs to node {token.node_id}; it may not act for node {node_id}")


async def bootstrap_token(token: Annotated[Token, Depends(require("node"))]) -> Token:
    """A ``node`` token bound to no node (or admin): may register nodes."""
    if "admin" in token.scopes or token.node_id is None:
        return token
    raise ApiProblem(403, "forbidden", f"token '{token.name}' belongs to node {token.node_id}; registering a node needs the bootstrap token (scope node, bound to no node)")
