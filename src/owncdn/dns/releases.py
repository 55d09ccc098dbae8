"""The DNS node's side of pushed releases: the ``release_ready`` state channel.

The control plane sends, per push service of the environment, ``{"key": service,
"service", "number", "locations"}``: the locations with an edge serving the current
release (``owncdn.control.api.releasechannels`` Rule 2). ``on_release_ready`` hands it
to the node (``DnsNode.set_ready``), which swaps in a zone answering that service only
from those locations (``owncdn.core.routing.ready``). A ``deleted`` event forgets the
service's release information, so it is routed like any other.
"""

from __future__ import annotations

CHANNEL = "release_ready"

__all__ = ["CHANNEL", "follow_releases", "on_release_ready"]


async def on_release_ready(agent, http, data: dict) -> None:
    """The sync agent's handler for ``event: release_ready`` (``edge/sync.py`` Rule 7)."""
    if data.get("deleted"):
        agent.edge.set_ready(data["key"], None)
    else:
        agent.edge.set_ready(data["service"], list(data.get("locations") or []))


def follow_releases(agent) -> None:
    """Register the handler on a DNS node's sync agent."""
    agent.handlers[CHANNEL] = on_release_ready
