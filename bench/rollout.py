"""How fast the fleet follows the control plane: apply and purge, 10 edges on loopback.

Starts a control plane (`owncdn control`: REST API, SQLite store) in its own process,
and 10 edges, each on its own loopback address, in this process, with a scripted
origin. Then, 20 times each:
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from owncdn.client import Client
from owncdn.core.config import parse_config
from owncdn.edge.server import EdgeServer
from owncdn.testing.fleet import free_port
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


async def start_control(state: Path) -> tuple[subprocess.Popen, str, str, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "owncdn.cli", "control", "--listen", f"127.0.0.1:{port}",
                             "--state-dir", str(state)], stdout=subprocess.DEVNULL)
    await wait_for(lambda: (state / "bootstrap.token").exists() and _healthy(url))
    return proc, url, (state / "admin.token").read_text().strip(), (state / "bootstrap.token").read_text().strip()


def _healthy(url: str) -> bool:
    try:
        return Client(url).health()["ok"]
    except Exception:  # noqa: BLE001 - not up yet
        return False


async def main(edges: int, runs: int) -> None:
    origin = await FakeOrigin().start()
    origin.route("/", body=b"x", headers={"Cache-Control": "max-age=600"})
    empty = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, admin, bootstrap = await start_control(Path(tmp) / "control")
        api = Client(url, admin)
        servers = [await EdgeServer.start(empty, listen=f"127.0.1.{i + 1}:0", access_log="off", control=url,
                                          token=bootstrap, state_dir=Path(tmp) / f"edge-{i}",
                                          edge_id=f"edge-{i}", location=f"loc{i}")
                   for i in range(edges)]
        agents = [s.agent for s in servers]
        try:
            await wait_for(lambda: all(a.connected.is_set() for a in agents))
            apply_ms, purge_ms, first, seen, seen_first, posted = [], [], [], [], [], []
            for run in range(runs + 1):
                source = SOURCE.format(origin=origin.url, ttl=60 + run)
                version = await asyncio.to_thread(api.add_version, "production", source)
                t0 = time.perf_counter()
                n = version["number"]
                await wait_for(lambda: all(n in a.reported_at for a in agents))
                if run:  # the first run warms connections up
                    apply_ms.append((max(a.reported_at[n] for a in agents) - t0) * 1000)
            for run in range(runs + 1):
                t0 = time.perf_counter()
                purge = await asyncio.to_thread(api.purge, "production", all=True)
                t_posted = time.perf_counter()
                pid = purge["id"]
                await wait_for(lambda: all(pid in a.purge_acked_at for a in agents))
                if run:
                    purge_ms.append((max(a.purge_acked_at[pid] for a in agents) - t0) * 1000)
                    first.append((min(a.purge_acked_at[pid] for a in agents) - t0) * 1000)
                    seen.append((max(a.purge_seen_at[pid] for a in agents) - t0) * 1000)
                    seen_first.append((min(a.purge_seen_at[pid] for a in agents) - t0) * 1000)
                    posted.append((t_posted - t0) * 1000)
        finally:
            for server in servers:
                await server.close()
            proc.terminate()
            proc.wait(10)
    await origin.close()
    print(f"{edges} edges, {runs} runs each")
    for name, values in (("apply -> last edge ack", apply_ms), ("purge -> last edge ack", purge_ms)):
        print(f"  {name:<24} median {statistics.median(values):7.1f} ms   max {max(values):7.1f} ms")
    print(f"  purge -> first edge ack  median {statistics.median(first):7.1f} ms")
    print(f"  purge -> POST returned   median {statistics.median(posted):7.1f} ms")
    print(f"  purge -> first edge saw  median {statistics.median(seen_first):7.1f} ms")
    print(f"  purge -> last edge saw   median {statistics.median(seen):7.1f} ms")
    worst = max(max(apply_ms), max(purge_ms))
    print(f"target (max under 100 ms on loopback): {'met' if worst < 100 else 'NOT met'} ({worst:.1f} ms)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="apply and purge propagation across edges")
    ap.add_argument("--edges", type=int, default=10)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    uvloop.run(main(args.edges, args.runs))
