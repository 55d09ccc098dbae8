"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL.

One PostgreSQL server starts for the whole session (only when a PostgreSQL test runs);
each test gets its own empty database on it, or its own SQLite file.
"""

import uuid

import pytest

from owncdn.control.store import Store, sqlite_url
from owncdn.testing.clock import FakeClock
from owncdn.testing.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_server():
    with PostgresServer() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    pg = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield pg.create_database(name)
    pg.drop_database(name)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(store_url, clock):
    with Store(store_url, clock=clock.time) as s:
        s.migrate()
        yield s
