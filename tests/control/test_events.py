"""Event stream plumbing (events Rules 2 and 5): polls of streams woken together share
one worker-thread step; later contact is written in batches."""

import asyncio
import threading

from owncdn.control.api import events
from owncdn.control.api.events import ContactBatch, PollGroup
from owncdn.control.store import NotFound, Store, sqlite_url


async def test_calls_asked_for_in_one_turn_run_in_one_worker_thread_step_each_with_its_own_outcome():
    group = PollGroup()
    threads = []

    def call(value):
        threads.append(threading.get_ident())
        if value == "bad":
            raise NotFound("gone")
        return value * 2

    futures = [group.run(call, v) for v in (1, "bad", 3)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == 2 and isinstance(results[1], NotFound) and results[2] == 6
    assert len(threads) == 3 and len(set(threads)) == 1 and threads[0] != threading.get_ident()
    assert await group.run(call, 5) == 10  # a later turn: a step of its own


async def test_at_most_group_max_calls_share_a_step():
    group = PollGroup()
    threads = []
    barrier = threading.Barrier(2, timeout=5)  # two steps at once: each waits for the other

    def call(i):
        threads.append(threading.get_ident())
        if i in (0, events.GROUP_MAX):
            barrier.wait()
        return i

    n = events.GROUP_MAX + 1
    assert await asyncio.gather(*[group.run(call, i) for i in range(n)]) == list(range(n))
    assert len(set(threads)) == 2


async def test_a_cancelled_caller_does_not_hold_up_the_others():
    group = PollGroup()
    release = threading.Event()
    first = group.run(lambda: release.wait(5) and "a")
    second = group.run(lambda: "b")
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "b"


async def test_contact_is_written_together_after_the_delay_and_deleted_nodes_are_noted(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "CONTACT_DELAY", 0.05)
    store = Store(sqlite_url(tmp_path))
    store.migrate()
    try:
        a = store.register_node("a", "edge", "x", "prod", "1")
        b = store.register_node("b", "edge", "x", "prod", "2")
        gone = store.register_node("c", "edge", "x", "prod", "3")
        batch = ContactBatch(store)
        writes = []
        real = store.nodes_contact
        monkeypatch.setattr(store, "nodes_contact", lambda heard, ended=None: writes.append(set(heard)) or real(heard, ended))
        loop = asyncio.get_running_loop()
        store.delete_node(gone.id)
        for node in (a, b, gone):
            batch.add(loop, node.id)
        assert store.get_node(a.id).last_contact is None  # not yet
        for _ in range(100):
            await asyncio.sleep(0.01)
            if batch.gone:
                break
        assert writes == [{a.id, b.id, gone.id}] and batch.gone == {gone.id}
        assert store.get_node(a.id).last_contact is not None and store.get_node(b.id).last_contact is not None
    finally:
        store.close()
