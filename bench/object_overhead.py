"""Metadata bytes per cached object of the cache policies, and the cost of hit().

Fills a policy sized for half of N objects and churns it with a Zipf stream, measuring
with tracemalloc before and after, and divides by the resident objects. Keys (URL-like
strings) are built before measuring, as the edge's store already holds them; the
policy's own share is its dict slots, packed ints (size and state) and deque slots. The target for the whole edge store is under
300 bytes per object; the policy should take well under that (aim: < 120).

Then times ``hit()`` on resident keys (the edge calls it on every cache hit).

Then measures the whole disk tier as a restarted edge holds it: ``--disk-objects``
small objects (realistic keys, URIs and a tag or two) are written to a temporary
disk store, and a fresh ``DiskTier.load()`` of that directory is measured with
tracemalloc: the store's index (entries, by-URI and by-tag indexes), the tier's
S3-FIFO and its variants map. Reported per object with and without the key strings
(the one copy of each key the index must hold); the target is under 300 B without.

    .venv/bin/python bench/object_overhead.py [--objects 200000] [--hits 2000000]
                                              [--disk-objects 20000]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
import tracemalloc

from owncdn.core.cache import LRU, S3FIFO
from owncdn.edge.disk import DiskStore
from owncdn.edge.tiers import DiskTier

TARGET = 120
DISK_TARGET = 300


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


def fill_disk(root: str, n: int) -> None:
    """Write `n` small objects the way the edge does (DiskStore.put + DiskTier._track)."""
    tier = DiskTier(DiskStore(root, 1 << 40, fsync="never"))
    meta = b'{"status":200,"headers":[["content-type","image/png"],["cache-control","max-age=3600"]],' \
           b'"request_time":1700000000.0,"response_time":1700000000.1,"vary":[]}'
    for i in range(n):
        path = f"/path/to/d{i % 211}/obj-{i}.png"
        key, uri = f"site example.test{path}", f"site|example.test|{path}"
        tags = (f"dir-{i % 211}",) + (("img",) if i % 2 else ())
        entry = tier.disk.put(key, meta, b"x" * (500 + i % 3000), tags=tags, uri=uri)
        tier._track(key, entry.file_size)
    tier.close()


def measure_disk_tier(n: int) -> tuple[float, float, dict]:
    """Bytes per object a fresh DiskTier.load() holds: (with keys, without keys, parts)."""
    with tempfile.TemporaryDirectory(prefix="owncdn-overhead-") as tmp:
        fill_disk(tmp, n)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        tier = DiskTier(DiskStore(tmp, 1 << 40, fsync="never"))
        loaded = tier.load()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        tier.close()
    assert loaded == n, (loaded, n)
    keys = sum(sys.getsizeof(k) for k in tier.disk.keys())
    total = after - before
    parts: dict[str, int] = {}
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename.rsplit("/", 1)[-1]
        parts[name] = parts.get(name, 0) + stat.size
    return total / n, (total - keys) / n, parts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=200_000)
    ap.add_argument("--hits", type=int, default=2_000_000)
    ap.add_argument("--disk-objects", type=int, default=20_000)
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
                for name in ("_state", "_small", "_main", "_ghost", "_ghost_q")))
    for make in (S3FIFO, LRU):
        print(f"  {make.__name__}.hit(): {time_hits(make, keys, sizes, args.hits):.3f} us per call")
    verdict = "MET" if s3_worst < TARGET else "NOT MET"
    print(f"target (S3-FIFO < {TARGET} B/object, keys excluded): {verdict} ({s3_worst:.0f} B)")
    n = args.disk_objects
    with_keys, without_keys, parts = measure_disk_tier(n)
    print(f"disk tier after a fresh load() of {n:,} small objects (index, S3-FIFO, variants):")
    print(f"  {with_keys:6.1f} B/object with the key strings, {without_keys:6.1f} B/object without")
    print("          allocated in: " + ", ".join(
        f"{name} {size / n:.0f}" for name, size in sorted(parts.items(), key=lambda p: -p[1])
        if size / n >= 1))
    verdict = "MET" if without_keys < DISK_TARGET else "NOT MET"
    print(f"target (< {DISK_TARGET} B/object): {verdict} ({without_keys:.0f} B, keys excluded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
