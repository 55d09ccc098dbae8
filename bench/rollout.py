"""How fast the fleet follows the control plane: apply and purge, 10 edges on loopback.

Three processes, as on a real fleet where these are separate machines: the control
plane (`owncdn control`, SQLite store), the edges (10 of them, each on its own
loopback address, in one child process that reports every acknowledgement the
control plane accepted, with its wall-clock time), and this script, which issues the
API calls. Then, 20 times each:
- apply: from `apply` returning (the version is stored) until the last edge's report
  was accepted;
- purge: from issuing `purge` until the last edge's acknowledgement was accepted.
Prints the median and the maximum. Target on loopback: both under 100 ms at the maximum.

    .venv/bin/python bench/rollout.py [--edges 10] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvloop

from owncdn.client import Client
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


# -- the edges' process ----------------------------------------------------------------
async def run_edges(count: int, control: str, bootstrap: str, state: Path) -> None:
    """Start `count` edges and print one JSON line per accepted report / purge ack."""
    from owncdn.core.config import parse_config
    from owncdn.edge.server import EdgeServer

    empty = parse_config("version: 1\n", "(empty)", lambda kind, name: None)
    servers = [await EdgeServer.start(empty, listen=f"127.0.1.{i + 1}:0", access_log="off", control=control,
                                      token=bootstrap, state_dir=state / f"edge-{i}",
                                      edge_id=f"edge-{i}", location=f"loc{i}")
               for i in range(count)]
    agents = [s.agent for s in servers]
    offset = time.time() - time.perf_counter()  # perf_counter -> wall clock, shared by processes
    seen: set[tuple] = set()
    while not all(a.connected.is_set() for a in agents):
        await asyncio.sleep(0.01)
    print(json.dumps({"ready": True}), flush=True)
    while True:
        for i, agent in enumerate(agents):
            for kind, marks in (("report", agent.reported_at), ("purge", agent.purge_acked_at)):
                for number, at in list(marks.items()):
                    if (i, kind, number) not in seen:
                        seen.add((i, kind, number))
                        print(json.dumps({"edge": i, "kind": kind, "id": number, "at": at + offset}), flush=True)
        await asyncio.sleep(0.0005)


# -- this process ------------------------------------------------------------------------
class Acks:
    """Acknowledgements read from the edges' process, by (kind, id)."""

    def __init__(self, stream) -> None:
        self.by_id: dict[tuple[str, int], dict[int, float]] = {}
        self.ready = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            event = json.loads(line)
            if event.get("ready"):
                self.ready.set()
                continue
            with self.lock:
                self.by_id.setdefault((event["kind"], event["id"]), {})[event["edge"]] = event["at"]

    def wait_all(self, kind: str, ident: int, count: int, timeout: float = 10.0) -> float:
        """Wall-clock time of the last of `count` acknowledgements."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                got = self.by_id.get((kind, ident), {})
                if len(got) == count:
                    return max(got.values())
            time.sleep(0.0005)
        raise TimeoutError(f"{kind} {ident}: only {len(got)} of {count} edges acknowledged")


def wait_until(check, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise TimeoutError("did not start in time")
        time.sleep(0.02)


def healthy(url: str) -> bool:
    try:
        return Client(url).health()["ok"]
    except Exception:  # noqa: BLE001 - not up yet
        return False


def measure(edges: int, runs: int, origin_url: str, tmp: Path) -> tuple[list[float], list[float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = tmp / "control"
    control = subprocess.Popen([sys.executable, "-m", "owncdn.cli", "control", "--listen", f"127.0.0.1:{port}",
                                "--state-dir", str(state)], stdout=subprocess.DEVNULL,
                               stderr=open(tmp / "control.log", "wb"))
    children = [control]
    try:
        wait_until(lambda: (state / "bootstrap.token").exists() and healthy(url))
        admin = (state / "admin.token").read_text().strip()
        bootstrap = (state / "bootstrap.token").read_text().strip()
        fleet = subprocess.Popen([sys.executable, __file__, "--edges-process", str(edges), "--control", url,
                                  "--bootstrap", bootstrap, "--state", str(tmp)],
                                 stdout=subprocess.PIPE, text=True)
        children.append(fleet)
        acks = Acks(fleet.stdout)
        if not acks.ready.wait(30):
            raise TimeoutError("the edges did not connect")
        api = Client(url, admin)
        apply_ms, purge_ms, post_ms = [], [], []
        for run in range(runs + 1):
            number = api.add_version("production", SOURCE.format(origin=origin_url, ttl=60 + run))["number"]
            t0 = time.time()
            last = acks.wait_all("report", number, edges)
            if run:  # the first run warms connections up
                apply_ms.append((last - t0) * 1000)
        for run in range(runs + 1):
            t0 = time.time()
            pid = api.purge("production", all=True)["id"]
            posted = time.time()
            last = acks.wait_all("purge", pid, edges)
            if run:
                purge_ms.append((last - t0) * 1000)
                post_ms.append((posted - t0) * 1000)
        print(f"  (purge POST answered: median {statistics.median(post_ms):.1f} ms, max {max(post_ms):.1f} ms)")
        return apply_ms, purge_ms
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(10)


async def serve_origin(stop: threading.Event, ready: list) -> None:
    origin = FakeOrigin()
    origin.route("/", body=b"x", headers={"Cache-Control": "max-age=600"})
    await origin.start()
    ready.append(origin.url)
    while not stop.is_set():
        await asyncio.sleep(0.05)
    await origin.close()


def main(edges: int, runs: int) -> None:
    stop, ready = threading.Event(), []
    thread = threading.Thread(target=lambda: uvloop.run(serve_origin(stop, ready)), daemon=True)
    thread.start()
    wait_until(lambda: bool(ready))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            apply_ms, purge_ms = measure(edges, runs, ready[0], Path(tmp))
    finally:
        stop.set()
        thread.join(5)
    print(f"{edges} edges, {runs} runs each (control plane, edges and this client in three processes)")
    for name, values in (("apply -> last edge ack", apply_ms), ("purge -> last edge ack", purge_ms)):
        print(f"  {name:<24} median {statistics.median(values):7.1f} ms   max {max(values):7.1f} ms")
    worst = max(max(apply_ms), max(purge_ms))
    print(f"target (max under 100 ms on loopback): {'met' if worst < 100 else 'NOT met'} ({worst:.1f} ms)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="apply and purge propagation across edges")
    ap.add_argument("--edges", type=int, default=10)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--edges-process", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--control", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--state", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.edges_process:
        uvloop.run(run_edges(args.edges_process, args.control, args.bootstrap, Path(args.state)))
    else:
        main(args.edges, args.runs)
