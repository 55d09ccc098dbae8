"""The tables, as SQLAlchemy 2 typed declarative models.

The initial migration (`migrations/versions/0001_initial.py`) creates exactly these
tables; `tests/control/test_store.py` checks that the two agree on every backend.
Change a model only together with a new migration.

Rules:
1. Times are Unix seconds (double precision) from the store's injected clock.
2. JSON documents (snapshots, purge specs) live in a JSON column.
3. Constraint names come from the naming convention, so migrations can name them.
4. A token's secret is never stored; `secret_hash` is its SHA-256, hex-encoded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Double, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(200))  # sorted, space-separated
    secret_hash: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str | None] = mapped_column(String(16), index=True)
    created_at: Mapped[float] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double)

    def __repr__(self) -> str:  # never the hash
        return f"<TokenRow {self.id} {self.name!r}>"


class VersionRow(Base):
    __tablename__ = "versions"

    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(Text)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Double)


class NodeRow(Base):
    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(String(200))
    env: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(300))
    registered_at: Mapped[float] = mapped_column(Double)
    last_contact: Mapped[float | None] = mapped_column(Double)
    running_version: Mapped[int | None] = mapped_column(Integer)
    reported_version: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    # migration 0006: the event stream last opened for the node, and when it ended
    # (NULL: open, or no end recorded); ``owncdn.core.contact`` Rule 2
    stream_id: Mapped[str | None] = mapped_column(String(32))
    stream_ended_at: Mapped[float | None] = mapped_column(Double)


class PurgeRow(Base):
    __tablename__ = "purges"
    __table_args__ = (Index("ix_purges_env_id", "env", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    env: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Double)


class PurgeAckRow(Base):
    __tablename__ = "purge_acks"

    purge_id: Mapped[int] = mapped_column(ForeignKey("purges.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True, index=True)
    ms: Mapped[float] = mapped_column(Double)
    removed: Mapped[int] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Double)


class EdgeHealthRow(Base):
    """The health monitor's verdict on one edge node (migration 0002)."""

    __tablename__ = "edge_health"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    healthy: Mapped[bool] = mapped_column(Boolean)
    successes: Mapped[int] = mapped_column(Integer)  # consecutive good checks
    failures: Mapped[int] = mapped_column(Integer)  # consecutive failed checks
    checked_at: Mapped[float] = mapped_column(Double)
    changed_at: Mapped[float] = mapped_column(Double)  # when `healthy` last flipped (first check: then)
    error: Mapped[str] = mapped_column(Text)  # why the last failed check failed
