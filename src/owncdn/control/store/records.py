"""What the store hands out: frozen records, the token scopes and the errors.

Records are plain values, detached from any database session. None of them holds a
token secret or its hash, so their reprs are safe to log.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPES = frozenset({"admin", "deploy", "purge", "read", "node"})
NODE_STATUSES = frozenset({"new", "applied", "rejected"})


class StoreError(Exception):
    """The state store could not do what was asked (base of every store error)."""


class NotFound(StoreError, LookupError):
    """A record the operation needs does not exist."""


class Conflict(StoreError):
    """The operation clashes with what another writer did at the same time."""


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    scopes: frozenset[str]
    node_id: str | None
    created_at: float
    revoked: bool


@dataclass(frozen=True)
class Version:
    env: str
    number: int
    source: str
    snapshot: dict
    comment: str
    author: str
    created_at: float


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    kind: str
    location: str
    env: str
    address: str
    registered_at: float
    last_contact: float | None
    running_version: int | None
    reported_version: int | None
    status: str  # "new" | "applied" | "rejected"
    reason: str
    stream_ended_at: float | None = None  # its last event stream ended then (None: open, or unknown)


@dataclass(frozen=True)
class Purge:
    id: int
    env: str
    spec: dict
    created_at: float


@dataclass(frozen=True)
class PurgeAck:
    purge_id: int
    node_id: str
    ms: float
    removed: int
    at: float
