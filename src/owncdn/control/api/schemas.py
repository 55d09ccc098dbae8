"""Request and response bodies of the REST API (pydantic), documented per field.

Rule 1: request models are strict and forbid unknown fields, so a typo or a
wrong type is a 422 that names the field, never a silent default.

Rule 2: response models are what the OpenAPI document shows; the endpoint
modules build them from store records with the ``*_out`` functions here.

Rule 3: times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from owncdn.control.store import Node, Token, Version

__all__ = [
    "AckIn", "AckOut", "EnvStatus", "ErrorDetail", "ErrorResponse", "Health", "NodeOut",
    "NodeRegister", "NodeRegistered", "NodeStatus", "PurgeAcked", "PurgeCreate", "PurgePending",
    "PurgeStatus", "ReportIn", "RollbackIn", "Scope", "ServiceCreate", "ServiceCreated",
    "ServiceList", "ServiceOut", "TokenCreate", "TokenCreated", "TokenOut", "VersionCreate",
    "VersionDetail", "VersionSummary", "ENV_PATTERN", "node_out", "token_out", "utc", "version_summary",
]

ENV_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""Environment names (as the store allows them): letters, digits, ``.``, ``_``, ``-``, e.g. ``staging``."""

Scope = Literal["admin", "deploy", "purge", "read", "node"]
MAX_SOURCE_BYTES = 1 << 20


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def utc(value: float | datetime | None) -> datetime | None:
    """A store time (seconds since the epoch) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromtimestamp(value, UTC)


# errors -----------------------------------------------------------------------

class ErrorDetail(BaseModel):
    status: int = Field(description="The HTTP status, repeated for convenience.")
    code: str = Field(description="A short stable word for programs, e.g. `invalid_config`, `forbidden`.")
    message: str = Field(description="What went wrong and what to do about it, for people.")
    problems: list[str] | None = Field(None, description="Every individual problem, e.g. `cdn.yaml:12:9: services[0].origins[0].url: expected ...`.")


class ErrorResponse(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail


class Health(BaseModel):
    ok: bool = Field(description="Always true when the API answers.")


# tokens -----------------------------------------------------------------------

class TokenCreate(_Request):
    name: str = Field(min_length=1, max_length=100, description="What the token is for, e.g. `ci-deploy`.")
    scopes: list[Scope] = Field(min_length=1, description="`admin`: everything; `read`: every GET; `deploy`: versions, services, rollback; `purge`: purges; `node`: a bootstrap token edges and DNS servers use to register.")


class TokenOut(BaseModel):
    id: str = Field(description="Token id, for revoking.")
    name: str
    scopes: list[Scope]
    node_id: str | None = Field(description="The node this token belongs to, for node tokens made by registration.")
    created_at: datetime | None
    revoked: bool


class TokenCreated(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    token: str = Field(description="The secret token text. Shown only in this response; store it now.")


def token_out(token: Token) -> TokenOut:
    return TokenOut(
        id=token.id, name=token.name, scopes=sorted(token.scopes), node_id=token.node_id,
        created_at=utc(token.created_at), revoked=bool(token.revoked),
    )


# versions ---------------------------------------------------------------------

class VersionCreate(_Request):
    source: str = Field(max_length=MAX_SOURCE_BYTES, description="The cdn.yaml text. Secret references (`${env:X}`, `${file:Y}`) are kept as written and resolved by each node.")
    comment: str = Field("", max_length=1000, description="Why this version exists, e.g. the git commit.")
    filename: str = Field("cdn.yaml", min_length=1, max_length=200, description="File name used in problem messages.")


class RollbackIn(_Request):
    to: int = Field(ge=1, description="The version number whose source becomes the new version.")


class VersionSummary(BaseModel):
    env: str
    number: int = Field(description="Version number, 1, 2, ... per environment.")
    comment: str
    author: str = Field(description="Name of the token that stored the version.")
    created_at: datetime | None
    services: list[str] = Field(description="Names of the services in this version.")


class VersionDetail(VersionSummary):
    source: str = Field(description="The cdn.yaml text as stored.")
    snapshot: dict[str, Any] = Field(description="The validated config as JSON, with every secret shown as `<secret>`; for display.")


def version_summary(version: Version) -> VersionSummary:
    snapshot = version.snapshot if isinstance(version.snapshot, dict) else {}
    services = snapshot.get("services") or []
    return VersionSummary(
        env=version.env, number=version.number, comment=version.comment or "", author=version.author or "",
        created_at=utc(version.created_at), services=[s.get("name", "") for s in services if isinstance(s, dict)],
    )


# services ---------------------------------------------------------------------

class ServiceOut(BaseModel):
    name: str
    hostnames: list[str] = Field(description="Names visitors use; point each at the CDN with a CNAME.")
    origins: list[str] = Field(description="Origin URLs, tried in order.")
    mode: str = Field("pull", description="`pull` (from its origins) or `push` (from releases `owncdn push` made).")


class ServiceList(BaseModel):
    env: str
    version: int | None = Field(description="The latest version the services come from; null when nothing was deployed.")
    services: list[ServiceOut]


class ServiceCreate(_Request):
    origin: str = Field(min_length=1, max_length=2000, description="http:// or https:// URL of the site to put behind the CDN.")
    name: str | None = Field(None, max_length=63, description="Service name; by default a slug of the origin's host, e.g. `origin-example-com`.")


class LocationOut(BaseModel):
    name: str
    city: str | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None
    declared: bool = Field(description="Whether the config declares it (false: only nodes say they are there).")
    nodes: list[str] = Field(description="Names of the nodes registered in this location.")


class LocationList(BaseModel):
    env: str
    version: int | None = Field(description="The latest version the locations come from; null when nothing was deployed.")
    locations: list[LocationOut]


class ServiceCreated(BaseModel):
    service: ServiceOut
    cname: str = Field(description="Point your own hostname at this name with a CNAME record.")
    version: int = Field(description="The new version that holds the service.")


# nodes ------------------------------------------------------------------------

class NodeRegister(_Request):
    name: str = Field(min_length=1, max_length=100, description="Human name of the node, e.g. `edge-fra-1`.")
    kind: Literal["edge", "dns"]
    location: str = Field(min_length=1, max_length=100, description="Location name, e.g. `fra`.")
    env: str = Field(pattern=ENV_PATTERN, description="Environment the node serves, e.g. `production`.")
    address: str = Field(min_length=1, max_length=300, description="Where the node can be reached, e.g. `203.0.113.7` or `edge1.example.net:443`.")


class NodeRegistered(BaseModel):
    node_id: str
    token: str = Field(description="The node's own token (scope `node`, bound to this node). Shown only here.")


class NodeOut(BaseModel):
    id: str
    name: str
    kind: str
    location: str
    env: str
    address: str
    registered_at: datetime | None
    last_contact: datetime | None
    running_version: int | None = Field(description="The version the node last said it runs.")
    reported_version: int | None = Field(description="The version of the node's last report (applied or rejected).")
    status: Literal["new", "applied", "rejected"]
    reason: str = Field(description="Why the last version was rejected, if it was.")


def node_out(node: Node) -> NodeOut:
    return NodeOut(
        id=str(node.id), name=node.name, kind=node.kind, location=node.location, env=node.env,
        address=node.address, registered_at=utc(node.registered_at), last_contact=utc(node.last_contact),
        running_version=node.running_version, reported_version=node.reported_version,
        status=node.status, reason=node.reason or "",
    )


class ReportIn(_Request):
    version: int = Field(ge=0, description="The version the report is about.")
    status: Literal["applied", "rejected"] = Field(description="`applied`: the node now runs it; `rejected`: it keeps its old version.")
    reason: str = Field("", max_length=4000, description="Why the version was rejected.")


class AckIn(_Request):
    ms: float = Field(ge=0, description="How long the purge took on the node, in milliseconds.")
    removed: int = Field(ge=0, description="How many cached objects it removed or marked stale.")


class AckOut(BaseModel):
    purge_id: int
    node_id: str
    ms: float
    removed: int
    at: datetime | None


class NodeStatus(BaseModel):
    id: str
    name: str
    kind: str
    location: str
    address: str
    running_version: int | None
    reported_version: int | None
    status: Literal["new", "applied", "rejected"]
    reason: str
    last_contact: datetime | None
    drift: bool = Field(description="True when the node does not run the latest version, or rejected it.")
    seconds_since_contact: float | None = Field(description="Seconds since the node last talked to the control plane; null if never.")


class EnvStatus(BaseModel):
    env: str
    latest_version: int | None
    nodes: list[NodeStatus]


# purges -----------------------------------------------------------------------

class PurgeCreate(_Request):
    url: str | None = Field(None, max_length=4000, description="Purge one URL: `https://host/path?query` or a path `/path`.")
    prefix: str | None = Field(None, max_length=4000, description="Purge every URL starting with this (`https://host/dir/` or `/dir/`).")
    tag: str | None = Field(None, max_length=200, description="Purge every object tagged with this (Cache-Tag / Surrogate-Key).")
    all: bool = Field(False, description="Purge everything (of `service`, or of the whole environment).")
    soft: bool = Field(False, description="Mark stale instead of removing: objects are revalidated, and still served if the origin fails.")
    service: str | None = Field(None, max_length=63, description="Limit the purge to this service.")


class PurgeAcked(BaseModel):
    node_id: str
    name: str
    ms: float
    removed: int


class PurgePending(BaseModel):
    node_id: str
    name: str


class PurgeStatus(BaseModel):
    id: int
    spec: dict[str, Any] = Field(description="What to purge, as stored: one of url / prefix / tag / all, plus soft and service.")
    created_at: datetime | None
    acked: list[PurgeAcked] = Field(description="Nodes that applied the purge.")
    pending: list[PurgePending] = Field(description="Nodes of the environment in contact within the last 60 s that have not acked yet.")
    complete: bool = Field(description="True when no node is pending.")
