"""Primary cache keys (RFC 9111 §2: the key is the method and target URI, plus what the
service chooses to add).

Rules of this module:

Rule 1: a key is readable text: "<service> <scheme>://<host><path>[?<query>]", then for
        cookie policies " cookie:<name>=<value>;..." - so purge tools and logs can show it.
        The scheme is part of the target URI (RFC 9111 §2), and it matters: the edge
        tells the origin which one the visitor used (X-Forwarded-Proto), so an origin
        that redirects http to https must not have that redirect served over https.
Rule 2: the host is lowercased, its port and trailing dot removed; the path is kept
        exactly as sent (no percent-decoding, no dot-segment removal), because origins
        may tell those apart.
Rule 3: the query follows the KeyPolicy: "keep" (as sent), "sort" (parameters ordered by
        name, stable), "ignore" (dropped). include keeps only the named parameters,
        exclude drops the named ones; both match the raw parameter name. An empty query
        ("/a?") is the same as none.
Rule 4: uri_key is the key without the scheme and the cookie part: every variant of one
        URL on one host shares it, which is what invalidation and purge-by-URL work on.
"""

from __future__ import annotations

from dataclasses import dataclass

from .headers import Headers
from .targets import normalize_host, split_target

__all__ = ["KeyPolicy", "cache_key", "normalize_query", "request_cookies", "uri_key"]


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    query: str = "keep"
    """"keep" | "sort" | "ignore"."""
    include: tuple[str, ...] = ()
    """If non-empty, only these query parameters are part of the key."""
    exclude: tuple[str, ...] = ()
    """These query parameters are never part of the key (e.g. utm_source)."""
    cookies: tuple[str, ...] = ()
    """The values of these cookies are part of the key."""

    def __post_init__(self) -> None:
        if self.query not in ("keep", "sort", "ignore"):
            raise ValueError(f"KeyPolicy.query must be keep, sort or ignore, not {self.query!r}")


DEFAULT_KEY_POLICY = KeyPolicy()


def normalize_query(query: str | None, policy: KeyPolicy) -> str:
    """The query string as it goes into the key (Rule 3); "" when none is kept."""
    if not query or policy.query == "ignore":
        return ""
    if policy.query == "keep" and not policy.include and not policy.exclude:
        return query
    params = [p for p in query.split("&") if p and _kept(p.partition("=")[0], policy)]
    if policy.query == "sort":
        params.sort(key=lambda p: p.partition("=")[0])
    return "&".join(params)


def _kept(name: str, policy: KeyPolicy) -> bool:
    if policy.include and name not in policy.include:
        return False
    return name not in policy.exclude


def uri_key(service: str, host: str, target: str, policy: KeyPolicy = DEFAULT_KEY_POLICY) -> str:
    """The key of a URL on a host, without per-request parts (Rule 4)."""
    path, query = split_target(target)
    query = normalize_query(query, policy)
    return f"{service} {normalize_host(host)}{path}{'?' + query if query else ''}"


def request_cookies(req_headers: Headers) -> dict[str, str]:
    """Cookie name -> value from every Cookie line; the first occurrence wins."""
    cookies: dict[str, str] = {}
    for line in req_headers.get_all("cookie"):
        for pair in line.split(";"):
            name, eq, value = pair.strip().partition("=")
            if eq and name and name not in cookies:
                cookies[name] = value.strip()
    return cookies


def cache_key(service: str, host: str, target: str, req_headers: Headers,
              policy: KeyPolicy = DEFAULT_KEY_POLICY, scheme: str = "http") -> str:
    """The primary cache key of a request (Rules 1-3)."""
    path, query = split_target(target)
    query = normalize_query(query, policy)
    key = f"{service} {scheme}://{normalize_host(host)}{path}{'?' + query if query else ''}"
    if not policy.cookies:
        return key
    cookies = request_cookies(req_headers)
    parts = [name if name not in cookies else f"{name}={cookies[name]}"
             for name in policy.cookies]
    return f"{key} cookie:{';'.join(parts)}"
