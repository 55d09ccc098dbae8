"""Header handling of a reverse proxy between client and origin (RFC 9110 §7.6).

Rules of this module:

Rule 1: hop-by-hop fields, and those named by Connection, never cross the proxy
        (RFC 9110 §7.6.1), in either direction.
Rule 2: X-Forwarded-For / -Proto / -Host from a peer that ``trusted`` does not vouch for
        are replaced: a client must not be able to spoof its address. A trusted peer's
        X-Forwarded-For is extended with its address; its -Proto and -Host are kept.
Rule 3: each proxy appends itself to Via ("1.1 <pseudonym>", RFC 9110 §7.6.3), in both
        directions, so loops can be seen and `curl -sI` shows the path.
Rule 4: Host is rewritten to the origin's name only when the service asks for it.
"""

from __future__ import annotations

from typing import Callable

from .headers import Headers, strip_hop_by_hop

__all__ = ["append_via", "forward_request_headers", "forward_response_headers"]


def append_via(headers: Headers, via: str, version: str = "1.1") -> None:
    """Add this proxy to the Via list, in place (Rule 3)."""
    entry = f"{version} {via}"
    existing = headers.get_all("via")
    headers.set("via", ", ".join([*existing, entry]))


def forward_request_headers(headers: Headers, *, client_addr: str, proto: str, host: str,
                            trusted: Callable[[str], bool], via: str,
                            origin_host: str | None, version: str = "1.1") -> Headers:
    """The headers to send to the origin for a client's request (Rules 1-4)."""
    out = strip_hop_by_hop(headers)
    if trusted(client_addr):
        chain = ", ".join(out.get_all("x-forwarded-for"))
        out.set("x-forwarded-for", f"{chain}, {client_addr}" if chain else client_addr)
        _keep_or_set(out, "x-forwarded-proto", proto)
        _keep_or_set(out, "x-forwarded-host", host)
    else:
        out.set("x-forwarded-for", client_addr)
        out.set("x-forwarded-proto", proto)
        out.set("x-forwarded-host", host)
    append_via(out, via, version)
    if origin_host is not None:
        out.set("host", origin_host)
    return out


def _keep_or_set(headers: Headers, name: str, value: str) -> None:
    if name not in headers:
        headers.set(name, value)


def forward_response_headers(headers: Headers, via: str, version: str = "1.1") -> Headers:
    """The origin's response headers as the client should see them (Rules 1, 3)."""
    out = strip_hop_by_hop(headers)
    append_via(out, via, version)
    return out
