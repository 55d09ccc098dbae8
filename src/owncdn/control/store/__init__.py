"""The control plane's state store.

    store = Store("sqlite:///var/lib/owncdn/control.db")    # or postgresql://user@host:port/db
    store.migrate()                                          # idempotent; run at every start
    token, text = store.create_token("ci", {"deploy"})       # `text` is shown once
    store.authenticate(text)                                 # -> token, or None

Parts:
    records.py      the frozen records the store returns (Token, Version, Node, Purge,
                    PurgeAck), the token SCOPES and the errors (StoreError, NotFound, Conflict)
    store.py        `Store`: one short transaction per method, safe with several replicas
    edgehealth.py   the health monitor's rows (`Store.edge_health`, `Store.record_checks`)
    releasestore.py pushed releases, the current one per service, what each node serves
                    (tables in releaseschema.py)
    schema.py       the tables as SQLAlchemy typed models
    engine.py       URLs and engines (SQLite in WAL mode, PostgreSQL through psycopg 3)
    migrations/     Alembic, configured from Python; versions/ holds hand-written migrations
"""

from .edgehealth import CheckResult, EdgeHealthRecord
from .engine import sqlite_url
from .releasestore import CurrentRelease, NodeRelease, Release, ReleasePruned
from .records import SCOPES, Conflict, Node, NotFound, Purge, PurgeAck, StoreError, Token, Version
from .store import Store

__all__ = ["SCOPES", "CheckResult", "Conflict", "CurrentRelease", "EdgeHealthRecord", "NodeRelease", "Release", "ReleasePruned", "Node", "NotFound", "Purge", "PurgeAck", "Store", "StoreError",
           "Token", "Version", "sqlite_url"]
