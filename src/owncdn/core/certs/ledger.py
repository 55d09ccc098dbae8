"""The CA's order limit per registered domain, checked before an order is placed.

Let's Encrypt issues at most 50 certificates per registered domain (the name one
label below a public suffix: ``example.co.uk`` for ``a.b.example.co.uk``) in any
7 days. The control plane keeps a ledger of its orders; an order that would pass
the limit is refused before the CA is asked, with a message that says when the
next one becomes possible.

Rule 1: every registered domain an order touches must have fewer than ``limit``
orders in the window ``[now - window, now)``.
Rule 2: the refusal names the domain, the count, the limit and when the oldest
order in the window leaves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

__all__ = ["QuotaExceeded", "check_quota", "WEEK"]

WEEK = 7 * 86400.0


class QuotaExceeded(Exception):
    """One more order would pass the CA's limit; the message says when it is possible."""

    def __init__(self, message: str, retry_at: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at


def check_quota(domains: Iterable[str], orders: Mapping[str, Sequence[float]], now: float,
                limit: int, window: float = WEEK) -> None:
    """Raise ``QuotaExceeded`` unless every domain in ``domains`` has room for one more
    order; ``orders`` maps a registered domain to its order times."""
    for domain in sorted(set(domains)):
        recent = sorted(t for t in orders.get(domain, ()) if now - window <= t < now + 1e-9)
        if len(recent) >= limit:
            free_at = recent[len(recent) - limit] + window
            raise QuotaExceeded(
                f"{len(recent)} orders for {domain} in the last {window / 86400:g} days reach the CA's "
                f"limit of {limit}; the next order is possible in {max(0.0, free_at - now) / 3600:.1f} h "
                f"(raise acme.orders_per_week only if your CA allows more)", free_at)
