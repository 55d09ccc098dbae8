"""Database URLs and engines: SQLite by default, PostgreSQL (psycopg 3) for a fleet.

Rules:
1. `postgresql://` and `postgres://` mean psycopg 3 (`postgresql+psycopg://`); a URL
   that names its driver is used as given.
2. SQLite runs in WAL mode with foreign keys on, and every transaction that may write
   starts with `BEGIN IMMEDIATE`: writers queue on the busy timeout instead of failing
   when two deferred transactions both try to upgrade to a write lock. Connections with
   the `READ_ONLY` execution option begin deferred, so readers never wait for writers.
3. Engines hide SQL parameters from error messages and logs (a token hash is a parameter).
4. A JSON column's value is written as ``json.dumps`` writes it, except an ``EncodedJSON``
   (a document that carries its JSON text: a release's manifest in its canonical
   encoding, made for its id already), written as that text: encoding a one-file push's
   128 KB manifest again took about 0.6 ms of the control plane's CPU. Its document may
   be left out (``None``: an empty dict) where only the text is at hand: a manifest made
   from its changes, whose document would take about 30 ms to build at 100,000 files.
5. ``built(key, make)`` is the statement ``make()`` built once per process (and per
   ``key``: name it with the backend when it differs by backend), its values bound
   at each execution (``bindparam``): building a statement (``select(...).where(...)``,
   an upsert) took SQLAlchemy about as long as running it on SQLite, 0.1-0.5 ms on the
   hot paths of a push (reading the latest version, a node's report, adding a
   release), each several times a push.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.expression import Executable

from .records import StoreError

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another writer's transaction
READ_ONLY = "owncdn_read_only"  # execution option: this transaction only reads


class EncodedJSON(dict):
    """Rule 4: a JSON object (or None: left out) and ``text``, its JSON encoding (the
    caller's word)."""

    __slots__ = ("text",)

    def __init__(self, value: dict | None, text: str) -> None:
        super().__init__(value or {})
        self.text = text


_BUILT: dict = {}


def built(key, make: Callable[[], Executable]) -> Executable:
    """Rule 5."""
    statement = _BUILT.get(key)
    if statement is None:
        statement = _BUILT[key] = make()
    return statement


def _json_text(value: object) -> str:
    """Rule 4: the engines' ``json_serializer``."""
    if type(value) is EncodedJSON:
        return value.text
    return json.dumps(value)


def sqlite_url(state_dir: str | Path) -> str:
    """The default store of a control plane keeping its state in `state_dir`."""
    return f"sqlite:///{Path(state_dir) / 'control.db'}"


def normalize_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported database {parsed.get_backend_name()!r}: "
                         "use sqlite:///<path> or postgresql://user@host:port/db")
    return parsed


def make_engine(url: str) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(parsed, hide_parameters=True, pool_pre_ping=True, json_serializer=_json_text)


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    if in_memory:  # one shared connection, or every session would see its own empty database
        engine = create_engine(url, hide_parameters=True, poolclass=StaticPool, json_serializer=_json_text,
                               connect_args={"check_same_thread": False})
    else:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, hide_parameters=True, json_serializer=_json_text,
                               connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (rule 2)
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives the process crashing; only an OS crash or
            # power loss may undo the last commits (never corrupting the file). It takes
            # an fsync off every node report and purge acknowledgement.
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
