"""Pushed releases in the store, on SQLite and on a real PostgreSQL (see conftest.py)."""

import json

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from owncdn.control.store import NotFound, ReleasePruned, Store
from owncdn.control.store.engine import normalize_url
from owncdn.control.store.migrations import alembic_config

M1 = {"files": {"index.html": {"sha256": "a" * 64, "size": 3}}}
M2 = {"files": {"index.html": {"sha256": "b" * 64, "size": 4}}}


def add(store, manifest, service="blog", env="production", mid="1" * 64):
    return store.add_release(env, service, manifest, mid, len(manifest["files"]), 7, author="ci")


def test_numbers_per_service_and_the_newest_is_current(store):
    assert add(store, M1).number == 1
    assert add(store, M2, mid="2" * 64).number == 2
    assert add(store, M1, service="docs").number == 1
    assert add(store, M1, env="staging").number == 1
    assert store.current_release_number("production", "blog") == 2
    current = store.current_releases("production")
    assert [(c.service, c.number, c.id) for c in current] == [("blog", 2, "2" * 64), ("docs", 1, "1" * 64)]
    listed = store.list_releases("production", "blog")
    assert [r.number for r in listed] == [2, 1] and listed[0].manifest is None and listed[0].author == "ci"
    assert store.get_release("production", "blog", 1).manifest == M1
    assert store.get_release("production", "blog", 3) is None
    assert [store.has_release("production", "blog", n) for n in (1, 2, 3)] == [True, True, False]
    assert not store.has_release("staging", "blog", 2) and store.has_release("production", "docs", 1)


def test_activate_moves_the_pointer(store):
    add(store, M1)
    add(store, M2)
    assert store.activate_release("production", "blog", 1).number == 1
    assert store.current_release_number("production", "blog") == 1
    assert add(store, M2).number == 3  # numbers keep growing after a rollback
    with pytest.raises(NotFound):
        store.activate_release("production", "blog", 9)


def test_node_reports(store, clock):
    node = store.register_node("edge-1", "edge", "fra", "production", "127.0.1.1")
    add(store, M1)
    served = store.report_node_release(node.id, "blog", 1, "serving")
    assert (served.serving, served.env) == (1, "production")
    failed = store.report_node_release(node.id, "blog", 2, "failed", "disk full")
    assert (failed.number, failed.status, failed.serving, failed.reason) == (2, "failed", 1, "disk full")
    [row] = store.node_releases("production", "blog")
    assert (row.name, row.location, row.serving) == ("edge-1", "fra", 1)
    assert store.node_releases("staging") == []
    assert store.get_node(node.id).last_contact == clock.time()
    first = store.report_node_release(node.id, "docs", 1, "failed", "no space")  # a first report that failed
    assert (first.number, first.status, first.serving, first.name, first.location) == (1, "failed", None, "edge-1", "fra")
    again = store.report_node_release(node.id, "blog", 2, "serving")
    assert (again.number, again.status, again.serving, again.reason) == (2, "serving", 2, "")
    with pytest.raises(ValueError):
        store.report_node_release(node.id, "blog", 1, "weird")
    with pytest.raises(NotFound):
        store.report_node_release("n-nope", "blog", 1, "serving")
    store.delete_node(node.id)
    assert store.node_releases("production") == []


def test_release_progress_lists_every_edge_with_its_report_on_the_service(store, clock):
    b = store.register_node("edge-b", "edge", "ams", "production", "127.0.1.2")
    a = store.register_node("edge-a", "edge", "fra", "production", "127.0.1.1")
    store.register_node("dns-1", "dns", "fra", "production", "127.0.1.3")
    store.register_node("edge-s", "edge", "fra", "staging", "127.0.1.4")
    add(store, M1)
    store.report_node_release(a.id, "blog", 1, "serving")
    store.report_node_release(a.id, "docs", 4, "failed", "no")
    rows = store.release_progress("production", "blog")
    assert [(r.name, r.location, r.number, r.status, r.serving) for r in rows] == \
        [("edge-a", "fra", 1, "serving", 1), ("edge-b", "ams", None, None, None)]
    assert (rows[0].node_id, rows[1].node_id) == (a.id, b.id)
    assert rows[0].last_contact == clock.time() and rows[1].last_contact is None
    assert store.release_progress("production", "other")[0].number is None


def test_the_reads_of_a_reading_block_share_one_transaction(store):
    """Store Rule 6: one transaction (one BEGIN and COMMIT) for the block's reads in
    this thread, nested blocks included, whether they go through the ORM or run on a
    connection (store Rule 8); another thread's reads keep their own."""
    import threading

    from sqlalchemy import event

    node = store.register_node("edge-1", "edge", "fra", "production", "127.0.1.1")
    add(store, M1)
    store.report_node_release(node.id, "blog", 1, "serving")
    opened = []
    event.listen(store._engine, "begin", lambda conn: opened.append(1))
    with store.reading():
        assert store.current_release_number("production", "blog") == 1
        with store.reading():
            assert store.has_release("production", "blog", 1)
        assert [(r.name, r.serving) for r in store.node_releases("production", "blog")] == [("edge-1", 1)]
        assert [n.name for n in store.list_nodes("production")] == ["edge-1"]
        assert len(opened) == 1
        other = threading.Thread(target=lambda: store.has_release("production", "blog", 1))
        other.start()
        other.join()
        assert len(opened) == 2
    assert store.get_release("production", "blog", 1).manifest == M1  # after the block: its own again
    assert store.get_node(node.id).name == "edge-1"
    assert len(opened) == 4
    with pytest.raises(RuntimeError), store.reading():  # an error ends the block as it ends a read
        store.has_release("production", "blog", 1)
        raise RuntimeError("boom")
    opened.clear()
    assert store.has_release("production", "blog", 1) and len(opened) == 1


def test_a_manifest_with_its_json_text_is_stored_as_that_text(store, monkeypatch):
    """Engine Rule 4: the canonical encoding the id was made from is written as it is,
    not encoded again; it reads back as the same document."""
    import json

    import owncdn.control.store.engine as engine

    text = json.dumps(M2, sort_keys=True, separators=(",", ":"))
    encoded = []
    monkeypatch.setattr(engine.json, "dumps", lambda value, **kw: encoded.append(value) or json.JSONEncoder(**kw).encode(value))
    made = store.add_release("production", "blog", M2, "2" * 64, 1, 4, author="ci", manifest_text=text)
    assert encoded == [] and store.get_release("production", "blog", made.number).manifest == M2
    add(store, M1)  # without a text: encoded as before
    assert encoded == [M1] and store.get_release("production", "blog", 2).manifest == M1


# -- pruned manifests (releasestore Rule 10) ---------------------------------------------

M3 = {"files": {"index.html": {"sha256": "c" * 64, "size": 5}}}


def manifests(store, service="blog", env="production"):
    """Each release's number -> (its manifest, whether pruned)."""
    return {r.number: (store.get_release(env, service, r.number).manifest, r.pruned_at is not None)
            for r in store.list_releases(env, service)}


def test_prune_drops_the_manifests_named_but_the_current_and_served_ones(store, clock):
    for m, mid in ((M1, "1"), (M2, "2"), (M3, "3"), (M1, "1"), (M2, "2")):
        add(store, m, mid=mid * 64)
    add(store, M1, service="docs")
    node = store.register_node("edge-1", "edge", "fra", "production", "127.0.1.1")
    store.report_node_release(node.id, "blog", 2, "serving")
    store.activate_release("production", "blog", 4)
    clock.advance(5)
    dry = store.prune_manifests({("production", "blog"): [1, 2, 3, 4]}, dry_run=True)
    assert dry == 2 and all(not pruned for _, pruned in manifests(store).values())
    assert store.prune_manifests({("production", "blog"): [1, 2, 3, 4]}) == 2  # 2 served, 4 current
    assert manifests(store) == {5: (M2, False), 4: (M1, False), 3: (None, True), 2: (M2, False), 1: (None, True)}
    [listed] = [r for r in store.list_releases("production", "blog") if r.number == 3]
    assert listed.pruned_at == clock.time() and listed.id == "3" * 64 and listed.files == 1
    assert store.get_release("production", "docs", 1).manifest == M1  # another service: not named
    assert store.prune_manifests({("production", "blog"): [1, 3]}) == 0  # once only


def test_a_pruned_release_is_not_activated(store):
    add(store, M1)
    add(store, M2, mid="2" * 64)
    assert store.prune_manifests({("production", "blog"): [1]}) == 1
    with pytest.raises(ReleasePruned, match="release 1 of 'blog'"):
        store.activate_release("production", "blog", 1)
    assert store.current_release_number("production", "blog") == 2
    with pytest.raises(NotFound):
        store.activate_release("production", "blog", 7)


def test_prune_takes_many_numbers_at_once(store):
    for n in range(1, 1203):
        store.add_release("production", "big", M1, "1" * 64, 1, 7)
    assert store.prune_manifests({("production", "big"): list(range(1, 1203))}) == 1201  # all but the current
    assert store.get_release("production", "big", 1202).manifest == M1
    assert store.get_release("production", "big", 600).pruned_at is not None


def test_releases_stored_before_pruning_keep_their_manifests_and_a_downgrade_drops_the_pruned(store_url):
    engine = create_engine(normalize_url(store_url))
    insert = text("INSERT INTO releases (env, service, number, manifest_id, manifest, files, bytes, author, "
                  "created_at) VALUES ('production', 'blog', :n, :id, :m, 1, 7, 'ci', 1.0)")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0006_node_streams")
        for n, m in ((1, M1), (2, M2)):
            conn.execute(insert, {"n": n, "id": str(n) * 64, "m": json.dumps(m)})
    with Store(store_url) as s:
        s.migrate()
        assert manifests(s) == {2: (M2, False), 1: (M1, False)}
        assert s.prune_manifests({("production", "blog"): [1, 2]}) == 2  # no current pointer: both named
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0006_node_streams")
        assert conn.execute(text("SELECT number FROM releases")).all() == []
    with pytest.raises(IntegrityError), engine.begin() as conn:  # NOT NULL again
        conn.execute(insert, {"n": 3, "id": "3" * 64, "m": None})
    with engine.begin() as conn:
        conn.execute(insert, {"n": 3, "id": "3" * 64, "m": json.dumps(M3)})
    with Store(store_url) as s:
        s.migrate()
        assert manifests(s) == {3: (M3, False)}
    engine.dispose()


def test_a_release_keeps_its_comment(store):
    store.add_release("production", "blog", M1, "1" * 64, 1, 7, author="ci", comment="v1.2: the new front page")
    add(store, M2, mid="2" * 64)
    assert [(r.number, r.comment) for r in store.list_releases("production", "blog")] == [
        (2, ""), (1, "v1.2: the new front page")]
    assert store.get_release("production", "blog", 1).comment == "v1.2: the new front page"
    assert store.activate_release("production", "blog", 1).comment == "v1.2: the new front page"


def test_releases_stored_before_comments_have_none_and_a_downgrade_drops_them(store_url):
    engine = create_engine(normalize_url(store_url))
    insert = text("INSERT INTO releases (env, service, number, manifest_id, manifest, files, bytes, author, "
                  "created_at) VALUES ('production', 'blog', :n, :id, :m, 1, 7, 'ci', 1.0)")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0007_release_pruning")
        conn.execute(insert, {"n": 1, "id": "1" * 64, "m": json.dumps(M1)})
    with Store(store_url) as s:
        s.migrate()
        s.add_release("production", "blog", M2, "2" * 64, 1, 7, comment="why")
        assert [(r.number, r.comment) for r in s.list_releases("production", "blog")] == [(2, "why"), (1, "")]
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0007_release_pruning")
        assert conn.execute(text("SELECT number FROM releases ORDER BY number")).scalars().all() == [1, 2]
    with Store(store_url) as s:
        s.migrate()
        assert [r.comment for r in s.list_releases("production", "blog")] == ["", ""]
    engine.dispose()


def test_warming_reads_what_a_push_reads_and_changes_nothing(store):
    add(store, M1)
    before = (store.current_releases("production"), store.list_releases("production", "blog"), store.latest_number("production"))
    store.warm()  # releasestore Rule 11, on SQLite and on PostgreSQL
    after = (store.current_releases("production"), store.list_releases("production", "blog"), store.latest_number("production"))
    assert after == before and store.current_release_number("production", "blog") == 1
