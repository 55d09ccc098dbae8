"""Metadata bytes per cached object of the cache policies, and the cost of hit().

Fills a policy sized for half of N objects and churns it with a Zipf stream, measuring
with tracemalloc before and after, and divides by the resident objects. Keys (URL-like strings) and sizes are
built before measuring, as the edge's store already holds both; the policy's own share
is its records, dict and deque slots. The target for the whole edge store is under
300 bytes per object; the policy should take well under that (aim: < 120).

Then times ``hit()`` on resident keys (the edge calls it on every cache hit).

    .venv/bin/python bench/object_overhead.py [--objects 200000] [--hits 2000000]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc

from owncdn.core.cache import LRU, S3FIFO

TARGET = 120


def measure(make, keys: list, sizes: list, churn: list) -> tuple[float, object]:
    """Bytes the policy holds per resident object after filling it and then churning.

    Capacity is half the objects' bytes; ``churn`` (indices into keys, Zipf-ish) is
    replayed as hits and admissions so S, M and the ghost reach their steady shape,
    including dict slots left by deletions.
    """
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    policy = make(sum(sizes) // 2)
    for i in churn:
        key = keys[i]
        if key in policy:
            policy.hit(key)
        else:
            policy.admit(key, sizes[i])
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(policy), policy


def time_hits(make, keys: list, sizes: list, hits: int) -> float:
    policy = make(10**15)
    for key, size in zip(keys, sizes):
        policy.admit(key, size)
    rng = random.Random(2)
    sample = [rng.choice(keys) for _ in range(hits)]
    hit = policy.hit
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for key in sample:
            hit(key)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    for key in sample:
        pass
    loop = time.perf_counter() - t0
    return (best - loop) / hits * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=200_000)
    ap.add_argument("--hits", type=int, default=2_000_000)
    args = ap.parse_args(argv)
    rng = random.Random(1)
    keys = [f"https://static.example.com/assets/{i:08d}/{rng.getrandbits(64):016x}.js"
            for i in range(args.objects)]
    sizes = [rng.randint(1024, 10 * 2**20) for _ in range(args.objects)]  # ints > 256: real objects
    key_bytes = sum(sys.getsizeof(k) for k in keys) / len(keys)
    print(f"{args.objects:,} objects, keys ~{key_bytes:.0f} B each (not counted below)")
    weights = [1.0 / (r ** 0.9) for r in range(1, args.objects + 1)]
    churn = list(range(args.objects)) + rng.choices(range(args.objects), weights, k=3 * args.objects)
    s3_worst = 0.0
    for make in (S3FIFO, LRU):
        per, policy = measure(make, keys, sizes, churn)
        if make is S3FIFO:
            s3_worst = per
        ghost = policy.stats().get("ghost_objects")
        extra = f", ghost keys {ghost:,} (counted)" if ghost is not None else ""
        print(f"  {make.__name__:<7} {per:6.1f} B/object   resident {len(policy):,}{extra}")
        if make is S3FIFO:
            print("          where: " + ", ".join(
                f"{name.strip('_')} {sys.getsizeof(getattr(policy, name)) / len(policy):.0f}"
                for name in ("_state", "_size", "_small", "_main", "_ghost", "_ghost_q")))
    print(f"  (+{sys.getsizeof(10 * 2**20)} B/object if the policy's size int is not shared with the store)")
    for make in (S3FIFO, LRU):
        print(f"  {make.__name__}.hit(): {time_hits(make, keys, sizes, args.hits):.3f} us per call")
    verdict = "MET" if s3_worst < TARGET else "NOT MET"
    print(f"target (S3-FIFO < {TARGET} B/object, keys excluded): {verdict} ({s3_worst:.0f} B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
