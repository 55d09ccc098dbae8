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
``state_changed(ctx)`` to wake the streams (the hub carries no data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from owncdn.control.store import Node

    from .auth import ApiContext

__all__ = ["Channel", "ChannelCursor", "state_changed"]


class Channel(Protocol):
    name: str

    def read(self, ctx: "ApiContext", node: "Node") -> dict[str, tuple[Any, dict]]: ...


def state_changed(ctx: "ApiContext") -> None:
    """Wake every event stream, so each re-reads its channels."""
    ctx.hub.notify_all()


class ChannelCursor:
    """What one stream has sent of each channel (Rule 1)."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, str], Any] = {}
        self.listed = False  # Rule 1b done

    def __repr__(self) -> str:
        return f"<ChannelCursor keys={len(self.sent)}>"

    def changes(self, ctx: "ApiContext", node: "Node") -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        listing: list[tuple[str, dict]] = []
        for channel in ctx.channels:
            state = channel.read(ctx, node)
            name = channel.name
            if not self.listed:
                listing.append(("channel_keys", {"channel": name, "keys": sorted(state)}))
            for key, (revision, data) in state.items():
                if self.sent.get((name, key), _NONE) != revision:
                    self.sent[(name, key)] = revision
                    out.append((name, {"key": key, **data}))
            for gone in [k for k in self.sent if k[0] == name and k[1] not in state]:
                del self.sent[gone]
                out.append((name, {"key": gone[1], "deleted": True}))
        self.listed = True
        return out + listing


_NONE = object()
