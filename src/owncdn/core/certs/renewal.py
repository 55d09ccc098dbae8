"""When a certificate is renewed, and when a failed attempt is tried again.

Rule 1: without other advice a certificate is renewed when two thirds of its
lifetime (notBefore to notAfter) have passed: 60 days into a 90-day certificate,
4 days into a 6-day one.

Rule 2: the CA's renewal information (ARI, RFC 9773) may move that earlier, never
later: a suggested window (say, because the CA revokes a batch of certificates)
starting before the two-thirds point wins. A window start after it is ignored, so
a slow or wrong ARI answer cannot make a certificate expire.

Rule 3: a failed attempt is retried after ``base * 2**(failures-1)`` seconds, at most
``cap``; the first retry comes after ``base``.
"""

from __future__ import annotations

__all__ = ["backoff_seconds", "renew_at"]

RENEW_FRACTION = 2 / 3


def renew_at(not_before: float, not_after: float, ari_start: float | None = None) -> float:
    """The Unix time at which renewal should start (Rules 1 and 2)."""
    default = not_before + (not_after - not_before) * RENEW_FRACTION
    if ari_start is not None and ari_start < default:
        return ari_start
    return default


def backoff_seconds(failures: int, base: float = 60.0, cap: float = 6 * 3600.0) -> float:
    """Seconds to wait before attempt ``failures + 1`` (Rule 3); 0 with no failures."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2 ** min(failures - 1, 60))


def is_due(source: str, issued: bool, renew_time: float | None, force: bool, next_attempt: float, now: float) -> bool:
    """Whether the manager orders now: a forced renewal always; otherwise not before
    ``next_attempt`` (Rule 3), and then a certificate never issued, or one whose
    renewal time has come. Uploaded certificates are never ordered."""
    if source != "acme":
        return False
    if force:
        return True
    if now < next_attempt:
        return False
    return not issued or (renew_time is not None and now >= renew_time)
