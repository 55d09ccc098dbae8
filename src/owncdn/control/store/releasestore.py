"""The store's part of pushed releases: immutable releases, the current pointer, and
what each node serves.

Rules:
1. ``add_release`` stores the next number of (env, service) and makes it current in
   the same transaction; a replica that took the same number first makes it run
   again (the store's Rule 2), so numbers never repeat.
2. ``activate_release`` moves the current pointer to an existing release (rollback
   and roll forward); nothing is copied, so it is instant.
3. ``report_node_release``: ``serving`` sets what the node serves; ``failed`` and
   ``retrying`` (still fetching after an error, its reason kept) keep the number it
   served before (it never serves a half-synced release).
4. ``current_releases(env)`` is one small query (no manifests): the state channel
   reads it for every node about once a second and loads a manifest only when a
   release is new to it.
5. ``release_numbers`` and ``release_pointers`` are what blob retention
   (``owncdn.core.content.retention``) needs: numbers, current pointers and the
   numbers nodes serve, without manifests.
6. ``report_node_release`` is two statements, no ORM objects: an ``UPDATE ...
   RETURNING`` of the node's contact (its name, location and environment) and an
   upsert (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, SQLite 3.35+ and
   PostgreSQL) of its row. The ORM's way (two reads, the rows' changes flushed) took
   about twice as long, under the write lock that a push's edges report through
   one after another. The statements are built once (``engine`` Rule 5; 0.46 ms a
   report when built each time, 0.2 ms so).
7. ``release_progress`` is what a release status (and its wait's every wake-up)
   reads: one query, the edges of the environment joined with their reports on the
   service, as plain rows (no ORM objects).
8. ``add_release`` is three statements, no ORM objects: the last number, an
   ``INSERT`` of the release (its manifest's JSON text as given, ``engine`` Rule 4)
   and an upsert of the current pointer, the statements built once (``engine`` Rule 5):
   1.3 ms through the ORM, 1.0 ms building the statements each time, 0.5 ms so (of
   which 0.4 ms is SQLite's commit of the 128 KB manifest of the push benchmark).
9. What a push reads and writes here again and again (Rules 4, 6, 7, 8, and whether
   a release exists or is current) runs on a connection, not an ORM session (the
   store's Rule 8).
10. ``prune_manifests(numbers)`` drops the manifests of the releases blob GC found
    outside the retention (``blobgc`` Rule 5): the row stays, listed with
    ``pruned_at``, so the database holds the manifests of the retained releases rather
    than one more manifest with every push for ever (11 MB a push of a 100,000-file
    site). Only the numbers given are pruned, never one created since GC read them;
    under ``PRUNE_LOCK``, which ``activate_release`` also takes, the current release
    and those nodes serve are read again and left alone, and an activation finds the
    manifest there or raises ``ReleasePruned``: the current release always has its
    manifest.
11. ``warm()`` runs the reads a push's requests make here (whether a release exists
    or is current, its progress, what nodes report, the numbers, the latest config
    version and a version by its number) for an environment and service that match
    nothing: SQLAlchemy compiles a statement the first time it runs, which took about
    9 ms for these in a fresh process, inside a fresh control plane's first push (its
    release, its status wait and its acknowledgements). ``owncdn control`` calls it
    once serving.
12. ``set_release_comment`` replaces the comment of an existing release (pruned or
    not: a comment is not content); nothing else about it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, func, null, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .engine import EncodedJSON, built
from .records import NotFound, StoreError
from .releaseschema import CurrentReleaseRow, NodeReleaseRow, ReleaseRow
from .schema import NodeRow

__all__ = ["CurrentRelease", "EdgeProgress", "NodeRelease", "Release", "ReleasePruned", "ReleaseStore"]

NODE_RELEASE_STATUSES = ("serving", "failed", "retrying")
PRUNE_LOCK = 0x6F63646E_0003  # the store's pg_advisory_xact_lock keys: Rule 10
PRUNE_BATCH = 500  # release numbers in one UPDATE's IN list


class ReleasePruned(StoreError):
    """The release's manifest was dropped (Rule 10): it cannot be activated."""


@dataclass(frozen=True)
class Release:
    env: str
    service: str
    number: int
    id: str  # the manifest id
    files: int
    bytes: int
    author: str
    created_at: float
    manifest: dict | None = None  # None when listed, or pruned
    pruned_at: float | None = None  # blob GC dropped its manifest then (Rule 10)
    comment: str = ""  # why it was pushed (`owncdn push -m`)


@dataclass(frozen=True)
class CurrentRelease:
    service: str
    number: int
    id: str


class EdgeProgress(NamedTuple):
    """An edge node and what it last reported on one service (None: nothing yet)."""

    node_id: str
    name: str
    location: str
    last_contact: float | None
    number: int | None
    status: str | None
    reason: str | None
    serving: int | None
    stream_ended_at: float | None = None  # its event stream ended then (``owncdn.core.contact``)


@dataclass(frozen=True)
class NodeRelease:
    node_id: str
    name: str
    location: str
    service: str
    number: int  # the release last reported on
    status: str  # "serving" | "failed" | "retrying"
    reason: str
    serving: int | None  # what the node serves now
    at: float
    env: str = ""  # the node's environment


class ReleaseStore:
    """Mixed into ``Store``: uses its ``_read``, ``_write``, ``_read_rows``, ``_write_rows``,
    ``_lock`` and ``_now``."""

    def add_release(self, env: str, service: str, manifest: dict | None, manifest_id: str, files: int,
                    size: int, author: str = "", manifest_text: str | None = None, comment: str = "") -> Release:
        """Store the next release of ``service`` in ``env`` and make it current (Rule 1).
        ``manifest_text``: ``manifest`` in JSON already (its canonical encoding), stored
        as it is (``engine`` Rule 4); ``manifest`` may then be None. ``comment``: why."""
        if manifest_text is not None:
            manifest = EncodedJSON(manifest, manifest_text)
        last_number, insert, point = _adding(self.backend)
        key = {"env": env, "service": service}

        def work(s: Connection) -> Release:  # Rule 8: three statements
            number, now = (s.scalar(last_number, key) or 0) + 1, self._now()
            s.execute(insert, {**key, "number": number, "manifest_id": manifest_id, "manifest": manifest,
                               "files": files, "bytes": size, "author": author, "created_at": now,
                               "comment": comment})
            s.execute(point, {**key, "number": number, "activated_at": now, "author": author})
            return Release(env=env, service=service, number=number, id=manifest_id, files=files, bytes=size,
                           author=author, created_at=now, comment=comment)

        return self._write_rows(work, f"adding a release of {service!r} in {env!r}")

    def activate_release(self, env: str, service: str, number: int, author: str = "") -> Release:
        """Make release ``number`` current (Rule 2); NotFound if there is none,
        ReleasePruned if its manifest is gone (Rule 10)."""
        def work(s: Session) -> Release:
            self._lock(s.connection(), PRUNE_LOCK)
            row = s.get(ReleaseRow, (env, service, number))
            if row is None:
                raise NotFound(f"service {service!r} in {env!r} has no release {number}")
            if row.pruned_at is not None:
                raise ReleasePruned(f"release {number} of {service!r} in {env!r} was pruned by blob GC")
            _point(s, env, service, number, author, self._now())
            return _release(row, with_manifest=False)

        return self._write(work, f"activating release {number} of {service!r} in {env!r}")

    def set_release_comment(self, env: str, service: str, number: int, comment: str) -> Release:
        """Rule 12: release ``number``'s comment replaced; NotFound if there is none."""
        def work(s: Session) -> Release:
            row = s.get(ReleaseRow, (env, service, number))
            if row is None:
                raise NotFound(f"service {service!r} in {env!r} has no release {number}")
            row.comment = comment
            return _release(row, with_manifest=False)

        return self._write(work, f"commenting release {number} of {service!r} in {env!r}")

    def get_release(self, env: str, service: str, number: int) -> Release | None:
        """One release with its manifest."""
        return self._read(lambda s: _maybe_release(s.get(ReleaseRow, (env, service, number))))

    def has_release(self, env: str, service: str, number: int) -> bool:
        """Whether release ``number`` exists (its manifest is not read; Rule 9)."""
        releases = ReleaseRow.__table__
        query = built("release exists", lambda: select(releases.c.number).where(
            releases.c.env == bindparam("env"), releases.c.service == bindparam("service"),
            releases.c.number == bindparam("number")))
        key = {"env": env, "service": service, "number": number}
        return self._read_rows(lambda c: c.scalar(query, key) is not None)

    def current_release_number(self, env: str, service: str) -> int | None:
        """Rule 9."""
        current = CurrentReleaseRow.__table__
        query = built("current release number", lambda: select(current.c.number).where(
            current.c.env == bindparam("env"), current.c.service == bindparam("service")))
        return self._read_rows(lambda c: c.scalar(query, {"env": env, "service": service}))

    def current_releases(self, env: str) -> list[CurrentRelease]:
        """Every service's current release in ``env``, without manifests (Rules 4, 9)."""
        current, releases = CurrentReleaseRow.__table__, ReleaseRow.__table__
        query = built("current releases", lambda: select(current.c.service, current.c.number, releases.c.manifest_id)
                      .join(releases, (releases.c.env == current.c.env) & (releases.c.service == current.c.service)
                            & (releases.c.number == current.c.number))
                      .where(current.c.env == bindparam("env")).order_by(current.c.service))
        return self._read_rows(lambda c: [CurrentRelease(*row) for row in c.execute(query, {"env": env})])

    def list_releases(self, env: str, service: str, limit: int = 50, number: int | None = None) -> list[Release]:
        """The newest ``limit`` releases (with ``number``, that one alone), newest
        first, without manifests."""
        columns = [c for c in ReleaseRow.__table__.columns if c.name != "manifest"]
        query = select(*columns).where(ReleaseRow.env == env, ReleaseRow.service == service)
        if number is not None:
            query = query.where(ReleaseRow.number == number)
        query = query.order_by(ReleaseRow.number.desc()).limit(max(limit, 0))
        return self._read(lambda s: [
            Release(env=r.env, service=r.service, number=r.number, id=r.manifest_id, files=r.files,
                    bytes=r.bytes, author=r.author, created_at=r.created_at, pruned_at=r.pruned_at, comment=r.comment)
            for r in s.execute(query)])

    def prune_manifests(self, numbers: dict[tuple[str, str], list[int]], dry_run: bool = False) -> int:
        """Rule 10: drop the manifests of releases ``numbers`` (per (env, service)) but
        the current ones and those nodes serve; how many were dropped (``dry_run``:
        would be)."""
        releases, current, served = ReleaseRow.__table__, CurrentReleaseRow.__table__, NodeReleaseRow.__table__
        nodes = NodeRow.__table__

        def work(s: Connection) -> int:
            self._lock(s, PRUNE_LOCK)
            dropped, now = 0, self._now()
            for (env, service), wanted in sorted(numbers.items()):
                key = (releases.c.env == env) & (releases.c.service == service)
                spared = set(s.scalars(select(current.c.number).where(current.c.env == env,
                                                                      current.c.service == service)))
                spared.update(n for n in s.scalars(select(served.c.serving).join(nodes, nodes.c.id == served.c.node_id)
                                                   .where(nodes.c.env == env, served.c.service == service))
                              if n is not None)
                todo = sorted(set(wanted) - spared)
                for i in range(0, len(todo), PRUNE_BATCH):
                    which = key & releases.c.number.in_(todo[i:i + PRUNE_BATCH]) & releases.c.pruned_at.is_(None)
                    if dry_run:
                        dropped += s.scalar(select(func.count()).select_from(releases).where(which)) or 0
                    else:
                        dropped += s.execute(update(releases).where(which)
                                             .values(manifest=null(), pruned_at=now)).rowcount
            return dropped

        return self._write_rows(work, "pruning release manifests")

    def release_numbers(self, env: str | None = None, service: str | None = None) -> dict[tuple[str, str], list[int]]:
        """Every release number per (env, service), ascending (blob retention, Rule 5)."""
        query = select(ReleaseRow.env, ReleaseRow.service, ReleaseRow.number).order_by(ReleaseRow.number)
        if env is not None:
            query = query.where(ReleaseRow.env == env)
        if service is not None:
            query = query.where(ReleaseRow.service == service)

        def work(s: Session) -> dict[tuple[str, str], list[int]]:
            out: dict[tuple[str, str], list[int]] = {}
            for e, svc, number in s.execute(query):
                out.setdefault((e, svc), []).append(number)
            return out

        return self._read(work)

    def release_pointers(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], set[int]]]:
        """Every (env, service)'s current release and the releases nodes serve (Rule 5)."""
        def work(s: Session):
            current = {(e, svc): n for e, svc, n in s.execute(
                select(CurrentReleaseRow.env, CurrentReleaseRow.service, CurrentReleaseRow.number))}
            serving: dict[tuple[str, str], set[int]] = {}
            for e, svc, n in s.execute(select(NodeRow.env, NodeReleaseRow.service, NodeReleaseRow.serving)
                                       .join(NodeReleaseRow, NodeReleaseRow.node_id == NodeRow.id)):
                if n is not None:
                    serving.setdefault((e, svc), set()).add(n)
            return current, serving

        return self._read(work)

    def report_node_release(self, node_id: str, service: str, number: int, status: str,
                            reason: str = "") -> NodeRelease:
        """What a node did with release ``number`` of ``service`` (Rule 3); also contact."""
        if status not in NODE_RELEASE_STATUSES:
            raise ValueError(f"release status {status!r}: expected one of {', '.join(NODE_RELEASE_STATUSES)}")

        touch, upsert = _reporting(self.backend, status == "serving")
        row = {"node_id": node_id, "service": service, "number": number, "status": status, "reason": reason,
               "serving": number if status == "serving" else None}

        def work(s: Connection) -> NodeRelease:  # Rule 6: two statements
            now = self._now()
            node = s.execute(touch, {"node": node_id, "now": now}).first()
            if node is None:
                raise NotFound(f"no node {node_id!r}")
            serving = s.execute(upsert, {**row, "at": now}).scalar_one()
            return NodeRelease(node_id=node_id, name=node.name, location=node.location, service=service,
                               number=number, status=status, reason=reason, serving=serving, at=now, env=node.env)

        return self._write_rows(work, f"recording release {number} of {service!r} on node {node_id!r}")

    def release_progress(self, env: str, service: str) -> list[EdgeProgress]:
        """Every edge node of ``env`` with its contact and what it last reported for
        ``service`` (Rule 7), by name."""
        nodes, table = NodeRow.__table__, NodeReleaseRow.__table__
        query = built("release progress", lambda: select(
            nodes.c.id, nodes.c.name, nodes.c.location, nodes.c.last_contact, table.c.number,
            table.c.status, table.c.reason, table.c.serving, nodes.c.stream_ended_at)
            .select_from(nodes.outerjoin(table, (table.c.node_id == nodes.c.id)
                                         & (table.c.service == bindparam("service"))))
            .where(nodes.c.env == bindparam("env"), nodes.c.kind == "edge").order_by(nodes.c.name))
        return self._read_rows(lambda c: [EdgeProgress(*row) for row in c.execute(query, {"env": env, "service": service})])

    def warm(self) -> None:
        """Rule 11 (``""`` is neither an environment nor a service)."""
        self.current_release_number("", "")
        self.has_release("", "", 0)
        self.release_progress("", "")
        self.node_releases("", "")
        self.release_numbers("", "")
        self.list_releases("", "", 1)
        self.latest_number("")
        self.latest_version("")
        self.get_version("", 0)

    def node_releases(self, env: str, service: str | None = None) -> list[NodeRelease]:
        """What every node of ``env`` reported (for ``service``), by node name."""
        query = (select(NodeRow, NodeReleaseRow).join(NodeReleaseRow, NodeReleaseRow.node_id == NodeRow.id)
                 .where(NodeRow.env == env).order_by(NodeRow.name, NodeReleaseRow.service))
        if service is not None:
            query = query.where(NodeReleaseRow.service == service)
        return self._read(lambda s: [_node_release(node, row) for node, row in s.execute(query)])


def _reporting(backend: str, serving: bool) -> tuple:
    """Rule 6's statements for ``backend`` (``engine.built``): the node's contact
    updated, returning its name, location and environment; the upsert of its row (a
    ``serving`` report also sets what it serves), returning what it serves."""
    nodes, table = NodeRow.__table__, NodeReleaseRow.__table__

    def make_upsert():
        upsert = (sqlite_insert if backend == "sqlite" else postgresql_insert)(table)
        changed = ("number", "status", "reason", "at") + (("serving",) if serving else ())
        return upsert.on_conflict_do_update(index_elements=[table.c.node_id, table.c.service],
                                            set_={c: upsert.excluded[c] for c in changed}).returning(table.c.serving)

    touch = built("node touched", lambda: update(nodes).where(nodes.c.id == bindparam("node"))
                  .values(last_contact=bindparam("now")).returning(nodes.c.name, nodes.c.location, nodes.c.env))
    return touch, built(("node release", backend, serving), make_upsert)


def _adding(backend: str) -> tuple:
    """Rule 8's statements for ``backend`` (``engine.built``: building them each time
    took about as long as running them): the last number of (env, service), the
    release's insert (a concurrent writer with the same number makes it raise) and the
    current pointer's upsert."""
    releases, current = ReleaseRow.__table__, CurrentReleaseRow.__table__

    def make_point():
        upsert = (sqlite_insert if backend == "sqlite" else postgresql_insert)(current)
        return upsert.on_conflict_do_update(index_elements=[current.c.env, current.c.service],
                                            set_={c: upsert.excluded[c] for c in ("number", "activated_at", "author")})

    last = built("last release", lambda: select(func.max(releases.c.number)).where(
        releases.c.env == bindparam("env"), releases.c.service == bindparam("service")))
    return last, built("release insert", releases.insert), built(("current release", backend), make_point)


def _point(s: Session, env: str, service: str, number: int, author: str, now: float) -> None:
    current = s.get(CurrentReleaseRow, (env, service))
    if current is None:
        s.add(CurrentReleaseRow(env=env, service=service, number=number, activated_at=now, author=author))
    else:
        current.number, current.activated_at, current.author = number, now, author


def _release(r: ReleaseRow, with_manifest: bool = True) -> Release:
    return Release(env=r.env, service=r.service, number=r.number, id=r.manifest_id, files=r.files,
                   bytes=r.bytes, author=r.author, created_at=r.created_at,
                   manifest=r.manifest if with_manifest else None, pruned_at=r.pruned_at, comment=r.comment)


def _maybe_release(r: ReleaseRow | None) -> Release | None:
    return None if r is None else _release(r)


def _node_release(node: NodeRow, r: NodeReleaseRow) -> NodeRelease:
    return NodeRelease(node_id=node.id, name=node.name, location=node.location, service=r.service,
                       number=r.number, status=r.status, reason=r.reason, serving=r.serving, at=r.at,
                       env=node.env)
