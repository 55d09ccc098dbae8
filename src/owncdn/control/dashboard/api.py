"""Read-only endpoints the dashboard needs beyond the REST API.

Rule 1: ``GET /v1/dashboard/whoami`` answers for any valid token (its name and
scopes, and the CDN zone), so the login page can tell a refused token (401 with
the API's message) from a good one, and hide buttons the token may not use.
Rule 2: ``GET /v1/envs/{env}/versions/{number}/diff`` is ``owncdn plan``'s diff
(``owncdn.core.config.diff``) from the version before to this one: both sources
parsed for ``env`` with secret references kept as text (plan Rule 4); a source
whose references do not validate that way is read with the placeholder instead.
Rule 3: ``GET /v1/route/explain`` is ``owncdn route explain --control`` on the
control plane: the latest version's config, the health monitor's view of the
edges (from the store) and the GeoIP database ``owncdn dns`` would open (once, on
first use; without one the configured order is explained).
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from owncdn.control.api.auth import Ctx, authenticate, require
from owncdn.control.api.errors import ApiProblem, error_responses
from owncdn.control.api.versions import SECRET_PLACEHOLDER, Env
from owncdn.control.store import Token
from owncdn.core.config import ConfigError, diff_configs, keep_references, parse_config, render_plan

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])
_geo_lock = threading.Lock()


class WhoAmI(BaseModel):
    name: str = Field(description="The token's name.")
    scopes: list[str]
    zone: str = Field(description="The CDN zone: a service's CDN name is `<service>.<zone>`.")


class ChangeOut(BaseModel):
    kind: str = Field(description="`add`, `remove` or `change`.")
    path: str
    old: Any = None
    new: Any = None


class VersionDiff(BaseModel):
    env: str
    number: int
    previous: int | None = Field(description="The version compared against; null for the first.")
    changes: list[ChangeOut]
    text: str = Field(description="The diff as `owncdn plan` prints it.")


class RouteExplained(BaseModel):
    env: str
    version: int | None
    lines: list[str] = Field(description="What `owncdn route explain` prints, line by line.")


@router.get("/v1/dashboard/whoami", response_model=WhoAmI, summary="The token's name and scopes",
            responses=error_responses(401))
def whoami(ctx: Ctx, token: Annotated[Token, Depends(authenticate)]) -> WhoAmI:
    return WhoAmI(name=token.name, scopes=sorted(token.scopes), zone=ctx.zone)


@router.get("/v1/envs/{env}/versions/{number}/diff", response_model=VersionDiff,
            summary="What a version changed from the one before (as `owncdn plan`)",
            responses=error_responses(401, 403, 404, 422))
def version_diff(env: Env, number: Annotated[int, Path(ge=1)], ctx: Ctx,
                 _: Annotated[Token, Depends(require("read", "deploy"))]) -> VersionDiff:
    version = ctx.store.get_version(env, number)
    if version is None:
        raise ApiProblem(404, "not_found", f"environment '{env}' has no version {number}")
    before = ctx.store.get_version(env, number - 1) if number > 1 else None
    new = _parsed(version.source, env, f"{env} v{number}")
    old = _parsed(before.source, env, f"{env} v{number - 1}") if before is not None else None
    changes = diff_configs(old, new)
    return VersionDiff(env=env, number=number, previous=before.number if before else None,
                       changes=[ChangeOut(kind=c.kind, path=c.path, old=c.old, new=c.new) for c in changes],
                       text=render_plan(changes))


def _parsed(source: str, env: str, name: str):
    try:
        return parse_config(source, name, keep_references, env=env)
    except ConfigError:
        return parse_config(source, name, lambda kind, ref: SECRET_PLACEHOLDER, env=env)


@router.get("/v1/route/explain", response_model=RouteExplained, tags=["status"],
            summary="Why a client gets the DNS answer it gets (as `owncdn route explain`)",
            responses=error_responses(401, 403, 404, 422))
def route_explain(
    ctx: Ctx, request: Request, _: Annotated[Token, Depends(require("read"))],
    client: Annotated[str, Query(max_length=64, description="The resolver's (or client's) address.")],
    name: Annotated[str, Query(max_length=255, description="The name asked, e.g. `blog.cdn.example.net`.")],
    ecs: Annotated[str | None, Query(max_length=64, description="An EDNS client subnet, e.g. `203.0.113.0/24`.")] = None,
    env: Annotated[str, Query(description="Environment whose config and edges to use.")] = "production",
) -> RouteExplained:
    from owncdn.core.routing import EdgeHealth
    from owncdn.core.routing.explain import explain_lines

    _check_address("client", client, network=False)
    if ecs:
        _check_address("ecs", ecs, network=True)
    latest = ctx.store.latest_version(env)
    if latest is None:
        raise ApiProblem(404, "not_found", f"environment '{env}' has no version yet: nothing routes")
    config = parse_config(latest.source, f"{env} v{latest.number}", lambda kind, ref: SECRET_PLACEHOLDER, env=env)
    edges = [EdgeHealth(e.name, e.location, e.address, e.healthy) for e in ctx.store.edge_health(env)]
    try:
        lines = explain_lines(config, _geo(request), client, name, ecs or None, frozenset(), edges)
    except ValueError as exc:
        raise ApiProblem(422, "invalid_query", str(exc)) from None
    return RouteExplained(env=env, version=latest.number, lines=lines)


def _check_address(field: str, value: str, network: bool) -> None:
    try:
        if network:
            if "/" not in value:
                raise ValueError("needs a prefix length")
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        shape = "a subnet like 203.0.113.0/24" if network else "an IP address like 203.0.113.7"
        raise ApiProblem(422, "invalid_address", f"{field} must be {shape}, got {value!r}") from None


def _geo(request: Request):
    """The GeoIP database, opened once per app (None when there is none)."""
    state = request.app.state
    with _geo_lock:
        if not hasattr(state, "dashboard_geo"):
            from owncdn.dns.geodefault import open_geo

            try:
                state.dashboard_geo = open_geo(None)
            except (FileNotFoundError, ValueError):
                state.dashboard_geo = None
        return state.dashboard_geo
