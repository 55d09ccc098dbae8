"""Miss ratios of owncdn's S3-FIFO against LRU, replaying a request trace.

Replays a seeded synthetic Zipf trace (or a trace file of `time id size` or `id size`
lines) through both byte-aware policies at cache sizes given as fractions of the
trace's footprint (bytes of its distinct objects), and prints the object and byte
miss ratios and S3-FIFO's relative reduction against LRU. Target: at least 10% fewer
object misses than LRU on the Zipf trace at 1% of the footprint.

    .venv/bin/python bench/hit_ratio.py [--requests 1000000] [--objects 100000]
        [--alpha 0.9] [--seed 1] [--sizes 0.01,0.1] [--trace FILE]
"""

from __future__ import annotations

import argparse
import sys
import time

from owncdn.core.cache import LRU, S3FIFO
from owncdn.core.cache.trace import parse_trace, replay, zipf_trace

TARGET = 0.10


def load(args) -> tuple[str, object]:
    if args.trace:
        with open(args.trace) as f:
            return f"file {args.trace}", parse_trace(f)
    trace = zipf_trace(args.requests, args.objects, alpha=args.alpha, seed=args.seed)
    return (f"zipf requests={args.requests:,} objects={args.objects:,} alpha={args.alpha} "
            f"seed={args.seed} sizes=lognormal(median 32 KiB) in 1 KiB..10 MiB"), trace


def reduction(lru: float, s3: float) -> float:
    return (lru - s3) / lru if lru else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sizes", default="0.01,0.1", help="cache sizes as fractions of the footprint")
    ap.add_argument("--trace", help="trace file: lines 'time id size' or 'id size'")
    args = ap.parse_args(argv)
    fractions = [float(x) for x in args.sizes.split(",")]

    started = time.perf_counter()
    name, trace = load(args)
    footprint = trace.footprint()
    counts: dict = {}
    for key in trace.keys:
        counts[key] = counts.get(key, 0) + 1
    once = sum(1 for c in counts.values() if c == 1)
    print(f"trace: {name}")
    print(f"       {len(trace):,} requests, {len(counts):,} objects ({once / len(counts):.0%} requested once), "
          f"footprint {footprint / 2**20:,.1f} MiB, built in {time.perf_counter() - started:.1f} s")
    print(f"{'cache':>6} {'MiB':>10} {'policy':>7} {'obj miss':>9} {'byte miss':>10} {'objects':>8} {'s':>5}")
    results = {}
    for fraction in fractions:
        capacity = int(footprint * fraction)
        for make in (LRU, S3FIFO):
            t0 = time.perf_counter()
            policy = make(capacity)
            r = replay(policy, trace)
            results[fraction, make.__name__] = r
            print(f"{fraction:>6.1%} {capacity / 2**20:>10,.1f} {make.__name__:>7} {r.miss_ratio:>9.4f} "
                  f"{r.byte_miss_ratio:>10.4f} {len(policy):>8,} {time.perf_counter() - t0:>5.1f}")
        lru, s3 = results[fraction, "LRU"], results[fraction, "S3FIFO"]
        print(f"{'':>6} S3FIFO vs LRU: {reduction(lru.miss_ratio, s3.miss_ratio):+.1%} fewer object misses, "
              f"{reduction(lru.byte_miss_ratio, s3.byte_miss_ratio):+.1%} fewer byte misses")
    if not args.trace and 0.01 in fractions:
        gain = reduction(results[0.01, "LRU"].miss_ratio, results[0.01, "S3FIFO"].miss_ratio)
        verdict = "MET" if gain >= TARGET else "NOT MET"
        print(f"target (>= {TARGET:.0%} fewer object misses than LRU on Zipf at 1%): {verdict} ({gain:.1%})")
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
