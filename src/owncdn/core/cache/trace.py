"""Request traces and their replay through a cache policy, for hit-ratio benchmarks.

Rules:
1. A trace is two parallel lists: the key and the object size of each request.
2. ``zipf_trace`` is seeded: the same arguments give the same trace. Popularity is
   Zipf(alpha) over ``objects`` objects, ranks shuffled over ids; each object has one
   lognormal size clamped to [min_size, max_size].
3. ``parse_trace`` reads ``time id size`` or ``id size`` lines (whitespace
   separated); blank lines and ``#`` comments are skipped. Lines come in as strings,
   so the caller opens the file.
4. ``replay`` counts a request as a hit when the key is resident (then calls
   ``hit``), else as a miss followed by ``admit``. A miss costs the request's size in
   bytes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(slots=True)
class Trace:
    keys: list
    sizes: list

    def __len__(self) -> int:
        return len(self.keys)

    def footprint(self) -> int:
        """Bytes of the distinct objects (last size seen per key)."""
        return sum(dict(zip(self.keys, self.sizes)).values())

    def distinct(self) -> int:
        return len(set(self.keys))


@dataclass(slots=True)
class ReplayResult:
    requests: int = 0
    misses: int = 0
    bytes: int = 0
    miss_bytes: int = 0

    @property
    def miss_ratio(self) -> float:
        return self.misses / self.requests if self.requests else 0.0

    @property
    def byte_miss_ratio(self) -> float:
        return self.miss_bytes / self.bytes if self.bytes else 0.0


def zipf_trace(requests: int, objects: int, alpha: float = 0.9, seed: int = 1,
               median_size: int = 32 * KIB, sigma: float = 1.8,
               min_size: int = KIB, max_size: int = 10 * MIB) -> Trace:
    rng = random.Random(seed)
    weights = [1.0 / (rank ** alpha) for rank in range(1, objects + 1)]
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    ids = list(range(objects))
    rng.shuffle(ids)  # rank -> object id, so popularity is not id order
    mu = math.log(median_size)
    sizes = [min(max(int(rng.lognormvariate(mu, sigma)), min_size), max_size)
             for _ in range(objects)]
    ranks = rng.choices(range(objects), cum_weights=cum, k=requests)
    keys = [ids[r] for r in ranks]
    return Trace(keys, [sizes[k] for k in keys])


def parse_trace(lines: Iterable[str]) -> Trace:
    keys, sizes = [], []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) == 2:
            key, size = fields
        elif len(fields) >= 3:
            key, size = fields[1], fields[2]
        else:
            raise ValueError(f"line {number}: expected 'time id size' or 'id size', got {line.strip()!r}")
        try:
            sizes.append(int(size))
        except ValueError:
            raise ValueError(f"line {number}: size {size!r} is not an integer") from None
        keys.append(key)
    return Trace(keys, sizes)


def replay(policy, trace: Trace) -> ReplayResult:
    requests = misses = total = missed = 0
    hit, admit = policy.hit, policy.admit
    for key, size in zip(trace.keys, trace.sizes):
        requests += 1
        total += size
        if key in policy:
            hit(key)
        else:
            misses += 1
            missed += size
            admit(key, size)
    return ReplayResult(requests, misses, total, missed)
