"""The DNS node's side of edge health: the ``health`` state channel.

The control plane's monitor (``owncdn.control.health``) judges every edge; DNS
nodes get ``{"key": "edges", "edges": [{name, location, address, healthy}, ...]}``
for their environment, and ``on_health`` hands the list to the node
(``DnsNode.set_edges``), which builds a new zone and swaps it in at once: the
wire fast path sees a new zone object and drops every pre-encoded answer
(``owncdn.dns.wire`` Rule 3), so no answer from before the change is served.

The list is whole state, not a change (channels Rule 1): each event replaces
the previous list; a ``deleted`` event means no edge is known any more.
"""

from __future__ import annotations

from owncdn.core.routing import EdgeHealth

CHANNEL = "health"


def edges_from_event(data: dict) -> list[EdgeHealth]:
    if data.get("deleted"):
        return []
    return [EdgeHealth.from_dict(e) for e in data.get("edges", [])]


async def on_health(agent, http, data: dict) -> None:
    """The sync agent's handler for ``event: health`` (``edge/sync.py`` Rule 7)."""
    agent.edge.set_edges(edges_from_event(data))


def follow_health(agent) -> None:
    """Register the handler on a DNS node's sync agent."""
    agent.handlers[CHANNEL] = on_health
