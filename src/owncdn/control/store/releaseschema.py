"""The tables of pushed releases (migrations ``0004_releases``, ``0007_release_pruning``,
``0008_release_comments``), on the store's ``Base``.

Rules:
1. ``releases`` rows are immutable: (env, service, number) numbered 1, 2, 3... per
   service; the manifest (JSON) is stored whole with its id (its SHA-256), file count
   and bytes, so listing needs no manifest, and with the pusher's ``comment`` (why). Blob GC drops the manifest of a release
   outside the retention (``manifest`` NULL, ``pruned_at`` set: ``releasestore`` Rule
   10); nothing else about a row ever changes.
2. ``current_releases`` holds one pointer per (env, service): the release edges
   should serve. Creating a release moves it; activating an older one moves it back.
3. ``node_releases`` holds what each node reported per service: the last release it
   reported on and how (``serving`` / ``failed``), and ``serving``, the number it
   serves now (a failed switch keeps the old one). Rows go with their node.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Double, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .schema import Base


class ReleaseRow(Base):
    __tablename__ = "releases"

    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(200), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    manifest_id: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # None: pruned
    files: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Double)
    pruned_at: Mapped[float | None] = mapped_column(Double)
    comment: Mapped[str] = mapped_column(Text, default="")


class CurrentReleaseRow(Base):
    __tablename__ = "current_releases"

    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(200), primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    activated_at: Mapped[float] = mapped_column(Double)
    author: Mapped[str] = mapped_column(String(200))


class NodeReleaseRow(Base):
    __tablename__ = "node_releases"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    service: Mapped[str] = mapped_column(String(200), primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    serving: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Double)
