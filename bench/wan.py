#!/usr/bin/env python3
"""The WAN emulator's own cost: what one crossing of it adds beyond the modelled delay.

Two hosts, ``a`` (client) and ``b`` (server), joined by ``owncdn.testing.wan``. On
``b`` a threaded TCP echo server (``TCP_NODELAY``, as the edge sets it); on ``a`` a
client that times, per sample (``owncdn.testing.wanprobe``):

  pingpong     1 byte there and back on an open connection   (1 round trip)
  connect      the TCP handshake                              (1 round trip)
  request      handshake, then a 64-byte request and its answer, the way
               ``owncdn.testing.visit`` times a TTFB            (2 round trips)

Each exchange is measured three ways in the same run:

  direct       client and server both on ``b`` over its loopback: no emulator (the
               hosts' own cost: Python, the kernel's TCP, thread wake-ups)
  zero         through the emulator with a 0 ms delay: the cost of the hop itself
  delay        through the emulator with ``--delay`` one way (default 1 ms, the
               world's two hosts in one city)

Printed per exchange: min / median / p90 in ms, and the emulator's residual per
crossing, ``(median - modelled - direct median) / crossings`` (``core.world.emulator``
rule 3). Then the forwarder's own histogram of how late packets left against their
due time, and the forwarder's CPU time (user + system) per packet once it was ready.
``--imprecise`` repeats the delay run with the forwarder's precise timers off (no
``SCHED_FIFO``, default timer slack, idle CPUs may halt) for comparison.

Run it as root, under the shared lock:

    flock /tmp/bench.lock .venv/bin/python bench/wan.py [--delay 0.001] [--samples 300] [--imprecise]
"""

from __future__ import annotations

import argparse
import json
import statistics

from owncdn.core.world.emulator import per_hop, summary, text
from owncdn.testing.wan import Wan, WanHost
from owncdn.testing.wanprobe import EXCHANGES, measure

def _run(one_way: float, samples: int, direct: bool = False, precise: bool = True) -> tuple[dict, Wan]:
    hosts = [WanHost("a", "10.1.0.10", "a"), WanHost("b", "10.2.0.10", "b")]
    wan = Wan(hosts, lambda x, y: one_way, precise=precise)
    with wan:
        out = measure(wan.exec_args("b"), wan.exec_args("b" if direct else "a"), "10.2.0.10", samples)
    return out, wan


def _q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.001, help="one-way delay of the delay run, seconds")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--imprecise", action="store_true", help="also run with the precise timers off")
    parser.add_argument("--json", help="write every sample and the summaries here")
    args = parser.parse_args()
    direct, _ = _run(0.0, args.samples, direct=True)
    runs = {"zero": (0.0, True), "delay": (args.delay, True)}
    if args.imprecise:
        runs["imprecise"] = (args.delay, False)
    results = {"direct": {"one_way": 0.0, "samples": direct}}
    for name, (one_way, precise) in runs.items():
        out, wan = _run(one_way, args.samples, precise=precise)
        results[name] = {"one_way": one_way, "samples": out, "modes": wan.modes, "lateness": summary(wan.lateness),
                         "forwarder_cpu_s": wan.cpu_s}
    print(f"samples per exchange: {args.samples}; direct = both ends on one host's loopback (no emulator)")
    for name, r in results.items():
        modes = " ".join(r.get("modes", [])) or "-"
        print(f"\n{name}: one way {r['one_way'] * 1e3:g} ms" + (f"; forwarder: {modes}" if name != "direct" else ""))
        for ex, rts in EXCHANGES.items():
            xs = r["samples"][ex]
            modelled = 2 * rts * r["one_way"]
            line = (f"  {ex:9s} modelled {modelled * 1e3:5.2f}  min {min(xs) * 1e3:6.3f}  "
                    f"median {statistics.median(xs) * 1e3:6.3f}  p90 {_q(xs, 0.9) * 1e3:6.3f} ms")
            if name != "direct":
                hop = per_hop(xs, modelled, direct[ex])
                line += f"   residual per crossing {hop / rts * 1e6:5.0f} us"
                r.setdefault("per_crossing_us", {})[ex] = hop / rts * 1e6
            print(line)
        if name != "direct":
            print(f"  forwarder: {text(r['lateness'])}")
            if r.get("forwarder_cpu_s") is not None:
                packets = max(1, r["lateness"]["packets"])
                print(f"  forwarder CPU: {r['forwarder_cpu_s']:.3f} s user+system once ready, "
                      f"{r['forwarder_cpu_s'] / packets * 1e6:.0f} us per packet forwarded")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
