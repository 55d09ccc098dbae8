"""The certificate tables (migration ``0003_certificates``), on the store's ``Base``.

Rules:
1. ``certificates.key_pem`` holds a private key sealed by ``owncdn.control.acme.sealing``
   (Fernet with ``OWNCDN_SECRET_KEY``, else plain PEM in an owner-only database file);
   ``acme_accounts.key_pem`` likewise. No other column holds a secret.
2. A certificate row exists before its first issuance (``cert_pem`` empty): it carries
   the failures, backoff and last error of the attempts.
3. ``acme_locks`` is a lease: a row per name with its holder and expiry; a holder that
   died loses it when it expires.
4. ``acme_orders`` is the ledger: one row per (order, registered domain).
5. ``cert_events`` is each certificate's history (see ``CertEventRow``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .schema import Base


class AcmeAccountRow(Base):
    __tablename__ = "acme_accounts"

    directory: Mapped[str] = mapped_column(String(500), primary_key=True)
    key_pem: Mapped[str] = mapped_column(Text)
    uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)

    def __repr__(self) -> str:  # never the key
        return f"<AcmeAccountRow {self.directory}>"


class CertificateRow(Base):
    __tablename__ = "certificates"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    env: Mapped[str | None] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(16))  # "acme" | "upload"
    names: Mapped[list[Any]] = mapped_column(JSON)
    challenge: Mapped[str] = mapped_column(String(16))
    directory: Mapped[str] = mapped_column(Text)
    cert_pem: Mapped[str] = mapped_column(Text)
    key_pem: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(Text)
    not_before: Mapped[float | None] = mapped_column(Double)
    not_after: Mapped[float | None] = mapped_column(Double)
    renew_at: Mapped[float | None] = mapped_column(Double)
    ari_next: Mapped[float | None] = mapped_column(Double)
    force_renew: Mapped[bool] = mapped_column(Boolean)
    failures: Mapped[int] = mapped_column(Integer)
    next_attempt: Mapped[float] = mapped_column(Double)
    last_error: Mapped[str] = mapped_column(Text)
    warned_at: Mapped[float | None] = mapped_column(Double)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)

    def __repr__(self) -> str:  # never the key
        return f"<CertificateRow {self.id} {self.names}>"


class CertInstallRow(Base):
    __tablename__ = "cert_installs"

    cert_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True, index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Double)


class AcmeChallengeRow(Base):
    __tablename__ = "acme_challenges"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # "dns" | "http"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # _acme-challenge.<name> | token
    value: Mapped[str] = mapped_column(String(300), primary_key=True)
    cert_id: Mapped[str] = mapped_column(String(200), index=True)
    created_at: Mapped[float] = mapped_column(Double)


class AcmeLockRow(Base):
    __tablename__ = "acme_locks"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[float] = mapped_column(Double)


class AcmeOrderRow(Base):
    __tablename__ = "acme_orders"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(253), index=True)
    cert_id: Mapped[str] = mapped_column(String(200))
    names: Mapped[list[Any]] = mapped_column(JSON)
    directory: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)


class CertEventRow(Base):
    """Rule 5 (migration ``0005_cert_events``): one row per issuance, renewal, upload or
    failed attempt of a certificate; what the dashboard shows as its history. Public
    facts only (time, CA, serial, expiry, error text), never key material."""

    __tablename__ = "cert_events"
    __table_args__ = (Index("ix_cert_events_cert_id_id", "cert_id", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cert_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # "issued" | "renewed" | "uploaded" | "failed"
    at: Mapped[float] = mapped_column(Double)
    issuer: Mapped[str] = mapped_column(Text)
    directory: Mapped[str] = mapped_column(Text)
    serial: Mapped[str] = mapped_column(String(80))
    fingerprint: Mapped[str] = mapped_column(String(64))
    not_after: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str] = mapped_column(Text)
