"""HTTP redirect routing for download mirrors, pure: which location's own hostname a
visitor is sent to, and the response that says so.

The edge (``owncdn.edge.redirect``) passes in the peer address, the request's
fields and a ``locate`` callable (address -> (lat, lon) or None, backed by the
GeoIP database); everything here is a function of those, so the decision is
tested as rows of (mirrors, peer, X-Forwarded-For, trusted, expected Location).

Rules:

1. The visitor is the peer. Only when the peer is a trusted proxy is
   X-Forwarded-For read: from its right end, every trusted hop is skipped and the
   first untrusted address is the visitor; when every hop is trusted, the leftmost
   one; an entry that is not an IP address ends the walk at the hop before it
   (whatever lies left of garbage cannot be vouched for).
2. A visitor with a known position goes to the nearest mirror by great-circle
   distance (ties by configured order); mirrors without coordinates come after
   those with them. A visitor with no known position goes to the fallback mirror,
   or else the first configured one.
3. The redirect URL is ``<scheme>://<mirror hostname>[:port]<path and query>``:
   the request target is kept as sent, and so is a port in the request's Host (a
   mirror is expected to listen where the service does).
4. A redirect is ``Cache-Control: private, max-age=N``: it depends on the visitor's
   address, which no Vary can name, so only the visitor's own cache may keep it.
   When X-Forwarded-For decided, the response also says ``Vary: X-Forwarded-For``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from owncdn.core.routing.sites import distance_km

Position = tuple[float, float]
"""(latitude, longitude) in decimal degrees."""


@dataclass(frozen=True)
class Mirror:
    """A location as a redirect service sees it: its own hostname and where it is."""

    name: str
    hostname: str
    lat: float | None = None
    lon: float | None = None
    city: str | None = None
    country: str | None = None

    @property
    def placed(self) -> bool:
        return self.lat is not None and self.lon is not None


@dataclass(frozen=True)
class Visitor:
    """Who asked (Rule 1) and where the database puts them."""

    address: str
    position: Position | None
    via_forwarded_for: bool = False


@dataclass(frozen=True)
class Redirect:
    """A redirect decision: the mirror, the Location URL and the response fields."""

    mirror: Mirror
    location: str
    fields: tuple[tuple[str, str], ...]


def visitor_address(peer: str, forwarded_for: Sequence[str], trusted: Callable[[str], bool]) -> tuple[str, bool]:
    """(visitor address, whether X-Forwarded-For gave it), by Rule 1.

    ``forwarded_for`` holds the X-Forwarded-For field values in order (each may be
    a comma-separated list).
    """
    if not forwarded_for or not trusted(peer):
        return peer, False
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    visitor, forwarded = peer, False
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        visitor, forwarded = address, True
        if not trusted(address):
            break
    return visitor, forwarded


def locate_visitor(peer: str, forwarded_for: Sequence[str], trusted: Callable[[str], bool],
                   locate: Callable[[str], Position | None]) -> Visitor:
    """The visitor (Rule 1) and its position from ``locate``; an unlocatable address
    has no position."""
    address, forwarded = visitor_address(peer, forwarded_for, trusted)
    try:
        position = locate(address)
    except ValueError:
        position = None
    return Visitor(address, position, forwarded)


def rank_mirrors(mirrors: Sequence[Mirror], position: Position | None,
                 fallback: str | None = None) -> list[Mirror]:
    """Mirrors best first (Rule 2)."""
    if position is None:
        return sorted(mirrors, key=lambda m: m.name != fallback)  # stable: configured order otherwise
    lat, lon = position
    order = {id(m): i for i, m in enumerate(mirrors)}
    return sorted(mirrors, key=lambda m: (
        0 if m.placed else 1,
        distance_km(lat, lon, m.lat, m.lon) if m.placed else 0.0,
        order[id(m)],
    ))


def redirect_url(scheme: str, hostname: str, request_host: str, target: str) -> str:
    """The Location of a redirect (Rule 3)."""
    port = _port(request_host)
    if not target.startswith("/"):
        target = "/" + target if target != "*" else "/"
    return f"{scheme}://{hostname}{':' + port if port else ''}{target}"


def plan_redirect(mirrors: Sequence[Mirror], visitor: Visitor, *, scheme: str, request_host: str,
                  target: str, max_age: float, fallback: str | None = None) -> Redirect:
    """The redirect for ``visitor`` (Rules 2-4). ``mirrors`` must not be empty."""
    if not mirrors:
        raise ValueError("a redirect needs at least one mirror")
    mirror = rank_mirrors(mirrors, visitor.position, fallback)[0]
    location = redirect_url(scheme, mirror.hostname, request_host, target)
    fields = [("location", location), ("cache-control", f"private, max-age={int(max_age)}")]
    if visitor.via_forwarded_for:
        fields.append(("vary", "X-Forwarded-For"))
    return Redirect(mirror, location, tuple(fields))


def request_scheme(tls: bool, forwarded_proto: str | None, peer_trusted: bool) -> str:
    """``https`` or ``http``: what the visitor used. A trusted proxy's
    X-Forwarded-Proto wins over the connection's own scheme."""
    if peer_trusted and forwarded_proto:
        proto = forwarded_proto.split(",")[0].strip().lower()
        if proto in ("http", "https"):
            return proto
    return "https" if tls else "http"


def _address(text: str) -> str | None:
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _port(host: str) -> str:
    host = host.strip()
    if host.startswith("["):
        rest = host[host.find("]") + 1:]
        return rest[1:] if rest.startswith(":") and rest[1:].isdigit() else ""
    name, sep, port = host.rpartition(":")
    return port if sep and port.isdigit() and ":" not in name else ""
