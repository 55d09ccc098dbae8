"""Config versions of an environment: add (validated), list, show, roll back.

Rule 1: the control plane never resolves secrets. A source is validated with
every ``${env:..}`` / ``${file:..}`` reference standing in as ``<secret>``; the
source is stored as written and each node resolves references itself. The
snapshot stored next to it (the validated config as JSON) is for display.

Rule 2: an invalid source is a 422 whose ``problems`` name file, line, column
and field; nothing is stored.

Rule 3: after a version is stored the hub is notified, so every node's event
stream sends it at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from owncdn.control.store import Token
from owncdn.core.config import ConfigError, parse_config

from .auth import Ctx, require
from .errors import ApiProblem, error_responses
from .schemas import ENV_PATTERN, RollbackIn, VersionCreate, VersionDetail, VersionSummary, version_summary

__all__ = ["SECRET_PLACEHOLDER", "Env", "router", "store_version", "validate_source"]

SECRET_PLACEHOLDER = "<secret>"
"""What every secret reference reads as on the control plane."""

Env = Annotated[str, Path(pattern=ENV_PATTERN, description="Environment name, e.g. `staging` or `production`.")]

router = APIRouter(tags=["versions"])


def _placeholder(kind: str, name: str) -> str:
    return SECRET_PLACEHOLDER


def validate_source(source: str, filename: str = "cdn.yaml", env: str | None = None) -> dict[str, Any]:
    """The display snapshot of ``source`` as ``env`` sees it (its overlay applied);
    422 with every problem if invalid."""
    try:
        config = parse_config(source, filename, _placeholder, env=env)
    except ConfigError as exc:
        problems = [str(p) for p in exc.problems]
        if len(problems) == 1:
            message = f"the config has a problem; nothing was stored: {problems[0]}"
        else:
            message = f"the config has {len(problems)} problems (listed in 'problems'); nothing was stored. Fix them and deploy again"
        raise ApiProblem(422, "invalid_config", message, problems) from None
    return config.model_dump(mode="json")


def store_version(ctx: Ctx, env: str, source: str, comment: str, author: str, filename: str = "cdn.yaml") -> VersionSummary:
    """Validate, store and announce a new version of ``env``."""
    snapshot = validate_source(source, filename, env)
    version = ctx.store.add_version(env, source, snapshot, comment=comment, author=author)
    ctx.hub.notify(env)
    return version_summary(version)


@router.post(
    "/v1/envs/{env}/versions", status_code=201, response_model=VersionSummary,
    summary="Deploy a new config version", responses=error_responses(400, 401, 403, 422),
)
def add_version(env: Env, body: VersionCreate, ctx: Ctx, token: Annotated[Token, Depends(require("deploy"))]) -> VersionSummary:
    """Validate a cdn.yaml and store it as the environment's next version; every
    node of the environment receives it at once."""
    return store_version(ctx, env, body.source, body.comment, token.name, body.filename)


@router.get(
    "/v1/envs/{env}/versions", response_model=list[VersionSummary],
    summary="List versions, newest first", responses=error_responses(401, 403, 422),
)
def list_versions(
    env: Env, ctx: Ctx, _: Annotated[Token, Depends(require("read", "deploy"))],
    limit: Annotated[int, Query(ge=1, le=1000, description="Most versions to return.")] = 50,
) -> list[VersionSummary]:
    return [version_summary(v) for v in ctx.store.list_versions(env, limit=limit)]


@router.get(
    "/v1/envs/{env}/versions/{number}", response_model=VersionDetail,
    summary="Show one version with its source", responses=error_responses(401, 403, 404, 422),
)
def get_version(
    env: Env, number: Annotated[int, Path(ge=1, description="Version number.")], ctx: Ctx,
    _: Annotated[Token, Depends(require("read", "deploy"))],
) -> VersionDetail:
    version = _existing(ctx, env, number)
    summary = version_summary(version)
    return VersionDetail(**summary.model_dump(), source=version.source, snapshot=version.snapshot or {})


@router.post(
    "/v1/envs/{env}/rollback", status_code=201, response_model=VersionSummary,
    summary="Roll back to an earlier version", responses=error_responses(400, 401, 403, 404, 422),
)
def rollback(env: Env, body: RollbackIn, ctx: Ctx, token: Annotated[Token, Depends(require("deploy"))]) -> VersionSummary:
    """Store a new version whose source is that of version ``to`` (history is
    never rewritten: the rollback itself is a version)."""
    old = _existing(ctx, env, body.to)
    return store_version(ctx, env, old.source, f"rollback to v{body.to}", token.name)


def _existing(ctx: Ctx, env: str, number: int) -> Any:
    version = ctx.store.get_version(env, number)
    if version is None:
        latest = ctx.store.latest_version(env)
        known = f"the latest is v{latest.number}" if latest else "it has no versions yet"
        raise ApiProblem(404, "not_found", f"environment '{env}' has no version {number}; {known}")
    return version
