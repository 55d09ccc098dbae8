"""Releases of push services: create, list, activate; and what each node serves.

Rule 1: a release is created from a manifest (``owncdn.core.content``) whose every
blob is in the blob store already; otherwise 409 ``missing_blobs`` lists them in
``problems`` and nothing is stored. A path that could leave the release directory
is a 422 naming it.

Rule 2: the service must be in the environment's latest version with ``mode:
push`` (404 for an unknown service, 422 for a pull or redirect one).

Rule 3: a new release becomes current at once; ``activate`` makes an earlier (or
later) one current again without copying anything. Both wake the event streams, so
every edge hears of it through the ``release`` channel (``releasechannels``).

Rule 4: nodes report the release they switched to (``serving``) or could not
(``failed``, keeping the previous one); the listing shows which nodes serve what,
and DNS nodes hear which locations are ready through ``release_ready``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from owncdn.control.store import Release, Token
from owncdn.core.content import ManifestError, parse_manifest

from .auth import ApiContext, Ctx, node_token, require
from .blobs import Blobs
from .channels import state_changed
from .errors import ApiProblem, error_responses
from .nodes import existing_node
from .releaseschemas import (
    NodeReleaseIn, NodeReleaseOut, ReleaseCreate, ReleaseCreated, ReleaseNode, ReleaseOut,
)
from .schemas import ENV_PATTERN, utc

__all__ = ["router"]

router = APIRouter(tags=["push"])
ServiceName = Annotated[str, Path(min_length=1, max_length=200, description="The push service's name.")]
EnvQuery = Annotated[str, Query(pattern=ENV_PATTERN, description="Environment, e.g. `staging`.")]
Number = Annotated[int, Path(ge=1, description="Release number.")]
MAX_LISTED_MISSING = 10_000


@router.post(
    "/v1/services/{name}/releases", status_code=201, response_model=ReleaseCreated,
    summary="Create a release from a manifest (it becomes current)",
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def create_release(name: ServiceName, body: ReleaseCreate, ctx: Ctx, blobs: Blobs,
                   token: Annotated[Token, Depends(require("deploy"))], env: EnvQuery = "production") -> ReleaseCreated:
    try:
        manifest = parse_manifest(body.manifest)
    except ManifestError as exc:
        raise ApiProblem(422, "invalid_manifest", str(exc), exc.problems) from None
    _push_service(ctx, env, name)
    missing = blobs.missing(manifest.blobs)
    if missing:
        raise ApiProblem(409, "missing_blobs",
                         f"{len(missing)} blob(s) of this manifest are not uploaded yet (listed in 'problems'); "
                         "PUT /v1/blobs/{sha256} each, then create the release again", missing[:MAX_LISTED_MISSING])
    blobs.sync(manifest.blobs)  # every blob durable before a release names it
    release = ctx.store.add_release(env, name, manifest.to_json(), manifest.id, len(manifest.files),
                                    manifest.total_bytes, author=token.name)
    state_changed(ctx)
    return ReleaseCreated(service=name, env=env, number=release.number, id=release.id,
                          files=release.files, bytes=release.bytes)


@router.get(
    "/v1/services/{name}/releases", response_model=list[ReleaseOut],
    summary="List releases, newest first, with the current one and the nodes serving each",
    responses=error_responses(401, 403, 422),
)
def list_releases(name: ServiceName, ctx: Ctx, _: Annotated[Token, Depends(require("read", "deploy"))],
                  env: EnvQuery = "production",
                  limit: Annotated[int, Query(ge=1, le=1000, description="Most releases to return.")] = 50) -> list[ReleaseOut]:
    current = ctx.store.current_release_number(env, name)
    serving: dict[int, list[ReleaseNode]] = {}
    for row in ctx.store.node_releases(env, name):
        if row.serving is not None:
            serving.setdefault(row.serving, []).append(ReleaseNode(node_id=row.node_id, name=row.name, location=row.location))
    return [_out(r, current, serving.get(r.number, [])) for r in ctx.store.list_releases(env, name, limit)]


@router.post(
    "/v1/services/{name}/releases/{number}/activate", response_model=ReleaseOut,
    summary="Make a release current again (rollback, roll forward)", responses=error_responses(401, 403, 404, 422),
)
def activate_release(name: ServiceName, number: Number, ctx: Ctx,
                     token: Annotated[Token, Depends(require("deploy"))], env: EnvQuery = "production") -> ReleaseOut:
    if ctx.store.get_release(env, name, number) is None:
        numbers = [r.number for r in ctx.store.list_releases(env, name, 1)]
        known = f"the newest is {numbers[0]}" if numbers else "it has no releases"
        raise ApiProblem(404, "not_found", f"service '{name}' in '{env}' has no release {number}; {known}")
    release = ctx.store.activate_release(env, name, number, author=token.name)
    state_changed(ctx)
    return _out(release, number, [])


@router.post(
    "/v1/nodes/{node_id}/releases", response_model=NodeReleaseOut,
    summary="Report the release a node serves, or failed to switch to", responses=error_responses(400, 401, 403, 404, 422),
)
def report_release(node_id: str, body: NodeReleaseIn, ctx: Ctx, _: Annotated[Token, Depends(node_token)]) -> NodeReleaseOut:
    existing_node(ctx, node_id)
    row = ctx.store.report_node_release(node_id, body.service, body.number, body.status, body.reason)
    state_changed(ctx)  # DNS nodes follow which locations are ready (release_ready)
    return NodeReleaseOut(node_id=node_id, service=row.service, number=row.number, status=row.status, serving=row.serving)


def _push_service(ctx: ApiContext, env: str, name: str) -> None:
    """Rule 2."""
    latest = ctx.store.latest_version(env)
    services = {s.get("name"): s for s in ((latest.snapshot or {}).get("services") or [])} if latest else {}
    service = services.get(name)
    if service is None:
        known = f"its services: {', '.join(sorted(services))}" if services else "it has no services yet"
        raise ApiProblem(404, "unknown_service", f"environment '{env}' has no service '{name}' in its latest version; {known}. Add it with mode: push and apply first")
    if service.get("mode", "pull") != "push":
        raise ApiProblem(422, "not_a_push_service", f"service '{name}' in '{env}' has mode {service.get('mode', 'pull')!r}; set mode: push (and drop its origins) to push releases to it")


def _out(release: Release, current: int | None, nodes: list[ReleaseNode]) -> ReleaseOut:
    return ReleaseOut(number=release.number, id=release.id, files=release.files, bytes=release.bytes,
                      author=release.author, created=utc(release.created_at), current=release.number == current,
                      nodes=nodes)
