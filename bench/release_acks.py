"""From a release's creation to every edge acknowledging it, in one process.

A control plane and 3 edges run in this process (``owncdn.testing.fleet``); the
site is the HTML documentation of Debian's ``python3-doc`` (about 1,000 files, a
~128 KB manifest), as in ``bench/push.py``. After a first push, each round changes
one file and pushes again (``push_site``), then waits on
``GET .../releases/N/status?wait=`` as ``owncdn push --wait`` does. Printed per round
and as median: the seconds from starting the push until the release exists
(hash + upload + create), from then until the wait answered with every edge
serving it, and the CPU seconds (user + sys of this whole process: control plane,
edges and client) over the second interval. Everything shares one interpreter, so
the figures are for comparing builds of owncdn on one machine, not with other tools.

    .venv/bin/python bench/release_acks.py [--rounds 15] [--edges 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from owncdn.client.hashcache import HashCache  # noqa: E402
from owncdn.client.push import push_site  # noqa: E402
from owncdn.client.pushapi import PushApi  # noqa: E402
from owncdn.testing.fleet import Fleet  # noqa: E402

SERVICE = "docs"
SOURCE = f"""version: 1
services:
  - name: {SERVICE}
    hostnames: [docs.example.test]
    mode: push
"""
DOCS = "/usr/share/doc/python3/html"


def cpu() -> float:
    t = os.times()
    return t.user + t.system


async def one_round(fleet: Fleet, api: PushApi, site: Path, cache: HashCache, rnd: int) -> tuple[float, float, float]:
    target = site / "library" / "functions.html"
    with open(target, "a") as f:
        f.write(f"\n<!-- round {rnd} {time.time()} -->\n")
    t0 = time.perf_counter()
    result = await asyncio.to_thread(push_site, api, site, service=SERVICE, env=fleet.env, cache=cache)
    t1, c1 = time.perf_counter(), cpu()
    status = await asyncio.to_thread(api.release_status, fleet.env, SERVICE, result.release["number"], wait=30)
    t2, c2 = time.perf_counter(), cpu()
    if len(status["serving"]) != len(fleet.edges):
        raise RuntimeError(f"release {result.release['number']}: not every edge serves it: {status}")
    return t1 - t0, t2 - t1, c2 - c1


async def main_async(args) -> None:
    base = Path(tempfile.mkdtemp(prefix="owncdn-release-acks-"))
    try:
        site = base / "site"
        shutil.copytree(DOCS, site, symlinks=False)
        fleet = Fleet(base / "fleet", edges=args.edges)
        await fleet.__aenter__()
        try:
            version = await fleet.apply(SOURCE)
            await fleet.wait_applied(version)
            api = PushApi(fleet.url, fleet.admin_token)
            cache = HashCache.for_root(site, base / "hashes")
            first = await asyncio.to_thread(push_site, api, site, service=SERVICE, env=fleet.env, cache=cache)
            await asyncio.to_thread(api.release_status, fleet.env, SERVICE, first.release["number"], wait=60)
            await asyncio.sleep(2.1)  # the hash cache trusts entries older than 2 s
            rows = []
            for rnd in range(args.rounds):
                rows.append(await one_round(fleet, api, site, cache, rnd))
                print(f"round {rnd + 1:2}: push until created {rows[-1][0] * 1000:6.1f} ms, created until all "
                      f"{args.edges} acknowledged {rows[-1][1] * 1000:6.1f} ms (CPU {rows[-1][2] * 1000:5.1f} ms)",
                      flush=True)
            api.close()
        finally:
            await fleet.__aexit__(None, None, None)
        med = [statistics.median(r[i] for r in rows) * 1000 for i in range(3)]
        print(f"\n{first.files} files, manifest {first.manifest_bytes} B, {args.edges} edges in this process, "
              f"{args.rounds} one-file pushes; medians: push until created {med[0]:.1f} ms, created until all "
              f"acknowledged {med[1]:.1f} ms, CPU in that interval {med[2]:.1f} ms")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--edges", type=int, default=3)
    args = parser.parse_args()
    if not Path(DOCS, "index.html").exists():
        sys.exit(f"bench/release_acks.py needs Debian's python3-doc ({DOCS})")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
