"""Whether a node is in contact with the control plane (pure; the clock comes in).

    contact_state(last_contact, stream_ended_at, now)  # -> IN_CONTACT | STREAM_ENDED | AWAY

What waits for "every node in contact" asks this: a release status and ``owncdn push
--wait`` (``control/api/releases.py``), a purge's acks (``control/api/purges.py``),
the propagation of ACME challenge records (``control/acme/issuer.py``).

Rules:

1. A node never heard from, or last heard from ``window`` seconds ago or longer, is
   ``AWAY``: it is not waited for (it catches up when it comes back).
2. A node whose event stream ended (``stream_ended_at``, written by the control-plane
   replica that held the stream, ``control/api/events.py`` Rule 6) and that was not
   heard from since is ``STREAM_ENDED`` once the stream has been gone ``grace``
   seconds: a stopped or killed node is left out at once rather than waited for
   until it leaves the window. Within ``grace`` it is still ``IN_CONTACT``: an edge
   restarting its stream, or moving to another replica, is back within a few
   seconds, and a wait must not end early without it.
3. Contact heard after the end (a new stream's first contact, a report, a purge
   ack) brings the node back, whatever wrote it (a replica of an older version that
   does not clear ``stream_ended_at``).
4. Otherwise the node is ``IN_CONTACT``.
"""

from __future__ import annotations

__all__ = ["AWAY", "CONTACT_WINDOW", "IN_CONTACT", "RECONNECT_GRACE", "STREAM_ENDED", "contact_state"]

CONTACT_WINDOW = 60.0
"""Seconds since a node was last heard from during which it counts as in contact (Rule 1)."""
RECONNECT_GRACE = 5.0
"""Seconds a node whose event stream ended still counts as in contact (Rule 2): an edge
reconnects at once after a broken stream (its retries start at 0.1 s, doubling)."""

IN_CONTACT = "in_contact"
STREAM_ENDED = "stream_ended"
AWAY = "away"


def contact_state(last_contact: float | None, stream_ended_at: float | None, now: float,
                  window: float = CONTACT_WINDOW, grace: float = RECONNECT_GRACE) -> str:
    """``IN_CONTACT``, ``STREAM_ENDED`` or ``AWAY`` (the module's rules)."""
    if last_contact is None or now - last_contact >= window:
        return AWAY
    if stream_ended_at is not None and last_contact <= stream_ended_at and now - stream_ended_at >= grace:
        return STREAM_ENDED
    return IN_CONTACT
