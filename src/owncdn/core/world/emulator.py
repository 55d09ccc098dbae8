"""The WAN emulator's own error, pure: summaries of its lateness histogram and of probes.

Rules:

1. A lateness histogram is a list of counts: index ``i`` counts packets that left
   ``i`` to ``i + 1`` microseconds after their due time; the last index counts
   every packet later than that (``owncdn.testing.wan`` rule 6).
2. ``summary`` gives the packet count and the 50th, 90th, 99th and 99.9th
   percentile and the maximum in microseconds; a percentile that falls into the
   last bucket is reported as that bucket's lower edge (a lower bound), and
   ``over`` counts such packets.
3. ``per_hop`` turns probe round trips into the cost of one hop: a round trip
   crosses the emulator twice, so ``(measured - modelled - direct) / 2``, where
   ``direct`` is the same exchange without the emulator (the hosts' own cost).
4. ``probe_text`` reads a probe (``owncdn.testing.world`` rule 11): per exchange
   the median across the emulator, the modelled round trips, the same exchange on
   one host's loopback, and the residual per crossing in microseconds.
"""

from __future__ import annotations

import statistics

PERCENTILES = {"p50_us": 0.5, "p90_us": 0.9, "p99_us": 0.99, "p999_us": 0.999}


def _at(counts: list[int], rank: int) -> int:
    seen = 0
    for us, n in enumerate(counts):
        seen += n
        if seen > rank:
            return us
    return len(counts) - 1


def summary(counts: list[int] | None) -> dict:
    """Rules 1-2: ``{"packets", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "over"}``."""
    counts = counts or []
    total = sum(counts)
    out: dict = {"packets": total, "over": counts[-1] if counts else 0}
    for key, p in PERCENTILES.items():
        out[key] = _at(counts, min(total - 1, int(p * total))) if total else None
    out["max_us"] = max((us for us, n in enumerate(counts) if n), default=None)
    return out


def per_hop(measured: list[float], modelled_rtt: float, direct: list[float]) -> float:
    """Rule 3: seconds one crossing of the emulator adds beyond its modelled delay (medians)."""
    return (statistics.median(measured) - modelled_rtt - statistics.median(direct)) / 2


def text(s: dict) -> str:
    """One line for a report: how late packets left against their due time."""
    if not s.get("packets"):
        return "no packets forwarded"
    over = f", {s['over']} later than {s['max_us']} us" if s.get("over") else ""
    return (f"{s['packets']:,} packets; late against their due time by median {s['p50_us']} us, "
            f"p90 {s['p90_us']} us, p99 {s['p99_us']} us, p99.9 {s['p999_us']} us, max {s['max_us']} us{over}")


def probe_text(p: dict) -> str:
    """Rule 4: one line per exchange of an emulator probe."""
    lines = [f"echo between the visitor in {p['city']} and the edge host in {p['server']} "
             f"(modelled round trip {p['rtt'] * 1000:g} ms, {p['samples']} samples each, medians):"]
    for name, e in p["exchanges"].items():
        modelled = e["round_trips"] * p["rtt"]
        lines.append(f"{name}: {e['median'] * 1000:.3f} ms = modelled {modelled * 1000:g} ms + the hosts' own "
                     f"{e['direct'] * 1000:.3f} ms (same exchange on one host's loopback) + "
                     f"{2 * e['round_trips']} crossings x {e['per_crossing'] * 1e6:.0f} us")
    return "\n".join(lines)
