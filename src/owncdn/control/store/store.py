"""`Store`: the control plane's state behind one small, synchronous interface.

Rules:
1. One short transaction per method (`with Session(engine) as s, s.begin():`); methods
   return frozen records, never ORM rows.
2. Several control-plane replicas may share one PostgreSQL database. Writes that can
   race (version numbers, node registration, purge acks) lean on a unique key and run
   again when a concurrent writer won (`IntegrityError`); purge ids are handed out
   under a lock, so ids become visible in increasing order and `purges_after` never
   skips one.
3. A token's secret is shown once, by `create_token`; the store keeps its SHA-256.
   Token text is `ocdn_<id>_<secret>`, so `authenticate` finds the row by id and
   compares hashes in constant time.
4. Times come from the injected clock. Database failures become `StoreError`; SQL
   parameters never appear in messages.
5. SQLite: the write transactions of one process take turns on a lock of their own.
   SQLite lets one writer in at a time and makes the others sleep and retry (1, 2,
   5, 10 ms...); three edges acknowledging a push at once had their reports stored up
   to 12 ms apart. Other processes still meet SQLite's busy timeout.
6. ``with store.reading():`` makes the reads of its block in this thread share one
   read transaction (one snapshot) instead of one each (Rule 1): each cost about
   0.2-0.3 ms of SQLAlchemy (a session, BEGIN, COMMIT) around a query of microseconds,
   and a one-file push's status wait and event streams made several in a row.
   Only reads belong in the block (an in-memory SQLite store has one connection);
   other threads' reads keep their own transactions.
7. A node's event stream is recorded where every replica sees it: ``stream_started``
   (its first contact) names the node's newest stream, and an end (``nodes_contact``
   ``ended``) is written only if that stream is still the newest, so the end of an
   old stream noticed after its replacement opened (on this replica or another)
   changes nothing. ``owncdn.core.contact`` decides what the two times mean.
8. The reads and writes a push repeats (the latest version number, a token, the
   purges after an id, a node's release report, a release added, its status) are
   statements built once (``engine.built``) run on a connection (``_read_rows``,
   ``_write_rows``), not through an ORM session: about 0.07 ms a read of the latest
   number instead of 0.22 (building the statement, the session, the ORM's execution
   of a Core statement), and several times that in the control plane, whose caches
   are cold after waiting between pushes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TypeVar

from sqlalchemy import Connection, bindparam, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from . import migrations
from .certstore import CertificateStore
from .releasestore import ReleaseStore
from .edgehealth import EdgeHealthStore
from .engine import READ_ONLY, built, make_engine
from .records import SCOPES, Conflict, Node, NotFound, Purge, PurgeAck, StoreError, Token, Version
from .schema import NodeRow, PurgeAckRow, PurgeRow, TokenRow, VersionRow

T = TypeVar("T")

TOKEN_PREFIX = "ocdn_"
TOKEN_ID_RE = re.compile(r"[0-9a-f]{16}")
MAX_TOKEN_TEXT = 200
SLUG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REPORT_STATUSES = ("applied", "rejected")
WRITE_ATTEMPTS = 50
# pg_advisory_xact_lock keys ("ocdn" + a number): one per thing serialised across replicas
MIGRATE_LOCK = 0x6F63646E_0001
PURGE_LOCK = 0x6F63646E_0002
# 0x6F63646E_0003: releasestore.PRUNE_LOCK


class Store(EdgeHealthStore, CertificateStore, ReleaseStore):
    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = make_engine(url)
        self._reader = self._engine.execution_options(**{READ_ONLY: True})
        self._clock = clock
        self.backend = self._engine.dialect.name  # "sqlite" | "postgresql"
        self._writing = threading.RLock() if self.backend == "sqlite" else nullcontext()  # Rule 5
        self._shared = threading.local()  # Rule 6: .session, the block's read session

    def __repr__(self) -> str:
        return f"<Store {self._engine.url.render_as_string(hide_password=True)}>"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> None:
        """Bring the schema to the newest migration; a no-op when it is there already."""
        with self._errors(), self._engine.begin() as conn:
            self._lock(conn, MIGRATE_LOCK)  # replicas starting together migrate one at a time
            migrations.upgrade_to_head(conn)

    def close(self) -> None:
        self._engine.dispose()

    # -- tokens ------------------------------------------------------------------------

    def create_token(self, name: str, scopes: Iterable[str],
                     node_id: str | None = None) -> tuple[Token, str]:
        """A new token and its text, which is shown this once and never stored."""
        scopes = _check_scopes(scopes)
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)

        def work(s: Session) -> Token:
            if node_id is not None and s.get(NodeRow, node_id) is None:
                raise NotFound(f"no node {node_id!r} to bind the token to")
            row = TokenRow(id=token_id, name=name, scopes=" ".join(sorted(scopes)),
                           secret_hash=_hash_secret(secret), node_id=node_id,
                           created_at=self._now(), revoked_at=None)
            s.add(row)
            s.flush()
            return _token(row)

        token = self._write(work, f"creating token {name!r}")
        return token, f"{TOKEN_PREFIX}{token_id}_{secret}"

    def authenticate(self, token_text: str) -> Token | None:
        """The live token `token_text` names, or None (malformed, unknown, revoked, wrong)."""
        parsed = _parse_token_text(token_text)
        if parsed is None:
            return None
        token_id, secret = parsed
        tokens = TokenRow.__table__
        row = built("token", lambda: select(tokens).where(tokens.c.id == bindparam("id")))
        row_token, secret_hash = self._read_rows(lambda c: _token_and_hash(c.execute(row, {"id": token_id}).first()))
        if not hmac.compare_digest(secret_hash, _hash_secret(secret)):
            return None
        if row_token is None or row_token.revoked:
            return None
        return row_token

    def list_tokens(self) -> list[Token]:
        return self._read(lambda s: [_token(r) for r in s.scalars(
            select(TokenRow).order_by(TokenRow.created_at, TokenRow.id))])

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; False when there is no such token. Revoking twice is fine."""
        def work(s: Session) -> bool:
            row = s.get(TokenRow, token_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = self._now()
            return True

        return self._write(work, f"revoking token {token_id!r}")

    # -- config versions ---------------------------------------------------------------

    def add_version(self, env: str, source: str, snapshot: dict, comment: str = "",
                    author: str = "") -> Version:
        """Store the next immutable version of `env` (1, 2, 3...)."""
        _check_slug("environment", env)
        snapshot = _json_document("snapshot", snapshot)

        def work(s: Session) -> Version:
            last = s.scalar(select(func.max(VersionRow.number)).where(VersionRow.env == env))
            row = VersionRow(env=env, number=(last or 0) + 1, source=source, snapshot=snapshot,
                             comment=comment, author=author, created_at=self._now())
            s.add(row)
            s.flush()  # a replica that took the same number first makes this raise
            return _version(row)

        return self._write(work, f"adding a version of {env!r}")

    def latest_version(self, env: str) -> Version | None:
        return self._read(lambda s: _maybe(_version, s.scalars(
            select(VersionRow).where(VersionRow.env == env)
            .order_by(VersionRow.number.desc()).limit(1)).first()))

    def latest_number(self, env: str) -> int:
        """The newest version's number of `env` (0 if none), without loading it (Rule 8)."""
        latest = built("latest version", lambda: select(func.max(VersionRow.number))
                       .where(VersionRow.env == bindparam("env")))
        return self._read_rows(lambda c: c.scalar(latest, {"env": env}) or 0)

    def get_version(self, env: str, number: int) -> Version | None:
        return self._read(lambda s: _maybe(_version, s.get(VersionRow, (env, number))))

    def list_versions(self, env: str, limit: int = 50) -> list[Version]:
        """The newest `limit` versions of `env`, newest first."""
        return self._read(lambda s: [_version(r) for r in s.scalars(
            select(VersionRow).where(VersionRow.env == env)
            .order_by(VersionRow.number.desc()).limit(max(limit, 0)))])

    # -- nodes -------------------------------------------------------------------------

    def register_node(self, name: str, kind: str, location: str, env: str, address: str) -> Node:
        """Register a node; the same (kind, name) again updates it and keeps its id."""
        if not name or not kind:
            raise ValueError("a node needs a name and a kind")
        _check_slug("environment", env)

        def work(s: Session) -> Node:
            row = s.scalars(select(NodeRow).where(NodeRow.kind == kind, NodeRow.name == name)).first()
            if row is None:
                row = NodeRow(id="n-" + secrets.token_hex(4), name=name, kind=kind,
                              registered_at=self._now(), last_contact=None, running_version=None,
                              reported_version=None, status="new", reason="")
                s.add(row)
            row.location, row.env, row.address = location, env, address
            s.flush()  # a replica that registered the same name first makes this raise
            return _node(row)

        return self._write(work, f"registering {kind} {name!r}")

    def get_node(self, node_id: str) -> Node | None:
        return self._read(lambda s: _maybe(_node, s.get(NodeRow, node_id)))

    def list_nodes(self, env: str | None = None) -> list[Node]:
        query = select(NodeRow).order_by(NodeRow.kind, NodeRow.name)
        if env is not None:
            query = query.where(NodeRow.env == env)
        return self._read(lambda s: [_node(r) for r in s.scalars(query)])

    def node_contact(self, node_id: str) -> None:
        """Note that the node was heard from now. NotFound for an unknown node."""
        def work(s: Session) -> None:
            _node_row(s, node_id).last_contact = self._now()

        self._write(work, f"noting contact from node {node_id!r}")

    def nodes_contact(self, heard: dict[str, float],
                      ended: dict[str, tuple[str, float]] | None = None) -> set[str]:
        """Note several nodes' contact (node id -> when it was heard from) in one
        transaction; a time never moves a node's contact back. ``ended``: node id ->
        (stream id, when) of event streams that ended (Rule 7). Returns the ids of the
        nodes that do not exist (deleted meanwhile)."""
        ended = ended or {}
        asked = set(heard) | set(ended)

        def work(s: Session) -> set[str]:
            found = set(s.scalars(select(NodeRow.id).where(NodeRow.id.in_(list(asked)))))
            nodes = NodeRow.__table__
            for node_id in found & set(heard):
                at = heard[node_id]
                s.execute(update(nodes).where(nodes.c.id == node_id,
                                              nodes.c.last_contact.is_(None) | (nodes.c.last_contact < at))
                          .values(last_contact=at))
            for node_id in found & set(ended):
                stream_id, at = ended[node_id]
                s.execute(update(nodes).where(nodes.c.id == node_id, nodes.c.stream_id == stream_id)
                          .values(stream_ended_at=at))
            return asked - found

        if not asked:
            return set()
        return self._write(work, f"noting contact from {len(asked)} node(s)")

    def stream_started(self, node_id: str, stream_id: str) -> None:
        """Rule 7: the node's event stream ``stream_id`` is open (and the node heard
        from now). NotFound for an unknown node."""
        nodes = NodeRow.__table__

        def work(s: Session) -> None:
            done = s.execute(update(nodes).where(nodes.c.id == node_id)
                             .values(last_contact=self._now(), stream_id=stream_id, stream_ended_at=None))
            if not done.rowcount:
                raise NotFound(f"no node {node_id!r}")

        self._write(work, f"noting the event stream of node {node_id!r}")

    def set_node_address(self, node_id: str, address: str) -> Node:
        """The node is reachable at `address` now (it restarted elsewhere). NotFound for an unknown node."""
        def work(s: Session) -> Node:
            row = _node_row(s, node_id)
            row.address = address
            row.last_contact = self._now()
            return _node(row)

        return self._write(work, f"recording the address of node {node_id!r}")

    def node_report(self, node_id: str, version: int, status: str, reason: str = "") -> Node:
        """Record what the node did with `version`: "applied" it, or "rejected" it (keeping
        the version it ran before)."""
        if status not in REPORT_STATUSES:
            raise ValueError(f"node status {status!r}: expected one of {', '.join(REPORT_STATUSES)}")

        def work(s: Session) -> Node:
            row = _node_row(s, node_id)
            if status == "applied":
                row.running_version = version
            row.reported_version, row.status, row.reason = version, status, reason
            row.last_contact = self._now()
            return _node(row)

        return self._write(work, f"recording the report of node {node_id!r}")

    def delete_node(self, node_id: str) -> bool:
        """Forget a node, its purge acks, and revoke the tokens bound to it."""
        def work(s: Session) -> bool:
            row = s.get(NodeRow, node_id)
            if row is None:
                return False
            s.execute(update(TokenRow).where(TokenRow.node_id == node_id, TokenRow.revoked_at.is_(None))
                      .values(revoked_at=self._now()))
            s.execute(delete(PurgeAckRow).where(PurgeAckRow.node_id == node_id))
            s.delete(row)
            return True

        return self._write(work, f"deleting node {node_id!r}")

    # -- purges ------------------------------------------------------------------------

    def add_purge(self, env: str, spec: dict) -> Purge:
        """Store a purge; ids increase, and become visible in that order."""
        _check_slug("environment", env)
        spec = _json_document("purge spec", spec)

        def work(s: Session) -> Purge:
            self._lock(s.connection(), PURGE_LOCK)  # held to commit: ids commit in order
            row = PurgeRow(env=env, spec=spec, created_at=self._now())
            s.add(row)
            s.flush()
            return _purge(row)

        return self._write(work, f"adding a purge to {env!r}")

    def get_purge(self, purge_id: int) -> Purge | None:
        return self._read(lambda s: _maybe(_purge, s.get(PurgeRow, purge_id)))

    def purges_after(self, env: str, after_id: int, limit: int = 1000) -> list[Purge]:
        """Purges of `env` with ids above `after_id`, oldest first (Rule 8)."""
        purges = PurgeRow.__table__
        after = built("purges after", lambda: select(purges).where(
            purges.c.env == bindparam("env"), purges.c.id > bindparam("after")).order_by(purges.c.id)
            .limit(bindparam("limit")))
        return self._read_rows(lambda c: [_purge(r) for r in c.execute(
            after, {"env": env, "after": after_id, "limit": max(limit, 0)})])

    def ack_purge(self, purge_id: int, node_id: str, ms: float, removed: int) -> None:
        """Record that a node carried out a purge (which is also contact from it). The
        first ack of a (purge, node) counts; repeats are ignored."""
        def work(s: Session) -> None:
            if s.get(PurgeAckRow, (purge_id, node_id)) is not None:
                return
            if s.get(PurgeRow, purge_id) is None:
                raise NotFound(f"no purge {purge_id}")
            now = self._now()
            _node_row(s, node_id).last_contact = now
            s.add(PurgeAckRow(purge_id=purge_id, node_id=node_id, ms=float(ms),
                              removed=int(removed), at=now))
            s.flush()  # the same ack racing in through another replica makes this raise

        self._write(work, f"acknowledging purge {purge_id} for node {node_id!r}")

    def purge_acks(self, purge_id: int) -> list[PurgeAck]:
        return self._read(lambda s: [_purge_ack(r) for r in s.scalars(
            select(PurgeAckRow).where(PurgeAckRow.purge_id == purge_id)
            .order_by(PurgeAckRow.at, PurgeAckRow.node_id))])

    # -- plumbing ----------------------------------------------------------------------

    def now(self) -> float:
        """The store's clock (what it writes as "now")."""
        return float(self._clock())

    def _now(self) -> float:
        return float(self._clock())

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Rule 6: the reads of this block, in this thread, in one read transaction."""
        if getattr(self._shared, "session", None) is not None:  # nested: the outer block's
            yield
            return
        with self._errors(), Session(self._reader) as s, s.begin():
            self._shared.session = s
            try:
                yield
            finally:
                self._shared.session = None

    def _read(self, work: Callable[[Session], T]) -> T:
        shared = getattr(self._shared, "session", None)
        if shared is not None:  # Rule 6
            with self._errors():
                return work(shared)
        with self._errors(), Session(self._reader) as s, s.begin():
            return work(s)

    def _read_rows(self, work: Callable[[Connection], T]) -> T:
        """Rule 8: ``_read`` for work made of Core statements only."""
        shared = getattr(self._shared, "session", None)
        if shared is not None:  # Rule 6
            with self._errors():
                return work(shared.connection())
        with self._errors(), self._reader.begin() as conn:
            return work(conn)

    def _write_rows(self, work: Callable[[Connection], T], what: str) -> T:
        """Rule 8: ``_write`` for work made of Core statements only."""
        with self._errors():
            for _ in range(WRITE_ATTEMPTS):
                try:
                    with self._writing, self._engine.begin() as conn:
                        return work(conn)
                except IntegrityError:
                    continue
        raise Conflict(f"{what}: still clashing with concurrent writers after {WRITE_ATTEMPTS} attempts")

    def _write(self, work: Callable[[Session], T], what: str) -> T:
        """Run `work` in one transaction; when a concurrent writer took the same unique key
        first, run it again (it then sees that writer's row)."""
        with self._errors():
            for _ in range(WRITE_ATTEMPTS):
                try:
                    with self._writing, Session(self._engine) as s, s.begin():
                        return work(s)
                except IntegrityError:
                    continue
        raise Conflict(f"{what}: still clashing with concurrent writers after {WRITE_ATTEMPTS} attempts")

    def _lock(self, conn, key: int) -> None:
        """A transaction-long lock shared by every replica (SQLite's BEGIN IMMEDIATE already
        serialises writers)."""
        if self.backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise
        except DBAPIError as exc:
            missing_table = getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in str(exc.orig)
            hint = " (has Store.migrate() run?)" if missing_table else ""
            raise StoreError(f"database error on {self!r}: {str(exc.orig).strip()}{hint}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"database error on {self!r}: {exc}") from exc


# -- checks and conversions ----------------------------------------------------------------

def _check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    if isinstance(scopes, str):
        raise ValueError(f"scopes must be a collection of names, not the string {scopes!r}")
    scopes = frozenset(scopes)
    unknown = scopes - SCOPES
    if unknown:
        raise ValueError(f"unknown token scope(s) {', '.join(sorted(unknown))}: "
                         f"expected some of {', '.join(sorted(SCOPES))}")
    if not scopes:
        raise ValueError(f"a token needs at least one scope of {', '.join(sorted(SCOPES))}")
    return scopes


def _check_slug(what: str, value: str) -> None:
    if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
        raise ValueError(f"{what} {value!r}: expected letters, digits, '.', '_' or '-' "
                         "(up to 64, starting with a letter or digit)")


def _json_document(what: str, value: dict) -> dict:
    """A copy of `value` exactly as it will read back from the database."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object (a dict), not {type(value).__name__}")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from None


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# A hash no secret has, compared against when the token id is unknown, so that an unknown
# id and a wrong secret take the same path.
_NO_HASH = "!" * 64


def _parse_token_text(token_text: object) -> tuple[str, str] | None:
    if not isinstance(token_text, str) or len(token_text) > MAX_TOKEN_TEXT:
        return None
    if not token_text.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token_text[len(TOKEN_PREFIX):].partition("_")
    if not sep or not secret or not TOKEN_ID_RE.fullmatch(token_id):
        return None
    return token_id, secret


def _token_and_hash(row: TokenRow | None) -> tuple[Token | None, str]:
    return (None, _NO_HASH) if row is None else (_token(row), row.secret_hash)


def _node_row(s: Session, node_id: str) -> NodeRow:
    row = s.get(NodeRow, node_id)
    if row is None:
        raise NotFound(f"no node {node_id!r}")
    return row


def _maybe(convert: Callable[[object], T], row: object | None) -> T | None:
    return None if row is None else convert(row)


def _token(r: TokenRow) -> Token:
    return Token(id=r.id, name=r.name, scopes=frozenset(r.scopes.split()), node_id=r.node_id,
                 created_at=r.created_at, revoked=r.revoked_at is not None)


def _version(r: VersionRow) -> Version:
    return Version(env=r.env, number=r.number, source=r.source, snapshot=r.snapshot,
                   comment=r.comment, author=r.author, created_at=r.created_at)


def _node(r: NodeRow) -> Node:
    return Node(id=r.id, name=r.name, kind=r.kind, location=r.location, env=r.env,
                address=r.address, registered_at=r.registered_at, last_contact=r.last_contact,
                running_version=r.running_version, reported_version=r.reported_version,
                status=r.status, reason=r.reason, stream_ended_at=r.stream_ended_at)


def _purge(r: PurgeRow) -> Purge:
    return Purge(id=r.id, env=r.env, spec=r.spec, created_at=r.created_at)


def _purge_ack(r: PurgeAckRow) -> PurgeAck:
    return PurgeAck(purge_id=r.purge_id, node_id=r.node_id, ms=r.ms, removed=r.removed, at=r.at)
