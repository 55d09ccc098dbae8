"""Services of an environment: list them, or add one from an origin URL alone.

Rule 1: adding a service is a new version: the latest source (or a minimal
``version: 1`` document) is loaded, the service appended, the result dumped
with ``yaml.safe_dump(sort_keys=False)``, validated and stored. Comments of the
old source are not kept; secret references are (they are plain strings).

Rule 2: the new service's name defaults to a slug of the origin's host
(``origin.example.com`` -> ``origin-example-com``) and its one hostname is
``<name>.<zone>``: the name users point their CNAME at.

Rule 3: the read-modify-write runs under the API's write lock, so two adds in
one process never lose each other's service.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from fastapi import APIRouter, Depends

from owncdn.control.store import Token

from .auth import Ctx, require
from .errors import ApiProblem, error_responses
from .schemas import LocationList, LocationOut, ServiceCreate, ServiceCreated, ServiceList, ServiceOut
from .versions import Env, store_version

__all__ = ["router", "service_name_for", "services_of"]

router = APIRouter(tags=["services"])

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def service_name_for(host: str) -> str:
    """A service name from an origin host: ``Origin.Example.com`` -> ``origin-example-com``."""
    return re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")[:63].rstrip("-")


def services_of(snapshot: dict[str, Any] | None) -> list[ServiceOut]:
    """The services of a version's snapshot, for display."""
    out = []
    for svc in (snapshot or {}).get("services") or []:
        origins = [o["url"] if isinstance(o, dict) else str(o) for o in svc.get("origins") or []]
        out.append(ServiceOut(name=svc.get("name", ""), hostnames=list(svc.get("hostnames") or []), origins=origins,
                              mode=svc.get("mode") or "pull"))
    return out


@router.get(
    "/v1/envs/{env}/services", response_model=ServiceList,
    summary="List the services of the latest version", responses=error_responses(401, 403, 422),
)
def list_services(env: Env, ctx: Ctx, _: Annotated[Token, Depends(require("read", "deploy"))]) -> ServiceList:
    latest = ctx.store.latest_version(env)
    if latest is None:
        return ServiceList(env=env, version=None, services=[])
    return ServiceList(env=env, version=latest.number, services=services_of(latest.snapshot))


@router.get(
    "/v1/envs/{env}/locations", response_model=LocationList, tags=["status"],
    summary="List the edge locations of the latest version, with their nodes", responses=error_responses(401, 403, 422),
)
def list_locations(env: Env, ctx: Ctx, _: Annotated[Token, Depends(require("read", "deploy"))]) -> LocationList:
    """The locations the config declares and the nodes registered in each."""
    latest = ctx.store.latest_version(env)
    declared = ((latest.snapshot or {}).get("locations") or []) if latest else []
    nodes: dict[str, list[str]] = {}
    for node in ctx.store.list_nodes(env):
        nodes.setdefault(node.location, []).append(node.name)
    names = [loc["name"] for loc in declared] + sorted(set(nodes) - {loc["name"] for loc in declared})
    by_name = {loc["name"]: loc for loc in declared}
    return LocationList(env=env, version=latest.number if latest else None, locations=[
        LocationOut(name=n, city=by_name.get(n, {}).get("city"), country=by_name.get(n, {}).get("country"),
                    lat=by_name.get(n, {}).get("lat"), lon=by_name.get(n, {}).get("lon"),
                    declared=n in by_name, nodes=sorted(nodes.get(n, [])))
        for n in names])


@router.post(
    "/v1/envs/{env}/services", status_code=201, response_model=ServiceCreated,
    summary="Put a site behind the CDN from its origin URL", responses=error_responses(400, 401, 403, 409, 422),
)
def create_service(env: Env, body: ServiceCreate, ctx: Ctx, token: Annotated[Token, Depends(require("deploy"))]) -> ServiceCreated:
    """Add a service that pulls from ``origin`` as a new version of the
    environment, and return the CDN hostname to point a CNAME at."""
    host = _origin_host(body.origin)
    name = body.name if body.name is not None else service_name_for(host)
    if not _SLUG.fullmatch(name):
        raise ApiProblem(422, "invalid_name", f"service name {name!r} must be lowercase letters, digits and hyphens, starting with a letter or digit; pass name= to choose one")
    cname = f"{name}.{ctx.zone}"
    with ctx.write_lock:
        latest = ctx.store.latest_version(env)
        data = _load(latest.source if latest else None)
        services = data.get("services") or []
        if any(isinstance(s, dict) and s.get("name") == name for s in services):
            raise ApiProblem(409, "service_exists", f"environment '{env}' already has a service named '{name}'; pass another name")
        service = {"name": name, "hostnames": [cname], "origins": [body.origin]}
        data["services"] = [*services, service]
        source = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        version = store_version(ctx, env, source, f"add service {name} ({body.origin})", token.name)
    return ServiceCreated(service=ServiceOut(name=name, hostnames=[cname], origins=[body.origin]), cname=cname, version=version.number)


def _origin_host(origin: str) -> str:
    expected = f"expected an http:// or https:// origin URL like https://origin.example.com, got {origin!r}"
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ApiProblem(422, "invalid_origin", expected) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiProblem(422, "invalid_origin", expected)
    return parts.hostname


def _load(source: str | None) -> dict[str, Any]:
    if source is None:
        return {"version": 1}
    data = yaml.safe_load(source)
    if not isinstance(data, dict):
        raise ApiProblem(422, "invalid_config", "the latest version is not a YAML mapping; deploy a valid config first")
    return data
