"""The store's part of certificates: rows for the ACME manager, the API and the channels.

Rules:
1. Records carry the (sealed) private key only when asked (``with_key=True``), and never
   in their repr: listing certificates for the API cannot leak a key.
2. ``acquire_lock`` is a lease shared by every replica: it takes the row when it is free,
   expired, or already ours, in one transaction; ``release_lock`` gives it back.
3. ``record_order`` and ``orders_since`` are the ledger (``owncdn.core.certs.ledger``).
4. ``set_node_certs`` replaces what a node reports it has installed, in one transaction.
5. ``store_cert`` and ``cert_failed`` append to the certificate's history (``cert_events``) in
   the same transaction: ``issued`` (first ACME certificate), ``renewed``, ``uploaded`` or
   ``failed`` with the error; ``cert_history`` reads it newest first. No key ever goes in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .certschema import (
    AcmeAccountRow, AcmeChallengeRow, AcmeLockRow, AcmeOrderRow, CertEventRow, CertificateRow, CertInstallRow,
)
from .records import NotFound

__all__ = ["CertEvent", "Certificate", "CertificateStore"]

MAX_ERROR = 2000


@dataclass(frozen=True)
class Certificate:
    id: str
    env: str | None
    source: str
    names: tuple[str, ...]
    challenge: str
    directory: str
    cert_pem: str
    fingerprint: str
    issuer: str
    not_before: float | None
    not_after: float | None
    renew_at: float | None
    ari_next: float | None
    force_renew: bool
    failures: int
    next_attempt: float
    last_error: str
    warned_at: float | None
    created_at: float
    updated_at: float
    key_pem: str = field(default="", repr=False)

    @property
    def issued(self) -> bool:
        return bool(self.cert_pem)


@dataclass(frozen=True)
class CertEvent:
    """One entry of a certificate's history (Rule 5)."""

    id: int
    cert_id: str
    kind: str
    at: float
    issuer: str
    directory: str
    serial: str
    fingerprint: str
    not_after: float | None
    error: str


def _serial(cert_pem: str) -> str:
    """The leaf's serial number in hex ('' when it does not parse)."""
    from cryptography import x509

    try:
        return format(x509.load_pem_x509_certificate(cert_pem.encode()).serial_number, "x")
    except ValueError:
        return ""


def _cert(r: CertificateRow, with_key: bool = False) -> Certificate:
    return Certificate(
        id=r.id, env=r.env, source=r.source, names=tuple(r.names), challenge=r.challenge, directory=r.directory,
        cert_pem=r.cert_pem, fingerprint=r.fingerprint, issuer=r.issuer, not_before=r.not_before,
        not_after=r.not_after, renew_at=r.renew_at, ari_next=r.ari_next, force_renew=bool(r.force_renew),
        failures=r.failures, next_attempt=r.next_attempt, last_error=r.last_error, warned_at=r.warned_at,
        created_at=r.created_at, updated_at=r.updated_at, key_pem=r.key_pem if with_key else "")


class CertificateStore:
    """Mixed into ``Store``: uses its ``_read``, ``_write`` and ``_now``."""

    # -- accounts ----------------------------------------------------------------------
    def acme_account(self, directory: str) -> tuple[str, str] | None:
        """(sealed key PEM, account URI) of the account at ``directory``, or None."""
        row = self._read(lambda s: _maybe_account(s.get(AcmeAccountRow, directory)))
        return row

    def save_acme_account(self, directory: str, key_pem: str, uri: str) -> tuple[str, str]:
        """Keep the account; a replica that saved one first wins, and that one is returned."""
        def work(s: Session) -> tuple[str, str]:
            row = s.get(AcmeAccountRow, directory)
            if row is None:
                row = AcmeAccountRow(directory=directory, key_pem=key_pem, uri=uri, created_at=self._now())
                s.add(row)
                s.flush()
            elif not row.uri and uri:
                row.uri = uri
            return row.key_pem, row.uri

        return self._write(work, f"saving the ACME account of {directory}")

    # -- certificates ------------------------------------------------------------------
    def list_certs(self, env: str | None = None, with_key: bool = False, issued_only: bool = False) -> list[Certificate]:
        """Every certificate (those of ``env`` and those of no environment, if given)."""
        query = select(CertificateRow).order_by(CertificateRow.id)
        if env is not None:
            query = query.where((CertificateRow.env == env) | CertificateRow.env.is_(None))
        if issued_only:
            query = query.where(CertificateRow.cert_pem != "")
        return self._read(lambda s: [_cert(r, with_key) for r in s.scalars(query)])

    def get_cert(self, cert_id: str, with_key: bool = False) -> Certificate | None:
        return self._read(lambda s: None if (r := s.get(CertificateRow, cert_id)) is None else _cert(r, with_key))

    def want_cert(self, cert_id: str, env: str | None, names: Iterable[str], challenge: str, directory: str) -> Certificate:
        """The row of an ACME certificate, made (not issued yet) or updated to these names."""
        names = sorted(names)

        def work(s: Session) -> Certificate:
            row = s.get(CertificateRow, cert_id)
            now = self._now()
            if row is None:
                row = CertificateRow(id=cert_id, env=env, source="acme", names=names, challenge=challenge,
                                     directory=directory, cert_pem="", key_pem="", fingerprint="", issuer="",
                                     not_before=None, not_after=None, renew_at=None, ari_next=None,
                                     force_renew=False, failures=0, next_attempt=0.0, last_error="",
                                     warned_at=None, created_at=now, updated_at=now)
                s.add(row)
            elif (list(row.names), row.challenge, row.directory) != (names, challenge, directory):
                row.names, row.challenge, row.directory = names, challenge, directory
                row.failures, row.next_attempt, row.updated_at = 0, 0.0, now
            s.flush()
            return _cert(row)

        return self._write(work, f"recording certificate {cert_id!r}")

    def store_cert(self, cert_id: str, *, names: Iterable[str], cert_pem: str, key_pem: str, fingerprint: str,
                   issuer: str, not_before: float, not_after: float, renew_at: float | None,
                   source: str = "acme", env: str | None = None, challenge: str = "", directory: str = "") -> Certificate:
        """Keep an issued (or uploaded) certificate and its sealed key; clears failures."""
        def work(s: Session) -> Certificate:
            row = s.get(CertificateRow, cert_id)
            now = self._now()
            kind = "uploaded" if source == "upload" else "renewed" if row is not None and row.cert_pem else "issued"
            if row is None:
                row = CertificateRow(id=cert_id, env=env, source=source, challenge=challenge, directory=directory,
                                     ari_next=None, warned_at=None, created_at=now)
                s.add(row)
            row.names, row.cert_pem, row.key_pem, row.fingerprint = sorted(names), cert_pem, key_pem, fingerprint
            row.issuer, row.not_before, row.not_after, row.renew_at = issuer, not_before, not_after, renew_at
            row.source = source
            row.force_renew, row.failures, row.next_attempt, row.last_error = False, 0, 0.0, ""
            row.warned_at, row.ari_next, row.updated_at = None, None, now
            s.add(CertEventRow(cert_id=cert_id, kind=kind, at=now, issuer=issuer, directory=row.directory,
                               serial=_serial(cert_pem), fingerprint=fingerprint, not_after=not_after, error=""))
            s.flush()
            return _cert(row)

        return self._write(work, f"storing certificate {cert_id!r}")

    def cert_failed(self, cert_id: str, error: str, next_attempt: float) -> Certificate:
        def work(s: Session) -> Certificate:
            row = _cert_row(s, cert_id)
            row.failures += 1
            row.last_error, row.next_attempt = error[:MAX_ERROR], next_attempt
            row.force_renew, row.updated_at = False, self._now()
            s.add(CertEventRow(cert_id=cert_id, kind="failed", at=row.updated_at, issuer="", directory=row.directory,
                               serial="", fingerprint="", not_after=None, error=row.last_error))
            return _cert(row)

        return self._write(work, f"recording a failure of certificate {cert_id!r}")

    def update_cert(self, cert_id: str, **values) -> Certificate:
        """Set bookkeeping columns (renew_at, ari_next, warned_at, force_renew, next_attempt)."""
        allowed = {"renew_at", "ari_next", "warned_at", "force_renew", "next_attempt"}
        if set(values) - allowed:
            raise ValueError(f"update_cert: only {sorted(allowed)}")

        def work(s: Session) -> Certificate:
            row = _cert_row(s, cert_id)
            for name, value in values.items():
                setattr(row, name, value)
            return _cert(row)

        return self._write(work, f"updating certificate {cert_id!r}")

    def delete_cert(self, cert_id: str) -> bool:
        def work(s: Session) -> bool:
            row = s.get(CertificateRow, cert_id)
            if row is None:
                return False
            s.execute(delete(CertInstallRow).where(CertInstallRow.cert_id == cert_id))
            s.execute(delete(AcmeChallengeRow).where(AcmeChallengeRow.cert_id == cert_id))
            s.execute(delete(CertEventRow).where(CertEventRow.cert_id == cert_id))
            s.delete(row)
            return True

        return self._write(work, f"deleting certificate {cert_id!r}")

    def cert_history(self, cert_id: str, limit: int = 100) -> list[CertEvent]:
        """The certificate's history, newest first (Rule 5)."""
        def work(s: Session) -> list[CertEvent]:
            query = (select(CertEventRow).where(CertEventRow.cert_id == cert_id)
                     .order_by(CertEventRow.id.desc()).limit(limit))
            return [CertEvent(id=r.id, cert_id=r.cert_id, kind=r.kind, at=r.at, issuer=r.issuer, directory=r.directory,
                              serial=r.serial, fingerprint=r.fingerprint, not_after=r.not_after, error=r.error)
                    for r in s.scalars(query)]

        return self._read(work)

    # -- what edges report -----------------------------------------------------------
    def set_node_certs(self, node_id: str, installed: Mapping[str, str]) -> None:
        """``installed``: cert id -> fingerprint, everything the node has now (Rule 4)."""
        def work(s: Session) -> None:
            s.execute(delete(CertInstallRow).where(CertInstallRow.node_id == node_id))
            now = self._now()
            for cert_id, fingerprint in sorted(installed.items()):
                s.add(CertInstallRow(cert_id=cert_id, node_id=node_id, fingerprint=fingerprint, at=now))

        self._write(work, f"recording the certificates of node {node_id!r}")

    def cert_installs(self) -> dict[str, dict[str, str]]:
        """cert id -> {node id: fingerprint}."""
        def work(s: Session) -> dict[str, dict[str, str]]:
            out: dict[str, dict[str, str]] = {}
            for r in s.scalars(select(CertInstallRow)):
                out.setdefault(r.cert_id, {})[r.node_id] = r.fingerprint
            return out

        return self._read(work)

    # -- challenges ------------------------------------------------------------------
    def add_challenges(self, cert_id: str, records: Iterable[tuple[str, str, str]]) -> None:
        """(kind, key, value) rows for the challenges of one order."""
        def work(s: Session) -> None:
            now = self._now()
            for kind, key, value in records:
                if s.get(AcmeChallengeRow, (kind, key, value)) is None:
                    s.add(AcmeChallengeRow(kind=kind, key=key, value=value, cert_id=cert_id, created_at=now))

        self._write(work, f"publishing the challenges of {cert_id!r}")

    def remove_challenges(self, cert_id: str) -> None:
        self._write(lambda s: s.execute(delete(AcmeChallengeRow).where(AcmeChallengeRow.cert_id == cert_id)),
                    f"removing the challenges of {cert_id!r}")

    def challenges(self, kind: str) -> dict[str, list[str]]:
        """key -> sorted values of every published challenge of ``kind``."""
        def work(s: Session) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for r in s.scalars(select(AcmeChallengeRow).where(AcmeChallengeRow.kind == kind)
                               .order_by(AcmeChallengeRow.key, AcmeChallengeRow.value)):
                out.setdefault(r.key, []).append(r.value)
            return out

        return self._read(work)

    # -- the lease ---------------------------------------------------------------------
    def acquire_lock(self, name: str, holder: str, ttl: float) -> bool:
        """Take (or extend) the lease ``name`` for ``ttl`` seconds (Rule 2)."""
        def work(s: Session) -> bool:
            now = self._now()
            row = s.get(AcmeLockRow, name, with_for_update=True)
            if row is None:
                s.add(AcmeLockRow(name=name, holder=holder, expires_at=now + ttl))
                s.flush()  # a replica inserting the same name first makes this raise: we retry and see it
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            row.holder, row.expires_at = holder, now + ttl
            return True

        return self._write(work, f"taking the lock {name!r}")

    def release_lock(self, name: str, holder: str) -> None:
        self._write(lambda s: s.execute(delete(AcmeLockRow).where(AcmeLockRow.name == name,
                                                                  AcmeLockRow.holder == holder)),
                    f"releasing the lock {name!r}")

    def version_envs(self) -> list[str]:
        """The environments that have at least one version."""
        from .schema import VersionRow

        return self._read(lambda s: list(s.scalars(select(VersionRow.env).distinct().order_by(VersionRow.env))))

    # -- the ledger --------------------------------------------------------------------
    def record_order(self, cert_id: str, domains: Iterable[str], names: Iterable[str], directory: str) -> None:
        def work(s: Session) -> None:
            now = self._now()
            for domain in sorted(set(domains)):
                s.add(AcmeOrderRow(domain=domain, cert_id=cert_id, names=sorted(names), directory=directory,
                                   created_at=now))

        self._write(work, f"recording an order for {cert_id!r}")

    def orders_since(self, domains: Iterable[str], since: float, directory: str | None = None) -> dict[str, list[float]]:
        domains = sorted(set(domains))

        def work(s: Session) -> dict[str, list[float]]:
            query = select(AcmeOrderRow).where(AcmeOrderRow.domain.in_(domains), AcmeOrderRow.created_at >= since)
            if directory is not None:
                query = query.where(AcmeOrderRow.directory == directory)
            out: dict[str, list[float]] = {}
            for r in s.scalars(query):
                out.setdefault(r.domain, []).append(r.created_at)
            return out

        return self._read(work)

    def order_count(self, cert_id: str | None = None) -> int:
        """Orders in the ledger (of one certificate), counted once per order, not per domain."""
        def work(s: Session) -> int:
            query = select(AcmeOrderRow.cert_id, AcmeOrderRow.created_at).distinct()
            if cert_id is not None:
                query = query.where(AcmeOrderRow.cert_id == cert_id)
            return len(s.execute(query).all())

        return self._read(work)


def _maybe_account(row: AcmeAccountRow | None) -> tuple[str, str] | None:
    return None if row is None else (row.key_pem, row.uri)


def _cert_row(s: Session, cert_id: str) -> CertificateRow:
    row = s.get(CertificateRow, cert_id)
    if row is None:
        raise NotFound(f"no certificate {cert_id!r}")
    return row

