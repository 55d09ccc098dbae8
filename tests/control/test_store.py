"""The state store, run on SQLite and on a real PostgreSQL (see conftest.py)."""

import hashlib
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from owncdn.control.store import SCOPES, NotFound, Store, StoreError
from owncdn.control.store.engine import normalize_url
from owncdn.control.store.migrations import current_revision, head_revision
from owncdn.control.store.schema import Base


def raw_engine(url):
    return create_engine(normalize_url(url))


def concurrently(*jobs):
    """Run each job in its own thread, all released at once; their results in order."""
    barrier = threading.Barrier(len(jobs))
    results, errors = [None] * len(jobs), []

    def run(i, job):
        barrier.wait()
        try:
            results[i] = job()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


# -- schema and migrations -------------------------------------------------------------------

def test_migrate_is_idempotent(store, store_url):
    store.migrate()
    store.migrate()
    engine = raw_engine(store_url)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert set(inspect(conn).get_table_names()) >= {"tokens", "versions", "nodes", "purges", "purge_acks"}
    engine.dispose()


def test_migration_matches_the_models(store, store_url):
    engine = raw_engine(store_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_a_store_that_was_never_migrated_says_so(store_url):
    with Store(store_url) as fresh:
        with pytest.raises(StoreError, match="migrate"):
            fresh.list_tokens()


def test_plain_url_spellings_work(store_url):
    plain = store_url.replace("postgresql+psycopg://", "postgresql://")
    with Store(plain) as s:
        s.migrate()
        assert s.backend == store_url.split(":")[0].split("+")[0]
        assert s.add_purge("staging", {}).id == 1


def test_urls():
    assert normalize_url("postgresql://u@h:5/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u:pw@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:////var/lib/owncdn/control.db").database == "/var/lib/owncdn/control.db"
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        normalize_url("mysql://u@h/db")
    with pytest.raises(StoreError, match="not a database URL"):
        normalize_url("control.db")
    assert "pw" not in repr(Store("postgresql://u:pw@h/db"))


def test_an_unreachable_database_is_a_store_error():
    with Store("postgresql://nobody@127.0.0.1:1/nothing") as s:
        with pytest.raises(StoreError, match="database error on <Store postgresql"):
            s.list_nodes()


def test_an_in_memory_sqlite_store_works():
    with Store("sqlite://") as s:
        s.migrate()
        assert s.add_version("staging", "", {}).number == 1
        assert s.latest_version("staging").number == 1


# -- tokens ----------------------------------------------------------------------------------

def test_token_round_trip(store, clock):
    token, secret_text = store.create_token("ci", ["deploy", "read"])
    assert secret_text.startswith(f"ocdn_{token.id}_")
    assert token.scopes == frozenset({"deploy", "read"})
    assert token.created_at == clock.now and not token.revoked and token.node_id is None
    assert store.authenticate(secret_text) == token
    assert store.list_tokens() == [token]


def test_authenticate_refuses_wrong_malformed_and_unknown_tokens(store):
    token, secret_text = store.create_token("ci", ["read"])
    other, other_text = store.create_token("other", ["read"])
    wrong = secret_text[:-3] + ("aaa" if not secret_text.endswith("aaa") else "bbb")
    swapped = f"ocdn_{token.id}_" + other_text.split("_", 2)[2]
    for text_ in (wrong, swapped, "", "ocdn_", "ocdn__x", f"ocdn_{token.id}", f"ocdn_{token.id}_",
                  "Bearer " + secret_text, secret_text.replace("ocdn_", "cdn_"), "ocdn_zzzzzzzzzzzzzzzz_x",
                  f"ocdn_{'0' * 16}_" + secret_text.split("_", 2)[2], secret_text + "x" * 500, None, 42):
        assert store.authenticate(text_) is None, text_


def test_revoked_tokens_no_longer_authenticate(store):
    token, secret_text = store.create_token("ci", ["purge"])
    assert store.revoke_token(token.id) is True
    assert store.revoke_token(token.id) is True
    assert store.revoke_token("0" * 16) is False
    assert store.authenticate(secret_text) is None
    assert store.list_tokens()[0].revoked


def test_every_scope_is_kept_and_unknown_ones_are_refused(store):
    token, secret_text = store.create_token("root", SCOPES)
    assert store.authenticate(secret_text).scopes == SCOPES
    with pytest.raises(ValueError, match="unknown token scope.*superuser"):
        store.create_token("x", ["read", "superuser"])
    with pytest.raises(ValueError, match="not the string"):
        store.create_token("x", "read")
    with pytest.raises(ValueError, match="at least one scope"):
        store.create_token("x", [])


def test_node_tokens_name_an_existing_node_and_die_with_it(store):
    with pytest.raises(NotFound, match="n-nothere"):
        store.create_token("edge", ["node"], node_id="n-nothere")
    node = store.register_node("fra1", "edge", "Frankfurt", "production", "10.0.0.1")
    token, secret_text = store.create_token("fra1", ["node"], node_id=node.id)
    assert store.authenticate(secret_text).node_id == node.id
    assert store.delete_node(node.id) is True
    assert store.authenticate(secret_text) is None


def test_secrets_are_stored_only_as_hashes_and_never_shown(store, store_url):
    token, secret_text = store.create_token("ci", ["admin"])
    secret = secret_text.split("_", 2)[2]
    engine = raw_engine(store_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM tokens")).mappings().one()
    engine.dispose()
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in str(value) for value in row.values())
    shown = repr(token) + repr(store.list_tokens()) + repr(store.authenticate(secret_text)) + repr(store)
    assert secret not in shown and row["secret_hash"] not in shown


# -- config versions -------------------------------------------------------------------------

def test_versions_are_numbered_per_environment(store, clock):
    s1 = store.add_version("staging", "services: {}", {"services": {}}, "first", "ann")
    clock.advance(5)
    s2 = store.add_version("staging", "services: {a: 1}", {"services": {"a": 1}})
    p1 = store.add_version("production", "services: {}", {"services": {}})
    assert (s1.number, s2.number, p1.number) == (1, 2, 1)
    assert (s1.comment, s1.author, s1.created_at, s2.created_at) == ("first", "ann", clock.now - 5, clock.now)
    assert store.latest_version("staging") == s2
    assert store.latest_version("production") == p1
    assert store.latest_version("qa") is None
    assert store.get_version("staging", 1) == s1
    assert store.get_version("staging", 3) is None


def test_list_versions_is_newest_first(store):
    for i in range(5):
        store.add_version("staging", f"v{i}", {"i": i, "nested": {"list": [1, "two", None]}})
    assert [v.number for v in store.list_versions("staging")] == [5, 4, 3, 2, 1]
    assert [v.number for v in store.list_versions("staging", limit=2)] == [5, 4]
    assert store.list_versions("production") == []
    assert store.get_version("staging", 3).snapshot == {"i": 2, "nested": {"list": [1, "two", None]}}


def test_versions_refuse_bad_input(store):
    with pytest.raises(ValueError, match="environment"):
        store.add_version("no spaces", "", {})
    with pytest.raises(ValueError, match="JSON object"):
        store.add_version("staging", "", ["not", "a", "dict"])
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.add_version("staging", "", {"x": object()})


def test_concurrent_versions_from_two_replicas_get_distinct_consecutive_numbers(store, store_url):
    replicas = [Store(store_url), Store(store_url)]
    per_replica = 8

    def deploy(replica, name):
        return lambda: [replica.add_version("production", name, {"by": name}).number for _ in range(per_replica)]

    try:
        a, b = concurrently(deploy(replicas[0], "a"), deploy(replicas[1], "b"))
    finally:
        for replica in replicas:
            replica.close()
    assert sorted(a + b) == list(range(1, 2 * per_replica + 1))
    assert a == sorted(a) and b == sorted(b)
    assert [v.number for v in store.list_versions("production")] == list(range(2 * per_replica, 0, -1))


# -- nodes -----------------------------------------------------------------------------------

def test_register_and_re_register_a_node(store, clock):
    node = store.register_node("fra1", "edge", "Frankfurt", "staging", "10.0.0.1:8080")
    assert node.id.startswith("n-") and len(node.id) == 10
    assert (node.status, node.reason, node.registered_at, node.last_contact) == ("new", "", clock.now, None)
    assert node.running_version is None and node.reported_version is None
    clock.advance(10)
    again = store.register_node("fra1", "edge", "Frankfurt-2", "production", "10.0.0.2:8080")
    assert again.id == node.id
    assert (again.location, again.env, again.address, again.registered_at) == \
        ("Frankfurt-2", "production", "10.0.0.2:8080", node.registered_at)
    dns = store.register_node("fra1", "dns", "Frankfurt", "staging", "10.0.0.1:53")
    assert dns.id != node.id
    assert store.get_node(node.id) == again
    assert store.get_node("n-00000000") is None


def test_node_reports_applied_and_rejected_versions(store, clock):
    node = store.register_node("ams1", "edge", "Amsterdam", "staging", "10.0.0.3")
    clock.advance(1)
    applied = store.node_report(node.id, 3, "applied")
    assert (applied.running_version, applied.reported_version, applied.status, applied.last_contact) == \
        (3, 3, "applied", clock.now)
    clock.advance(1)
    rejected = store.node_report(node.id, 4, "rejected", "service blog: bad origin")
    assert (rejected.running_version, rejected.reported_version, rejected.status, rejected.reason) == \
        (3, 4, "rejected", "service blog: bad origin")
    assert rejected.last_contact == clock.now
    assert store.get_node(node.id) == rejected
    assert store.node_report(node.id, 5, "applied").reason == ""
    with pytest.raises(ValueError, match="applied, rejected"):
        store.node_report(node.id, 6, "maybe")
    with pytest.raises(NotFound, match="n-00000000"):
        store.node_report("n-00000000", 1, "applied")


def test_node_contact(store, clock):
    node = store.register_node("ams1", "edge", "Amsterdam", "staging", "10.0.0.3")
    clock.advance(42)
    store.node_contact(node.id)
    assert store.get_node(node.id).last_contact == clock.now
    with pytest.raises(NotFound):
        store.node_contact("n-00000000")


def test_nodes_contact_writes_several_in_one_call_never_moving_one_back(store, clock):
    a = store.register_node("ams1", "edge", "Amsterdam", "staging", "10.0.0.3")
    b = store.register_node("ams2", "edge", "Amsterdam", "staging", "10.0.0.4")
    store.node_contact(b.id)
    later = clock.now
    assert store.nodes_contact({a.id: later - 5, b.id: later - 5, "n-00000000": later}) == {"n-00000000"}
    assert store.get_node(a.id).last_contact == later - 5  # first contact
    assert store.get_node(b.id).last_contact == later  # not moved back
    assert store.nodes_contact({}) == set()


def test_list_and_delete_nodes(store):
    a = store.register_node("b-edge", "edge", "Berlin", "staging", "10.0.0.1")
    b = store.register_node("a-edge", "edge", "Paris", "production", "10.0.0.2")
    c = store.register_node("a-dns", "dns", "Paris", "production", "10.0.0.3")
    assert store.list_nodes() == [c, b, a]
    assert store.list_nodes("production") == [c, b]
    assert store.list_nodes("qa") == []
    assert store.delete_node(b.id) is True
    assert store.delete_node(b.id) is False
    assert store.list_nodes("production") == [c]


def test_concurrent_registration_of_one_node_gives_one_id(store, store_url):
    replicas = [Store(store_url), Store(store_url)]
    try:
        ids = concurrently(*[lambda r=r: r.register_node("lon1", "edge", "London", "staging", "10.0.0.9").id
                             for r in replicas])
    finally:
        for replica in replicas:
            replica.close()
    assert ids[0] == ids[1]
    assert [n.id for n in store.list_nodes()] == [ids[0]]


# -- purges ----------------------------------------------------------------------------------

def test_purge_ids_increase_and_purges_after_is_a_cursor(store, clock):
    staging = [store.add_purge("staging", {"urls": [f"/p{i}"]}) for i in range(3)]
    production = store.add_purge("production", {"all": True})
    ids = [p.id for p in staging] + [production.id]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert staging[0].created_at == clock.now and staging[1].spec == {"urls": ["/p1"]}
    assert store.get_purge(staging[1].id) == staging[1]
    assert store.get_purge(10_000) is None
    assert store.purges_after("staging", 0) == staging
    assert store.purges_after("staging", staging[0].id) == staging[1:]
    assert store.purges_after("staging", 0, limit=2) == staging[:2]
    assert store.purges_after("staging", staging[-1].id) == []
    assert store.purges_after("production", 0) == [production]


def test_purge_acks_are_idempotent_per_node(store, clock):
    purge = store.add_purge("staging", {"all": True})
    fra = store.register_node("fra1", "edge", "Frankfurt", "staging", "10.0.0.1")
    ams = store.register_node("ams1", "edge", "Amsterdam", "staging", "10.0.0.2")
    clock.advance(1)
    store.ack_purge(purge.id, fra.id, 1.5, 12)
    clock.advance(1)
    store.ack_purge(purge.id, ams.id, 0.25, 0)
    store.ack_purge(purge.id, fra.id, 9.0, 99)  # a repeat: the first ack counts
    acks = store.purge_acks(purge.id)
    assert [(a.node_id, a.ms, a.removed, a.at) for a in acks] == \
        [(fra.id, 1.5, 12, clock.now - 1), (ams.id, 0.25, 0, clock.now)]
    assert store.purge_acks(10_000) == []
    with pytest.raises(NotFound, match="purge 10000"):
        store.ack_purge(10_000, fra.id, 1, 1)
    with pytest.raises(NotFound, match="n-00000000"):
        store.ack_purge(purge.id, "n-00000000", 1, 1)
    store.delete_node(ams.id)
    assert [a.node_id for a in store.purge_acks(purge.id)] == [fra.id]


def test_readers_do_not_wait_for_an_open_write_transaction(store, store_url):
    store.add_version("staging", "", {})
    engine = raw_engine(store_url)
    with engine.connect() as writer:  # holds the write lock (SQLite) until it rolls back
        writer.execute(text("INSERT INTO purges (env, spec, created_at) VALUES ('staging', '{}', 0)"))
        assert store.latest_version("staging").number == 1
        assert store.purges_after("staging", 0) == []
        writer.rollback()
    engine.dispose()


def test_latest_number(store):
    assert store.latest_number("production") == 0
    store.add_version("production", "version: 1\n", {})
    store.add_version("production", "version: 1\n", {})
    store.add_version("staging", "version: 1\n", {})
    assert (store.latest_number("production"), store.latest_number("staging")) == (2, 1)


def test_a_purge_ack_is_contact_from_the_node(store, clock):
    node = store.register_node("e1", "edge", "fra", "production", "127.0.1.1:80")
    purge = store.add_purge("production", {"all": True})
    assert store.get_node(node.id).last_contact is None
    store.ack_purge(purge.id, node.id, 1.5, 3)
    assert store.get_node(node.id).last_contact is not None


def test_sqlite_writers_of_one_process_take_turns_without_sqlites_busy_wait(tmp_path, monkeypatch):
    """store Rule 5: with SQLite's busy timeout at 0, a writer that met another's
    transaction would fail at once ("database is locked"); here they queue."""
    from owncdn.control.store import engine, sqlite_url

    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT", 0.0)
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    nodes = [store.register_node(f"edge-{i}", "edge", f"loc{i}", "production", f"192.0.2.{i}:80").id
             for i in range(8)]
    for _ in range(5):
        concurrently(*[lambda n=n: store.node_contact(n) for n in nodes])
    assert all(node.last_contact is not None for node in store.list_nodes("production"))
    store.close()


def test_event_streams_started_and_ended(store, clock):
    node = store.register_node("ams1", "edge", "Amsterdam", "staging", "10.0.0.3")
    assert store.get_node(node.id).stream_ended_at is None
    clock.advance(5)
    store.stream_started(node.id, "s1")
    assert store.get_node(node.id).last_contact == clock.now
    assert store.nodes_contact({}, {node.id: ("s1", clock.now + 1)}) == set()
    assert store.get_node(node.id).stream_ended_at == clock.now + 1
    store.stream_started(node.id, "s2")  # a new stream clears the end
    assert store.get_node(node.id).stream_ended_at is None
    store.nodes_contact({}, {node.id: ("s1", clock.now + 2)})  # the old stream's end, noticed late
    assert store.get_node(node.id).stream_ended_at is None
    store.nodes_contact({node.id: clock.now + 3}, {node.id: ("s2", clock.now + 4), "n-00000000": ("s9", 1.0)})
    found = store.get_node(node.id)
    assert (found.last_contact, found.stream_ended_at) == (clock.now + 3, clock.now + 4)
    [row] = store.release_progress("staging", "blog")
    assert (row.last_contact, row.stream_ended_at) == (clock.now + 3, clock.now + 4)
    with pytest.raises(NotFound):
        store.stream_started("n-00000000", "s3")
