"""What the cache keeps with each stored response, and how it is built.

Rules of this module:

Rule 1: everything a cache hit needs is computed once, at store time (or when a 304
        refreshes the entry): the effective directives, the freshness lifetime, the
        store-time part of the age, the validators. A hit does no header parsing.
Rule 2: a StoredResponse's headers are treated as immutable once it is built; a 304
        produces a new StoredResponse (validation.apply_304).
Rule 3: hop-by-hop fields and fields named by a qualified private="..." directive are
        never stored (RFC 9111 §3.1, §5.2.2.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .directives import effective_cache_control, qualified_fields
from .freshness import corrected_initial_age, freshness_lifetime
from .headers import Headers, strip_hop_by_hop
from .policy import CachePolicy
from .vary import VaryKey, vary_key

__all__ = ["StoredResponse", "build_stored", "make_stored"]


@dataclass(slots=True)
class StoredResponse:
    status: int
    headers: Headers
    """Response headers as received, hop-by-hop removed; replaced on 304."""
    request_time: float
    """When the request that produced (or last validated) the response was sent."""
    response_time: float
    """When that response was received."""
    vary: VaryKey | None
    """Secondary key: ((field name, normalised request value or None), ...); () without
    Vary; None for Vary: * (matches no request)."""
    cc: dict[str, str | None]
    """Effective response directives (CDN-Cache-Control if present, else Cache-Control)."""
    freshness_lifetime: float
    """Seconds, computed with the policy at store time."""
    corrected_initial_age: float = field(init=False)
    """RFC 9111 §4.2.3 age at response_time; current_age adds the resident time."""
    etag: str | None = field(init=False)
    last_modified: str | None = field(init=False)
    fresh_until: float = field(init=False)
    """The instant the response turns stale (-inf when no-cache makes it never fresh):
    current_age < freshness_lifetime exactly while now < fresh_until."""

    def __post_init__(self) -> None:
        self.corrected_initial_age = corrected_initial_age(
            self.headers, self.request_time, self.response_time)
        if "no-cache" in self.cc or self.corrected_initial_age >= self.freshness_lifetime:
            self.fresh_until = float("-inf")  # never fresh, whatever the clock says
        else:
            self.fresh_until = self.response_time + self.freshness_lifetime - self.corrected_initial_age
        self.etag = self.headers.get("etag")
        self.last_modified = self.headers.get("last-modified")

    @property
    def has_validator(self) -> bool:
        return self.etag is not None or self.last_modified is not None


def make_stored(status: int, headers: Headers, req_headers: Headers, request_time: float,
                response_time: float, policy: CachePolicy) -> StoredResponse:
    """Build the stored form of a response that ``storability`` accepted."""
    headers = strip_hop_by_hop(headers)
    return build_stored(status, headers, vary_key(headers, req_headers), request_time,
                        response_time, policy)


def build_stored(status: int, headers: Headers, vary: VaryKey | None, request_time: float,
                 response_time: float, policy: CachePolicy) -> StoredResponse:
    """A StoredResponse from headers already free of hop-by-hop fields (Rules 1, 3).

    ``headers`` may be modified (fields named by private="..." are removed).
    """
    cc = effective_cache_control(headers)
    for name in qualified_fields(cc, "private"):
        headers.remove(name)
    return StoredResponse(
        status=status,
        headers=headers,
        request_time=request_time,
        response_time=response_time,
        vary=vary,
        cc=cc,
        freshness_lifetime=freshness_lifetime(status, headers, cc, policy, response_time),
    )
