"""The time window and bucket of a stats question; ``now`` comes in as an argument.

Rules:
1. Buckets are ``1m``, ``1h`` or ``1d``; anything else is a ``ValueError`` naming them.
2. An instant is epoch seconds, RFC 3339 (``2026-11-22T02:00:00Z``, an offset or none
   meaning UTC), or a duration before now (``15m``, ``1h``, ``7d``, ``30s``).
3. ``window(now, since, start, end)``: ``start`` wins over ``since``; without either the
   last hour. ``end`` defaults to now. An end before the start is a ``ValueError``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

BUCKETS = {"1m": 60, "1h": 3600, "1d": 86400}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


def bucket_seconds(bucket: str) -> int:
    try:
        return BUCKETS[bucket]
    except KeyError:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}") from None


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if m is None:
        raise ValueError(f"expected a duration like 30s, 15m, 1h or 7d, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_instant(text: str, now: float) -> float:
    """Epoch seconds of ``text`` (Rule 2)."""
    text = text.strip()
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected epoch seconds, an RFC 3339 time or a duration like 1h, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def window(now: float, since: str | None = None, start: str | None = None,
           end: str | None = None) -> tuple[float, float]:
    """``(start, end)`` epoch seconds (Rule 3)."""
    lo = parse_instant(start, now) if start else parse_instant(since or "1h", now)
    hi = parse_instant(end, now) if end else now
    if hi < lo:
        raise ValueError(f"the end ({hi:.0f}) is before the start ({lo:.0f})")
    return lo, hi
