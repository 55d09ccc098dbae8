#!/usr/bin/env python3
"""Log shipping under load: how soon a request's line is queryable in the control
plane, and what shipping costs the edges in throughput.

The control plane (`owncdn control`, no health monitor) and 3 edges (`owncdn edge
--control`, each on its own 127.0.1.N) run as processes in front of a small origin
(`python -m http.server` serving a 1 KiB file, cached by the edges for an hour). Two
phases, each with fresh edge state directories:

  none   `edge.logs.ship: false`, `--access-log off`: no logging work at all;
  file   `edge.logs.ship: false`, `--access-log <file>`: the access log as before shipping;
  on     `edge.logs.ship: true`, `--access-log off`: every line spooled (fsync per batch) and shipped.

"Shipping off" is the `file` phase: the cost of shipping is on versus file (both make
every line); the `none` phase shows what making the lines costs at all.

In each phase one `wrk` per edge (`-t1 -c<connections>`) hammers the cached object for
`--seconds`; the edges' summed requests/s is the throughput, and the edges' CPU time
(from /proc) per request says what shipping costs the edge itself, apart from the
control plane's ingest that competes for the same cores here. During the `on` phase a
probe sends `--probe-rate` requests/s (round robin over the edges), notes each one's
X-Request-Id and the wall-clock time its response was complete, and afterwards asks the
control plane (`POST /v1/logs/query`) when each line reached the analytics store
(column `received`: stamped by the writer thread when it starts on the batch; the commit
follows in the same write, so the line is queryable a little later than that). Printed:
p50 / p99 of that delay, lines missing after a grace period, and throughput on vs off.

Everything shares this machine's cores (edges, control plane, wrk, probe), so the
numbers are a sanity check, not a measurement of a production fleet.

    .venv/bin/python bench/log_latency.py [--seconds 10] [--connections 16] [--probe-rate 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from processes import Procs, cpu_seconds, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OWNCDN = [str(ROOT / ".venv" / "bin" / "python"), "-m", "owncdn.cli"]
EDGES = 3
SERVICE = """
version: 1
edge:
  logs:
    ship: {ship}
services:
  - name: bench
    hostnames: [bench.test]
    origins: ["http://127.0.0.1:{origin}"]
    cache:
      default_ttl: 1h
"""


def wait_until(check, timeout: float, what: str) -> None:
    from owncdn.client import ApiError

    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, ApiError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def get(host: str, port: int, path: str = "/1k.bin") -> tuple[int, str]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": "bench.test"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-request-id") or ""
    finally:
        conn.close()


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs = Procs()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = work / "control"
        self.origin_port = free_port()
        self.edges: list[tuple[str, int]] = []
        self.edge_procs = []

    def start_control(self):
        from owncdn.client import Client

        (self.work / "origin").mkdir()
        (self.work / "origin" / "1k.bin").write_bytes(b"x" * 1024)
        self.procs.start([sys.executable, "-m", "http.server", str(self.origin_port), "--bind", "127.0.0.1",
                          "--directory", str(self.work / "origin")], self.work / "origin.log")
        self.procs.start([*OWNCDN, "control", "--listen", f"127.0.0.1:{self.port}", "--state-dir", str(self.state),
                          "--no-health", "--no-acme"], self.work / "control.log")
        wait_until(lambda: (self.state / "admin.token").exists(), 30, "the control plane")
        self.api = Client(self.url, (self.state / "admin.token").read_text().strip(), timeout=30)
        wait_until(lambda: self.api.health(), 30, "the control plane's API")
        self.api.add_version("production", SERVICE.format(ship="true", origin=self.origin_port))

    def start_edges(self, phase: str, ship: bool, access_log: str = "off") -> None:
        config = self.work / f"{phase}.yaml"
        config.write_text(SERVICE.format(ship="true" if ship else "false", origin=self.origin_port))
        bootstrap = (self.state / "bootstrap.token").read_text().strip()
        self.edges = []
        for i in range(EDGES):
            host, port = f"127.0.1.{i + 1}", free_port()
            self.edge_procs.append(self.procs.start(
                [*OWNCDN, "edge", "--config", str(config), "--control", self.url, "--token", bootstrap,
                 "--listen", f"{host}:{port}", "--admin", f"127.0.0.1:{free_port()}", "--id", f"{phase}-{i}",
                 "--location", f"loc{i}", "--access-log", access_log if access_log == "off" else f"{access_log}-{i}.log", "--state-dir", str(self.work / f"{phase}-edge-{i}")],
                self.work / f"{phase}-edge-{i}.log"))
            self.edges.append((host, port))
        for host, port in self.edges:
            wait_until(lambda: get(host, port)[0] == 200, 30, f"edge {host}:{port} serving")

    def stop_edges(self) -> None:
        for proc in self.edge_procs:
            self.procs.stop(proc)
        self.edge_procs = []

    def load(self, seconds: float, connections: int) -> float:
        """Requests/s of the 3 edges together, one wrk each."""
        runs = [subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-H", "Host: bench.test",
                                  f"http://{host}:{port}/1k.bin"], stdout=subprocess.PIPE, text=True)
                for host, port in self.edges]
        total = 0.0
        for run in runs:
            out, _ = run.communicate()
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            total += float(m.group(1)) if m else 0.0
        return total

    def probe(self, seconds: float, rate: float, done: list) -> None:
        """Requests at `rate`/s, round robin; (request id, completed at) into `done`."""
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            host, port = self.edges[i % len(self.edges)]
            try:
                status, rid = get(host, port)
                if status == 200 and rid:
                    done.append((rid, time.time()))
            except OSError:
                pass
            i += 1
            time.sleep(1 / rate)

    def arrival(self, ids: list[str]) -> dict[str, float]:
        got = {}
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            sql = ("SELECT request_id, epoch_us(received) FROM logs WHERE request_id IN ("
                   + ",".join(f"'{i}'" for i in chunk) + ")")
            for rid, us in self.api.logs_query(sql, limit=10_000)["rows"]:
                got[rid] = us / 1e6
        return got


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="Load per phase.")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections per edge.")
    parser.add_argument("--probe-rate", type=float, default=20.0, help="Probe requests per second (on phase).")
    parser.add_argument("--grace", type=float, default=10.0, help="Seconds to wait for the last lines.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="owncdn-loglat-"))
    bench = Bench(work)
    results: dict = {}
    try:
        bench.start_control()
        for phase, ship, log in (("none", False, "off"), ("off", False, str(work / "access")), ("on", True, "off")):
            bench.start_edges(phase, ship, log)
            done: list = []
            prober = threading.Thread(target=bench.probe, args=(args.seconds, args.probe_rate, done)) if ship else None
            if prober:
                prober.start()
            pids = [p.pid for p in bench.edge_procs]
            control_pid = [bench.procs.procs[1].pid]
            cpu0, ccpu0 = cpu_seconds(pids), cpu_seconds(control_pid)
            results[f"rps_{phase}"] = rps = bench.load(args.seconds, args.connections)
            cpu, ccpu = cpu_seconds(pids) - cpu0, cpu_seconds(control_pid) - ccpu0
            results[f"edge_cpu_us_{phase}"] = cpu / (rps * args.seconds) * 1e6 if rps else None
            results[f"control_cpu_{phase}"] = ccpu / args.seconds
            if prober:
                prober.join()
                deadline = time.monotonic() + args.grace
                ids = [rid for rid, _ in done]
                while len(arrived := bench.arrival(ids)) < len(ids) and time.monotonic() < deadline:
                    time.sleep(0.5)
                delays = [arrived[rid] - at for rid, at in done if rid in arrived]
                results.update(probes=len(done), missing=len(done) - len(delays),
                               p50=pct(delays, 50) if delays else None, p99=pct(delays, 99) if delays else None,
                               max=max(delays) if delays else None,
                               mean=statistics.fmean(delays) if delays else None)
                total = bench.api.logs_query("SELECT count(*) FROM logs WHERE edge LIKE 'on-%'")["rows"][0][0]
                results["lines_stored"] = total
            bench.stop_edges()
    finally:
        bench.procs.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory: {work}")
    off, on = results.get("rps_off", 0.0), results.get("rps_on", 0.0)
    print(f"\n{EDGES} edges, wrk -t1 -c{args.connections} per edge for {args.seconds:g}s per phase, 1 KiB cache hits")
    print(f"throughput, no access log: {results.get('rps_none', 0):10.0f} requests/s (3 edges together)")
    print(f"throughput, log to a file: {off:10.0f} requests/s (shipping off)")
    print(f"throughput, shipping on  : {on:10.0f} requests/s ({(on / off - 1) * 100 if off else 0:+.1f}%)")
    print(f"edge CPU per request (the 3 edges' processes, from /proc): none {results['edge_cpu_us_none']:.1f} us,"
          f" file {results['edge_cpu_us_off']:.1f} us,"
          f" on {results['edge_cpu_us_on']:.1f} us ({(results['edge_cpu_us_on'] / results['edge_cpu_us_off'] - 1) * 100:+.1f}%)")
    print(f"control plane CPU while loaded: off {results['control_cpu_off']:.2f} cores, on {results['control_cpu_on']:.2f} cores"
          " (ingest shares this machine's cores with the edges and wrk)")
    if results.get("p50") is not None:
        print(f"request complete -> line in the control plane's analytics ({results['probes']} probes,"
              f" {results['missing']} missing): p50 {results['p50'] * 1000:.0f} ms, p99 {results['p99'] * 1000:.0f} ms,"
              f" max {results['max'] * 1000:.0f} ms")
        print(f"lines stored in the on phase: {results['lines_stored']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
