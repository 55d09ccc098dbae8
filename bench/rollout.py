"""How fast the fleet follows the control plane: apply and purge, 10 edges on loopback.

Starts a control plane (REST API, SQLite store) and 10 edges, each on its own loopback
address, all in this process, and a scripted origin. Then, 20 times each:
- apply: the time from `apply` returning (the version is stored) until the last edge's
  acknowledgement was accepted by the control plane;
- purge: the time from issuing `purge` until the last edge's acknowledgement was
  accepted.
Prints the median and the maximum. Target on loopback: both under 100 ms at the maximum.

    .venv/bin/python bench/rollout.py [--edges 10] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import uvloop

from owncdn.testing.fleet import Fleet
from owncdn.testing.origin import FakeOrigin

SOURCE = """
version: 1
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
    cache: {{default_ttl: {ttl}s}}
"""


async def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the fleet did not follow in time")
        await asyncio.sleep(0.0005)


async def main(edges: int, runs: int) -> None:
    origin = await FakeOrigin().start()
    origin.route("/", body=b"x", headers={"Cache-Control": "max-age=600"})
    with tempfile.TemporaryDirectory() as tmp:
        async with Fleet(Path(tmp), edges=edges) as fleet:
            agents = [e.agent for e in fleet.edges]
            await wait_for(lambda: all(a.connected.is_set() for a in agents))
            apply_ms, purge_ms = [], []
            for run in range(runs + 1):
                source = SOURCE.format(origin=origin.url, ttl=60 + run)
                version = await asyncio.to_thread(fleet.api.add_version, fleet.env, source)
                t0 = time.perf_counter()
                n = version["number"]
                await wait_for(lambda: all(n in a.reported_at for a in agents))
                if run:  # the first run warms connections up
                    apply_ms.append((max(a.reported_at[n] for a in agents) - t0) * 1000)
            for run in range(runs + 1):
                t0 = time.perf_counter()
                purge = await asyncio.to_thread(fleet.api.purge, fleet.env, all=True)
                pid = purge["id"]
                await wait_for(lambda: all(pid in a.purge_acked_at for a in agents))
                if run:
                    purge_ms.append((max(a.purge_acked_at[pid] for a in agents) - t0) * 1000)
    await origin.close()
    print(f"{edges} edges, {runs} runs each")
    for name, values in (("apply -> last edge ack", apply_ms), ("purge -> last edge ack", purge_ms)):
        print(f"  {name:<24} median {statistics.median(values):7.1f} ms   max {max(values):7.1f} ms")
    worst = max(max(apply_ms), max(purge_ms))
    print(f"target (max under 100 ms on loopback): {'met' if worst < 100 else 'NOT met'} ({worst:.1f} ms)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="apply and purge propagation across edges")
    ap.add_argument("--edges", type=int, default=10)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    uvloop.run(main(args.edges, args.runs))
