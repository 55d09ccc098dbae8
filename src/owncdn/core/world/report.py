"""Tables of ``owncdn world`` results, pure (rows in, text out).

Rules:

1. A row is a mapping with ``city``, ``server`` (the city that answered), ``dns``,
   ``connect``, ``tls`` (the TLS handshake, HTTPS only), ``ttfb``, ``page`` and
   ``floor`` in seconds (``dns`` and ``tls`` may be None or missing)
   and ``cache``; times are shown in whole milliseconds, with one decimal below
   10 ms (where a millisecond is a quarter of the floor), a missing one as ``-``.
2. ``x floor`` is ``ttfb / floor``: 1.00 is the speed of light, and the issue's
   target for cached content is at most 1.20.
3. ``markdown=True`` gives a GitHub table for ``docs/``; otherwise aligned columns
   for a terminal.
"""

from __future__ import annotations

HEADERS = ("city", "served from", "DNS ms", "connect ms", "TLS ms", "TTFB ms", "page ms", "floor ms", "x floor", "cache")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f}" if value < 0.00995 else f"{value * 1000:.0f}"


def cells(row: dict) -> list[str]:
    ratio = f"{row['ttfb'] / row['floor']:.2f}" if row.get("floor") else "-"
    return [row["city"], row["server"], _ms(row.get("dns")), _ms(row["connect"]), _ms(row.get("tls")), _ms(row["ttfb"]),
            _ms(row["page"]), _ms(row.get("floor")), ratio, row.get("cache") or "-"]


def table(rows: list[dict], markdown: bool = False) -> str:
    """The rows as text (rules 1-3)."""
    body = [cells(r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(c) + " |" for c in body]
        return "\n".join(lines) + "\n"
    widths = [max(len(h), *(len(c[i]) for c in body)) if body else len(h) for i, h in enumerate(HEADERS)]
    fmt = lambda cs: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cs, widths)))  # noqa: E731
    return "\n".join([fmt(HEADERS), *(fmt(c) for c in body)]) + "\n"
