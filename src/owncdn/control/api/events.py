"""The event stream of one node (server-sent events): versions and purges.

The protocol, as a node sees it (``GET /v1/nodes/{id}/events?version=V&purge_after=P``):

- ``event: config`` with ``data: {"env", "number", "source"}``, first when the
  environment's latest version is newer than ``V``, then for each new version;
- ``event: purge`` with ``data: {"id", "spec"}`` for every purge with an id
  above ``P``, in id order, then for each new purge;
- ``event: <channel>`` for the state channels (releases, certificates, health...),
  see ``owncdn.control.api.channels``;
- ``: ping`` (a comment) after 10 s without an event, so proxies keep the
  connection and both sides notice a dead one.

Rule 1: the stream reads the store, never the hub's notifications: a notify
only wakes it early. It waits on its environment's topic (versions, purges) and on
``channels.stream_topic(env, kind)`` (channel changes that concern its kind of node). Without one it re-reads the store every second
(``RECHECK_SECONDS``), which is how a write on another control-plane replica
reaches it (see ``owncdn.control.hub``). A wake-up by the environment's topic alone
(its stream topic did not move) reads only the channels that follow the environment
(``channels`` Rule 5); a re-check reads them all.

Rule 2: every send and every wake-up by the hub records contact with the node
(``store.node_contact``); the once-a-second re-checks do not (they would be a
write per node per second). A send goes first, the write after it (a database
write per stream stood between a push's release and its edges). A stream's first
contact is written at once (before its next event: a new stream counts as in
contact, and a deleted node's stream ends); later ones go to the ``ContactBatch``,
which writes every contact it collected ``CONTACT_DELAY`` after the first of them,
in one transaction (``store.nodes_contact``), with the time each was heard: the
three edges woken by a push made three writes, each a worker thread and a turn of
the write lock, while the edges fetched and reported. Contact then lags by at most
``CONTACT_DELAY`` (0.5 s, against the 60 s that count as in contact); contact not
yet written is written when the server stops (``flush_contacts``), and lost only
when the process is killed (the stream's next contact writes it again). A node the
batch finds deleted ends its stream at its next wake-up.

Rule 5: the polls of the streams that wake together (a notify wakes them in the
same turn of the event loop) run in one worker-thread step, one after another
(``PollGroup``): the first reads the store and encodes the events, the others find
both done (``_feed``, channels Rule 4); each its own hop to a worker thread had
made the third edge of a push hear of the release 3-7 ms after the first, each
hop waiting for the interpreter lock. A poll's error is its own stream's. At most
``GROUP_MAX`` polls share a step: a notify that wakes many streams (a large fleet
on PostgreSQL, where each read waits on the network) still polls in several
threads side by side.

Rule 3: when the client goes away, Starlette cancels the generator at its
current ``await``; ``Hub.wait`` removes its waiter on cancellation, so nothing
is left behind. A node deleted while streaming ends its stream, and so does
every stream when the hub is closed at shutdown (the nodes reconnect).

Rule 4: an edge whose stream ends that way is reported to the health monitor
(``HealthMonitor.suspect``), which checks it at once (``owncdn.control.health``
Rule 9): a killed edge's closed connection is the first sign of its death.

Rule 6: a stream's first contact names it in the store (``store.stream_started``,
a random ``stream_id``), and a stream that ends that way (Rule 3; not at shutdown)
has its end written by the ``ContactBatch`` with the others, only if it is still the
node's newest stream (store Rule 7). Whatever counts the nodes in contact (a release
status, a purge's acks, ACME records) then leaves out a node whose stream is gone
and that was not heard from since, once ``RECONNECT_GRACE`` is over
(``owncdn.core.contact``), whichever replica asks: a killed edge is not waited for
until it leaves the 60 s window, an edge reconnecting within seconds still is. The
contact and ends waiting in the batch are written when the server stops
(``flush_contacts``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from owncdn.control.hub import RECHECK_SECONDS
from owncdn.control.store import Node, NotFound, StoreError

from .auth import ApiContext
from .channels import ChannelCursor, encode_event, stream_topic

__all__ = ["PING_SECONDS", "ContactBatch", "EventStream", "PollGroup", "contact_batch", "flush_contacts", "format_event",
           "poll_group"]

PING_SECONDS = 10.0
CONTACT_EVERY = 1.0  # seconds between writes of a node's last contact
CONTACT_DELAY = 0.5  # seconds a batched contact waits for others to be written with (Rule 2)
GROUP_MAX = 8  # polls in one worker-thread step (Rule 5); more run in steps of their own, side by side
FEED_REUSE_SECONDS = 0.2  # streams woken by one notify share one read of the store
BATCH = 1000
"""Most purges read (and sent) at once while catching up."""

log = logging.getLogger("owncdn.control.api")


def format_event(event: str, data: object) -> str:
    """One SSE event; ``data`` is JSON on a single line."""
    return encode_event(event, data)


@dataclass
class EventStream:
    """What one node has been sent so far, and the loop that sends the rest."""

    ctx: ApiContext
    node: Node
    version: int
    purge_after: int
    ping_seconds: float = PING_SECONDS
    recheck_seconds: float = RECHECK_SECONDS
    _contacted: float = float("-inf")
    cursor: ChannelCursor = field(default_factory=ChannelCursor)
    stream_id: str = field(default_factory=lambda: secrets.token_hex(8))  # Rule 6

    def __repr__(self) -> str:
        return f"<EventStream node={self.node.id} env={self.node.env} version={self.version} purge_after={self.purge_after}>"

    async def run(self) -> AsyncIterator[str]:
        """The SSE body: catch up, then wait for changes; ends when the node is
        deleted or the hub is closed (server shutdown)."""
        loop = asyncio.get_running_loop()
        hub, env = self.ctx.hub, self.node.env
        topics = (env, stream_topic(env, self.node.kind))  # channels Rule 3
        next_ping = loop.time() + self.ping_seconds
        touch = True
        try:
            async for chunk in self._events(loop, hub, topics, next_ping, touch):
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):  # Rule 3: the node went away
            if not hub.closed:
                contact_batch(self.ctx).end(loop, self.node.id, self.stream_id)  # Rule 6
            if not hub.closed and self.node.kind == "edge":
                monitor = getattr(self.ctx, "health_monitor", None)
                if monitor is not None:
                    monitor.suspect(self.node.id)  # Rule 4
            raise

    async def _events(self, loop, hub, topics, next_ping: float, touch: bool) -> AsyncIterator[str]:
        woken = False  # by a notify (not a re-check, a ping or a batch of purges)
        full_at = -1  # the stream topic's generation at the last read of every channel (channels Rule 5)
        contacts = contact_batch(self.ctx)
        while not hub.closed:
            if self.node.id in contacts.gone:  # Rule 2: deleted
                return
            since = hub.generation(topics)
            kind_at = hub.generation(topics[1])
            env_only = woken and kind_at == full_at  # only the environment's topic moved
            if not env_only:
                full_at = kind_at
            try:
                chunk, more, contact = await poll_group(loop).run(self._poll, touch, since, env_only)  # Rule 5
                if chunk:
                    yield chunk
                    next_ping = loop.time() + self.ping_seconds
                if contact and self._contacted == float("-inf"):  # Rule 2: after the send
                    await run_in_threadpool(self._contact)
                elif contact:
                    self._contacted = time.monotonic()
                    contacts.add(loop, self.node.id)
            except NotFound:  # the node was deleted
                return
            except StoreError as exc:  # the node reconnects; its next stream catches up
                log.warning("event stream of node %s ends: %s", self.node.id, exc)
                return
            woken = False
            if more:
                touch = False
                continue
            remaining = next_ping - loop.time()
            if remaining <= 0:
                yield ": ping\n\n"
                next_ping = loop.time() + self.ping_seconds
                touch = True
                continue
            touch = woken = await hub.wait(topics, min(self.recheck_seconds, remaining), since)

    def _poll(self, touch: bool, generation: int = -1, env_only: bool = False) -> tuple[str, bool, bool]:
        """Events not sent yet, at most ``BATCH`` purges (in a worker thread), whether
        more are waiting, and whether to record contact (Rule 2: there are events, or
        ``touch``, and the last write is ``CONTACT_EVERY`` old). ``env_only``: only the
        channels that follow the environment are read (channels Rule 5)."""
        with self.ctx.store.reading():  # one read transaction for all of it (store Rule 6)
            return self._read(touch, generation, env_only)

    def _read(self, touch: bool, generation: int, env_only: bool) -> tuple[str, bool, bool]:
        store, env = self.ctx.store, self.node.env
        out: list[str] = []
        latest_number, purges, full = self._feed(generation)
        if latest_number > self.version:
            latest = store.latest_version(env)
            out.append(format_event("config", {"env": env, "number": latest.number, "source": latest.source}))
            self.version = latest.number
        for purge in purges:
            out.append(format_event("purge", {"id": purge.id, "spec": purge.spec}))
            self.purge_after = purge.id
        if self.ctx.channels and not full:
            out.extend(self.cursor.texts(self.ctx, self.node, env_only))
        due = (out or touch) and time.monotonic() - self._contacted >= CONTACT_EVERY
        return "".join(out), full, due

    def _feed(self, generation: int) -> tuple[int, list, bool]:
        """The latest version number and the purges after ours, read once for all the
        streams one notify woke (FEED_REUSE_SECONDS), else from the store."""
        ctx, env = self.ctx, self.node.env
        with ctx.feed_lock:
            cached = ctx.feeds.get(env)
            now = time.monotonic()
            if (cached is not None and cached[0] == generation and now - cached[1] < FEED_REUSE_SECONDS
                    and cached[2] <= self.purge_after):
                _, _, _, number, purges = cached
                return number, [p for p in purges if p.id > self.purge_after], len(purges) == BATCH
            number = ctx.store.latest_number(env)
            purges = ctx.store.purges_after(env, self.purge_after, limit=BATCH)
            ctx.feeds[env] = (generation, now, self.purge_after, number, purges)
            return number, purges, len(purges) == BATCH

    def _contact(self) -> None:
        # At most one write a second: contact is for status pages, and a write per
        # event would put a database commit on every version and purge's path.
        now = time.monotonic()
        if now - self._contacted >= CONTACT_EVERY:
            self._contacted = now
            self.ctx.store.stream_started(self.node.id, self.stream_id)  # Rule 6; NotFound once the node is deleted


class ContactBatch:
    """Rule 2: contact heard by the event streams, written together ``CONTACT_DELAY``
    after the first of them (used on the event loop)."""

    def __init__(self, store) -> None:
        self.store = store
        self.heard: dict[str, float] = {}  # node id -> when
        self.ended: dict[str, tuple[str, float]] = {}  # node id -> (stream id, when) (Rule 6)
        self.gone: set[str] = set()  # nodes a write found deleted
        self._scheduled = False
        self._tasks: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"<ContactBatch heard={len(self.heard)} gone={len(self.gone)}>"

    def add(self, loop: asyncio.AbstractEventLoop, node_id: str) -> None:
        self.heard[node_id] = self.store.now()
        self._schedule(loop)

    def end(self, loop: asyncio.AbstractEventLoop, node_id: str, stream_id: str) -> None:
        """Rule 6: the node's event stream ``stream_id`` ended now."""
        self.ended[node_id] = (stream_id, self.store.now())
        self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(CONTACT_DELAY, self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        heard, ended, self.heard, self.ended, self._scheduled = self.heard, self.ended, {}, {}, False
        task = loop.create_task(self._write(heard, ended))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Write what waits now, and wait for the writes under way (at shutdown)."""
        heard, ended, self.heard, self.ended = self.heard, self.ended, {}, {}
        if heard or ended:
            await self._write(heard, ended)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _write(self, heard: dict[str, float], ended: dict[str, tuple[str, float]] | None = None) -> None:
        if not heard and not ended:
            return
        try:
            gone = await run_in_threadpool(self.store.nodes_contact, heard, ended)
        except StoreError as exc:
            log.warning("recording the contact of %d node(s): %s", len(heard) + len(ended or ()), exc)
            return
        if len(self.gone) > 10_000:
            self.gone.clear()
        self.gone |= gone


def contact_batch(ctx: ApiContext) -> ContactBatch:
    """The context's ``ContactBatch`` (made on first use, on the event loop)."""
    if ctx.contacts is None:
        ctx.contacts = ContactBatch(ctx.store)
    return ctx.contacts


async def flush_contacts(ctx: ApiContext, timeout: float = 5.0) -> None:
    """Rule 6: at shutdown, once the streams ended, write the contact (and stream ends)
    the ``ContactBatch`` holds, rather than lose it; at most ``timeout`` seconds."""
    if ctx.contacts is not None:
        try:
            await asyncio.wait_for(ctx.contacts.flush(), timeout)
        except asyncio.TimeoutError:
            log.warning("recording the nodes' last contact took over %.0f s at shutdown; given up", timeout)


class PollGroup:
    """Rule 5: the calls asked for in one turn of the event loop, run one after another
    in one worker-thread step; each caller gets its own result or error."""

    def __init__(self) -> None:
        self._pending: list[tuple[Callable, tuple, asyncio.Future]] = []
        self._tasks: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"<PollGroup pending={len(self._pending)}>"

    def run(self, call: Callable, *args) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(self._start)  # after the other callers this turn woke
        self._pending.append((call, args, future))
        return future

    def _start(self) -> None:
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), GROUP_MAX):
            task = asyncio.ensure_future(self._run(pending[i:i + GROUP_MAX]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Callable, tuple, asyncio.Future]]) -> None:
        try:
            outcomes = await run_in_threadpool(_call_each, batch)
        except BaseException:  # cancelled (the loop is closing)
            for _, _, future in batch:
                future.cancel()
            raise
        for (_, _, future), (result, exc) in zip(batch, outcomes):
            if future.done():  # its stream went away meanwhile
                continue
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)


def _call_each(batch: list[tuple[Callable, tuple, asyncio.Future]]) -> list[tuple[object, BaseException | None]]:
    outcomes: list[tuple[object, BaseException | None]] = []
    for call, args, _ in batch:
        try:
            outcomes.append((call(*args), None))
        except Exception as exc:  # noqa: BLE001 - the caller's own error
            outcomes.append((None, exc))
    return outcomes


_GROUPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PollGroup] = weakref.WeakKeyDictionary()


def poll_group(loop: asyncio.AbstractEventLoop) -> PollGroup:
    """The event streams' ``PollGroup`` of ``loop`` (Rule 5)."""
    group = _GROUPS.get(loop)
    if group is None:
        group = _GROUPS[loop] = PollGroup()
    return group
