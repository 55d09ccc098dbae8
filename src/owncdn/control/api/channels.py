"""State channels: per-node state beyond versions and purges, sent on the event stream.

Pushed releases, certificates, edge health and ACME challenge records are each a
*channel*: an object with a ``name`` (the SSE event name) and
``read(ctx, node) -> {key: (revision, data)}``, the state that node should hold now.

Rule 1: the stream sends ``event: <name>`` with ``data`` = ``{"key": key, **data}``
for every key whose revision differs from what this stream sent before, and
``{"key": key, "deleted": true}`` for a key that is gone. A new stream (a reconnect)
starts from nothing, so it resends the whole current state: nodes treat channel
events as idempotent ("the current release of blog is 7"), never as increments.

Rule 1b: right after the first full state of a stream, ``event: channel_keys`` with
``{"channel": name, "keys": [...]}`` lists every key of each channel, so a node
that missed a deletion while it was away (or restarted with state on disk) can drop
what is no longer there (``edge/sync.py`` Rule 7, ``pruners``).

Rule 2: ``read`` runs in a worker thread, on every wake-up and re-check of the
stream (about once a second per node), so it must be one cheap store read.

Rule 3: a writer that changes a channel's state stores it first, then calls
``state_changed(ctx)`` to wake the streams (the hub carries no data). A writer whose
change concerns one environment and some kinds of node (a release: edges and DNS
nodes; an edge's acknowledgement: only DNS nodes' ``release_ready``) names them,
``state_changed(ctx, env, kinds)``: only those streams wake (``stream_topic``), so
three edges acknowledging a push do not make every edge stream re-read its channels.

Rule 5: a channel whose state changes only with writes that notify its environment's
topic (a new or activated release) says so with ``follows_env = True``; the writers
of every other channel wake every stream (``notify_all``, which moves each stream
topic). So a stream woken while its stream topic stayed where it was at its last
full read (a push's release, a version, a purge) reads only the channels that follow
the environment; every other wake-up and every once-a-second re-check reads them
all (a change on another replica still arrives within about a second). Three edge
streams woken by a release read no certificates, ACME records or health.

Rule 4: an event's text is made once for all the streams that send it: texts are
kept by (channel, key, revision) for as long as the channel hands out the same data
object (``release`` keeps one per release, with its manifest), so a push's ~128 KB
manifest is encoded once, not once per edge.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    from owncdn.control.store import Node

    from .auth import ApiContext

__all__ = ["Channel", "ChannelCursor", "encode_event", "state_changed", "stream_topic"]

TEXT_CACHE = 256
"""Event texts kept for Rule 4."""


class Channel(Protocol):
    name: str
    # follows_env: bool  (optional, default False: Rule 5)

    def read(self, ctx: "ApiContext", node: "Node") -> dict[str, tuple[Any, dict]]: ...


def stream_topic(env: str, kind: str) -> str:
    """The hub topic the event streams of ``kind`` nodes in ``env`` wait on, besides
    the environment's own topic (new versions and purges)."""
    return f"streams/{env}/{kind}"


def state_changed(ctx: "ApiContext", env: str | None = None, kinds: tuple[str, ...] = ()) -> None:
    """Wake the event streams so they re-read their channels: every stream, or only
    those of ``kinds`` nodes in ``env`` (Rule 3). Notified by name, so a stream busy
    between two waits sees the generation moved (hub Rule 3)."""
    if env is None:
        ctx.hub.notify_all()
        return
    for kind in kinds:
        ctx.hub.notify(stream_topic(env, kind))


def encode_event(event: str, data: object) -> str:
    """One SSE event; ``data`` is JSON on a single line."""
    return f"event: {event}\ndata: {orjson.dumps(data).decode()}\n\n"


class _Texts:
    """Rule 4: (channel, key, revision) -> (the data object, its event text)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._texts: OrderedDict[tuple, tuple[dict, str]] = OrderedDict()

    def text(self, name: str, key: str, revision: Any, data: dict) -> str:
        try:
            slot = (name, key, revision)
            hash(slot)
        except TypeError:  # an unhashable revision: encoded each time
            return encode_event(name, {"key": key, **data})
        with self._lock:
            hit = self._texts.get(slot)
            if hit is not None and hit[0] is data:
                self._texts.move_to_end(slot)
                return hit[1]
        text = encode_event(name, {"key": key, **data})
        with self._lock:
            self._texts[slot] = (data, text)
            while len(self._texts) > TEXT_CACHE:
                self._texts.popitem(last=False)
        return text


TEXTS = _Texts()


class ChannelCursor:
    """What one stream has sent of each channel (Rule 1)."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, str], Any] = {}
        self.listed = False  # Rule 1b done

    def __repr__(self) -> str:
        return f"<ChannelCursor keys={len(self.sent)}>"

    def changes(self, ctx: "ApiContext", node: "Node") -> list[tuple[str, dict]]:
        """The events to send now, as (event name, data)."""
        return [(name, {"key": key, **data}) if name != "channel_keys" else (name, data)
                for name, key, _, data in self._diff(ctx, node)]

    def texts(self, ctx: "ApiContext", node: "Node", env_only: bool = False) -> list[str]:
        """The events to send now, as SSE text (Rule 4); with ``env_only``, of the
        channels that follow the environment only (Rule 5)."""
        out = []
        for name, key, revision, data in self._diff(ctx, node, env_only and self.listed):
            if revision is _NONE:
                out.append(encode_event(name, data if name == "channel_keys" else {"key": key, **data}))
            else:
                out.append(TEXTS.text(name, key, revision, data))
        return out

    def _diff(self, ctx: "ApiContext", node: "Node", env_only: bool = False) -> list[tuple[str, str, Any, dict]]:
        """Rules 1, 1b and 5: (name, key, revision or _NONE, data) to send."""
        out: list[tuple[str, str, Any, dict]] = []
        listing: list[tuple[str, str, Any, dict]] = []
        for channel in ctx.channels:
            if env_only and not getattr(channel, "follows_env", False):
                continue
            state = channel.read(ctx, node)
            name = channel.name
            if not self.listed:
                listing.append(("channel_keys", name, _NONE, {"channel": name, "keys": sorted(state)}))
            for key, (revision, data) in state.items():
                if self.sent.get((name, key), _NONE) != revision:
                    self.sent[(name, key)] = revision
                    out.append((name, key, revision, data))
            for gone in [k for k in self.sent if k[0] == name and k[1] not in state]:
                del self.sent[gone]
                out.append((name, gone[1], _NONE, {"deleted": True}))
        self.listed = True
        return out + listing


_NONE = object()
