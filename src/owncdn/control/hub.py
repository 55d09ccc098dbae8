"""``Hub``: wakes the coroutines waiting for a topic when a writer says so.

The control plane's writers (a new version, a new purge, a purge ack) store
their change first and then call ``hub.notify(topic)``; every coroutine in
``await hub.wait(topic, timeout)`` for that topic wakes at once. The topics
used by the API are an environment name (new version or purge),
``purge_topic(id)`` (a node acked that purge), ``channels.stream_topic(env, kind)``
(a state channel changed for that kind of node) and the release topics
(``releasechannels.current_topic``, ``releases.release_topic``).

Rule 1: the hub carries no data. A woken waiter reads the store to learn what
changed, so a lost or merged wake-up costs latency, never correctness.

Rule 2: ``notify`` may be called from any thread (sync FastAPI endpoints run in
a thread pool); waiters run on an event loop and are woken through
``loop.call_soon_threadsafe``.

Rule 3: a waiter that passes ``since=hub.generation(topic)`` (read *before* it
read the store) cannot miss a notify that happened in between: ``wait``
returns at once when the topic's generation has moved on.

Rule 4: the hub is in-process. With several control-plane replicas sharing
PostgreSQL, a write on one replica notifies only that replica's waiters, so
every waiter also re-reads the store at least once a second
(``RECHECK_SECONDS``); a write on another replica is then seen within about a
second.

Rule 5: ``close()`` (at shutdown) wakes every waiter and makes later waits
return at once; event streams end when they see ``hub.closed``, so a server's
graceful shutdown is not held up by endless streams.

Rule 6: generations come from one counter shared by all topics, and once more
than ``MAX_TOPICS`` topics were notified, those without waiters are forgotten
(purge topics pile up otherwise). A waiter whose ``since`` was read just before
its topic was forgotten may then sleep until its next re-check (Rule 4).

Rule 7: a waiter may wait on several topics at once (a tuple): it wakes when any
of them is notified, and their generation is the largest of theirs, which moves
whenever one of them is notified (Rule 6: one shared, growing counter), so Rule 3
holds for the tuple as for one topic.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

from owncdn.waiting import wait_event

__all__ = ["Hub", "MAX_TOPICS", "RECHECK_SECONDS", "purge_topic"]

RECHECK_SECONDS = 1.0
"""How often event streams and purge waits re-read the store without a wake-up."""

MAX_TOPICS = 10_000
"""Topics remembered before those without waiters are forgotten (Rule 6)."""


def purge_topic(purge_id: int) -> str:
    """The topic notified when a node acks purge ``purge_id``."""
    return f"purge/{purge_id}"


class Hub:
    """An in-process, thread-safe notifier keyed by topic (an env name, ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.closed = False
        self._counter = 0
        self._generations: dict[str, int] = {}
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<Hub{state} topics={len(self._generations)} waiters={self.waiter_count()}>"

    def generation(self, topic: str | tuple[str, ...]) -> int:
        """Where ``topic`` stands: its last notify's place in the shared counter (the
        largest of a tuple's topics, Rule 7); it moves with every notify of it."""
        with self._lock:
            return self._generation(topic)

    def _generation(self, topic: str | tuple[str, ...]) -> int:
        if isinstance(topic, str):
            return self._generations.get(topic, 0)
        return max((self._generations.get(t, 0) for t in topic), default=0)

    def waiter_count(self, topic: str | None = None) -> int:
        """Coroutines now waiting (on ``topic``, or on any topic)."""
        with self._lock:
            if topic is not None:
                return len(self._waiters.get(topic, ()))
            return len({waiter for waiters in self._waiters.values() for waiter in waiters})

    def notify(self, topic: str) -> None:
        """Wake every coroutine waiting on ``topic``. Safe from any thread."""
        with self._lock:
            self._counter += 1
            self._generations[topic] = self._counter
            if len(self._generations) > MAX_TOPICS:
                self._forget_idle_topics()
            waiters = list(self._waiters.get(topic, ()))
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed; its waiter is gone
                pass

    def notify_all(self) -> None:
        """Wake every coroutine waiting on any topic (state not tied to one environment
        changed: certificates, edge health)."""
        with self._lock:
            topics = list(self._waiters)
        for topic in topics:
            self.notify(topic)

    def close(self) -> None:
        """Wake every waiter, now and from now on (the server is shutting down)."""
        with self._lock:
            self.closed = True
        self.notify_all()

    def _forget_idle_topics(self) -> None:
        for name in [name for name in self._generations if name not in self._waiters]:
            del self._generations[name]

    async def wait(self, topic: str | tuple[str, ...], timeout: float, since: int | None = None) -> bool:
        """Wait until ``topic`` (or any topic of a tuple, Rule 7) is notified or
        ``timeout`` seconds pass.

        Returns ``True`` when woken by a notify (or when the generation already
        differs from ``since``), ``False`` on timeout. Cancellation is safe: the
        waiter is always removed.
        """
        topics = (topic,) if isinstance(topic, str) else topic
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self.closed or (since is not None and self._generation(topic) != since):
                return True
            for name in topics:
                self._waiters[name].add(waiter)
        try:
            return await wait_event(waiter[1], timeout)
        finally:
            with self._lock:
                for name in topics:
                    waiters = self._waiters.get(name)
                    if waiters is not None:
                        waiters.discard(waiter)
                        if not waiters:
                            del self._waiters[name]
