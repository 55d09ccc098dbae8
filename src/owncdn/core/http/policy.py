"""Per-service cache policy: the operator's overrides of what origins say.

Rules of this module:

Rule 1: every field has a default that makes the cache behave as RFC 9111 describes a
        shared cache; a policy only ever tightens or loosens freshness numbers and the
        two opt-ins (``share_set_cookie``, ``honor_client_no_cache``).
Rule 2: a policy never makes a response storable that the origin marked ``no-store``
        or ``private``, and never skips revalidation the origin asked for with
        ``no-cache`` (``min_ttl`` does not apply to such responses).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CachePolicy", "DEFAULT_POLICY"]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    default_ttl: float | None = None
    """Freshness lifetime used instead of the heuristic when the origin gives no
    explicit freshness (no s-maxage, max-age or Expires). None: use the heuristic."""

    min_ttl: float = 0.0
    """Floor on the freshness lifetime of storable responses. Does not apply to
    responses whose effective directives include no-cache."""

    max_ttl: float | None = None
    """Cap on the freshness lifetime. None: no cap."""

    stale_while_revalidate: float = 0.0
    """Seconds a stale response may be served while revalidating in the background,
    when the response carries no stale-while-revalidate directive (RFC 5861 §3)."""

    stale_if_error: float = 86400.0
    """Seconds a stale response may be served when the origin fails, when the response
    carries no stale-if-error directive (RFC 5861 §4)."""

    share_set_cookie: bool = False
    """False: responses carrying Set-Cookie are not stored (unless private="set-cookie"
    names it, in which case the field is dropped and the rest stored)."""

    honor_client_no_cache: bool = True
    """True: request Cache-Control (no-cache, max-age, min-fresh, max-stale) and
    Pragma: no-cache take part in reuse decisions (RFC 9111 §5.2.1).
    False: a client cannot force revalidation; its Cache-Control is ignored for reuse."""

    max_object_size: int | None = None
    """Responses whose Content-Length exceeds this are not stored. None: no limit."""


DEFAULT_POLICY = CachePolicy()
