#!/usr/bin/env python3
"""Log shipping: what it costs the edges at saturation, and how soon a request's line is
queryable in the control plane under a steady load.

The control plane (`owncdn control`, no health monitor) and 3 edges (`owncdn edge
--control`, each on its own 127.0.1.N) run as processes in front of a small origin
(`python -m http.server` serving a 1 KiB file, cached by the edges for an hour).

1. Throughput at saturation, three phases, each with fresh edges and state directories:

     none   `edge.logs.ship: false`, `--access-log off`: no logging work at all;
     file   `edge.logs.ship: false`, `--access-log <file>`: every line made and written to a file;
     on     `edge.logs.ship: true`, `--access-log off`: every line made, spooled (fsync per batch),
            compressed and shipped, and ingested by the control plane while the load runs.

   "Shipping off" is the `file` phase: the cost of shipping is `on` versus `file` (both make
   every line); `none` shows what making the lines costs at all. One `wrk -t1 -c<connections>`
   per edge hammers the cached object for `--seconds`; the summed requests/s is the
   throughput, and the edges' CPU time (user + sys from /proc) per request is the edge's own
   cost. Everything shares the machine's cores, as in a one-machine `owncdn up`, so the `on`
   throughput also pays for the control plane's ingest (in a fleet that runs on another
   machine); the edges' CPU per request is what shipping costs the edge itself, roughly:
   it also grows when an edge gets less of the CPU, because each wake-up of its event loop
   then serves fewer requests (pinning the edges to one core and wrk and the control plane
   to the other was tried: then wrk is the bottleneck, the edges idle part of the time, and
   their CPU per request rose by a quarter with shipping on for that reason). After the `on` load the bench waits until the control plane holds
   every line the edges made and prints that catch-up time and the control plane's CPU
   per stored line.

2. Latency under a steady load: the `on` edges stay up; one `wrk` per edge sends a fixed
   `--rate` requests/s (default 1000 per edge, 3000 lines/s into the control plane: a busy
   site's traffic, a few percent of what the edges serve here when saturated, so no queue
   builds up and the figure shows the pipeline's own delays: the access log's batch
   timer, the spool's fsync, compression, the POST and the control plane's commit). At
   saturation the lines arrive as fast as the edges can make them, any queue grows for as
   long as the load lasts, and a delay percentile would only say how long the run was. A
   probe sends `--probe-rate` requests/s more (round robin over the edges), notes each one's
   X-Request-Id and the wall-clock time its response was complete, and a watcher asks the
   control plane (`POST /v1/logs/query`) every `--poll` seconds which of them it can find:
   the delay is from the response to the first answer that had the line (so it includes up
   to one poll interval). Also printed: the same delays to the `received` stamp the control
   plane's writer puts on a batch before it commits it.

Everything shares this machine's 2 cores with whatever else runs on it, so the numbers
are a sanity check, not a measurement of a production fleet.

    .venv/bin/python bench/log_latency.py [--seconds 10] [--connections 16] [--rate 1000]
        [--steady-seconds 10] [--probe-rate 20] [--rounds 1]

With `--rounds N` the three saturation phases run N times, one round after the other, and
each round's figures and their medians are printed as well: on a shared machine the other
load moves between phases, and one round's `on` versus `file` ratio moved by 10-15 points
from run to run with the same code.

`--ingest-yield S` starts the control plane with `--ingest-yield S` (docs/logs.md: while
the machine's CPUs are busy its ingest keeps to a tenth of a core, for at most S seconds in
a row; 0: never); without it the control plane's default applies. Run it both ways to see
what yielding moves: throughput while loaded against the catch-up time afterwards (the
control plane's CPU per stored line and the total CPU per request are printed either way).
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
PACE = "function delay()\n  return {ms}\nend\n"  # wrk: each connection waits this many ms before a request


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
    def __init__(self, work: Path, ingest_yield: float | None = None) -> None:
        self.work = work
        self.ingest_yield = ingest_yield  # --ingest-yield of the control plane (None: its default)
        self.procs = Procs()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = work / "control"
        self.origin_port = free_port()
        self.edges: list[tuple[str, int]] = []
        self.admins: list[int] = []
        self.edge_procs = []
        self.control_proc = None

    def start_control(self):
        from owncdn.client import Client

        (self.work / "origin").mkdir()
        (self.work / "origin" / "1k.bin").write_bytes(b"x" * 1024)
        self.procs.start([sys.executable, "-m", "http.server", str(self.origin_port), "--bind", "127.0.0.1",
                          "--directory", str(self.work / "origin")], self.work / "origin.log")
        self.control_proc = self.procs.start(
            [*OWNCDN, "control", "--listen", f"127.0.0.1:{self.port}", "--state-dir", str(self.state),
             "--no-health", "--no-acme",
             *(["--ingest-yield", f"{self.ingest_yield:g}"] if self.ingest_yield is not None else [])],
            self.work / "control.log")
        wait_until(lambda: (self.state / "admin.token").exists(), 30, "the control plane")
        self.api = Client(self.url, (self.state / "admin.token").read_text().strip(), timeout=30)
        wait_until(lambda: self.api.health(), 30, "the control plane's API")
        self.api.add_version("production", SERVICE.format(ship="true", origin=self.origin_port))

    def start_edges(self, phase: str, ship: bool, access_log: str = "off") -> None:
        config = self.work / f"{phase}.yaml"
        config.write_text(SERVICE.format(ship="true" if ship else "false", origin=self.origin_port))
        bootstrap = (self.state / "bootstrap.token").read_text().strip()
        self.edges, self.admins = [], []
        for i in range(EDGES):
            host, port, admin = f"127.0.1.{i + 1}", free_port(), free_port()
            log = access_log if access_log == "off" else f"{access_log}-{i}.log"
            self.edge_procs.append(self.procs.start(
                [*OWNCDN, "edge", "--config", str(config), "--control", self.url, "--token", bootstrap,
                 "--listen", f"{host}:{port}", "--admin", f"127.0.0.1:{admin}", "--id", f"{phase}-{i}",
                 "--location", f"loc{i}", "--access-log", log, "--state-dir", str(self.work / f"{phase}-edge-{i}")],
                self.work / f"{phase}-edge-{i}.log"))
            self.edges.append((host, port))
            self.admins.append(admin)
        for host, port in self.edges:
            wait_until(lambda: get(host, port)[0] == 200, 30, f"edge {host}:{port} serving")

    def stop_edges(self) -> None:
        for proc in self.edge_procs:
            self.procs.stop(proc)
        self.edge_procs = []

    def wrk(self, seconds: float, connections: int, script: Path | None = None) -> tuple[float, int]:
        """Requests/s and requests of the 3 edges together, one wrk each."""
        extra = ["-s", str(script)] if script else []
        runs = [subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", *extra,
                                  "-H", "Host: bench.test", f"http://{host}:{port}/1k.bin"],
                                 stdout=subprocess.PIPE, text=True)
                for host, port in self.edges]
        rate, count = 0.0, 0
        for run in runs:
            out, _ = run.communicate()
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            rate += float(m.group(1)) if m else 0.0
            m = re.search(r"(\d+) requests in", out)
            count += int(m.group(1)) if m else 0
        return rate, count

    def edge_logs(self) -> list[dict]:
        """The control sink's counters of each edge (admin /stats, edge/logship.py)."""
        out = []
        for admin in self.admins:
            conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
            try:
                conn.request("GET", "/stats")
                out.append(json.loads(conn.getresponse().read())["logs"]["control"])
            finally:
                conn.close()
        return out

    def stored(self, phase: str) -> int:
        return self.api.logs_query(f"SELECT count(*) FROM logs WHERE edge LIKE '{phase}-%'")["rows"][0][0]

    def caught_up(self, phase: str, expect: int, timeout: float) -> tuple[float | None, int]:
        """Seconds until the control plane holds at least `expect` lines of the phase's edges,
        which have nothing left in their spools (None if not within `timeout`), and the lines stored."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if (n := self.stored(phase)) >= expect and all(s["spooled_lines"] == 0 for s in self.edge_logs()):
                return time.monotonic() - start, n
            time.sleep(0.2)
        return None, self.stored(phase)

    def probe(self, seconds: float, rate: float, done: list) -> None:
        """Requests at `rate`/s, round robin; (request id, completed at) into `done`."""
        start = time.monotonic()
        i = 0
        while (now := time.monotonic()) < start + seconds:
            host, port = self.edges[i % len(self.edges)]
            try:
                status, rid = get(host, port)
                if status == 200 and rid:
                    done.append((rid, time.time()))
            except OSError:
                pass
            i += 1
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        del now

    def watch(self, done: list, seen: dict, stop: threading.Event, poll: float, grace: float) -> None:
        """Ask the control plane every `poll` s which probed lines it has; first answer time into `seen`."""
        deadline = None
        since = int(time.time() * 1e6) - 1_000_000  # row groups stored before the steady phase are skipped
        while True:
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + grace
            waiting = [rid for rid, _ in list(done) if rid not in seen]
            if waiting:
                sql = (f"SELECT request_id FROM logs WHERE received > make_timestamp({since}) AND request_id IN ("
                       + ",".join(f"'{i}'" for i in waiting[:2000]) + ")")
                try:
                    rows = self.api.logs_query(sql, limit=10_000)["rows"]
                except OSError:
                    rows = []
                now = time.time()
                for (rid,) in rows:
                    seen.setdefault(rid, now)
            elif deadline is not None:
                return
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(poll)

    def received(self, ids: list[str]) -> dict[str, float]:
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


def saturate(bench: Bench, args, results: dict, round_: int = 1) -> None:
    work = bench.work
    suffix = "" if round_ == 1 else str(round_)  # each round's edges have their own ids (and state)
    for phase, ship, log in (("none", False, "off"), ("file", False, str(work / "access")), ("on", True, "off")):
        bench.start_edges(phase + suffix, ship, log if log == "off" else f"{log}{suffix}")
        pids = [p.pid for p in bench.edge_procs]
        cpu0, ccpu0 = cpu_seconds(pids), cpu_seconds([bench.control_proc.pid])
        rps, requests = bench.wrk(args.seconds, args.connections)
        cpu, ccpu = cpu_seconds(pids) - cpu0, cpu_seconds([bench.control_proc.pid]) - ccpu0
        results[f"rps_{phase}"] = rps
        results[f"edge_cpu_us_{phase}"] = cpu / requests * 1e6 if requests else None
        results[f"control_cores_{phase}"] = ccpu / args.seconds
        if ship:
            lag, stored = bench.caught_up(phase + suffix, requests, args.catch_up)  # wrk counts completed responses
            ccpu = cpu_seconds([bench.control_proc.pid]) - ccpu0
            results.update(catch_up_s=lag, lines_stored=stored, requests_on=requests,
                           control_cpu_us_per_line=ccpu / stored * 1e6 if stored else None,
                           # all of shipping's work, also what the edges and the control plane did after the load
                           edge_cpu_us_on_total=(cpu_seconds(pids) - cpu0) / requests * 1e6 if requests else None,
                           control_cpu_us_on_total=ccpu / requests * 1e6 if requests else None)
        else:
            bench.stop_edges()


def steady(bench: Bench, args, results: dict) -> None:
    """The `on` edges under `args.rate` requests/s each, plus the probe and the watcher."""
    conns = max(1, min(50, int(args.rate // 100)))
    script = bench.work / "pace.lua"
    script.write_text(PACE.format(ms=max(1, round(conns * 1000 / args.rate))))
    done: list = []
    seen: dict = {}
    stop = threading.Event()
    prober = threading.Thread(target=bench.probe, args=(args.steady_seconds, args.probe_rate, done))
    watcher = threading.Thread(target=bench.watch, args=(done, seen, stop, args.poll, args.grace))
    ccpu0 = cpu_seconds([bench.control_proc.pid])
    prober.start()
    watcher.start()
    rate, _ = bench.wrk(args.steady_seconds, conns, script)
    prober.join()
    stop.set()
    results["control_cores_steady"] = (cpu_seconds([bench.control_proc.pid]) - ccpu0) / args.steady_seconds
    watcher.join()
    results["steady_rate"] = rate
    delays = [seen[rid] - at for rid, at in done if rid in seen]
    stamped = bench.received([rid for rid, _ in done])
    writer = [stamped[rid] - at for rid, at in done if rid in stamped]
    results.update(probes=len(done), missing=len(done) - len(delays),
                   p50=pct(delays, 50) if delays else None, p99=pct(delays, 99) if delays else None,
                   max=max(delays) if delays else None, mean=statistics.fmean(delays) if delays else None,
                   writer_p50=pct(writer, 50) if writer else None, writer_p99=pct(writer, 99) if writer else None)


def report(args, results: dict) -> None:
    off, on = results.get("rps_file", 0.0), results.get("rps_on", 0.0)
    cpu = {k: results.get(f"edge_cpu_us_{k}") or 0.0 for k in ("none", "file", "on")}
    pace = "its default" if args.ingest_yield is None else f"{args.ingest_yield:g}"
    print(f"\n1. saturation: {EDGES} edges, wrk -t1 -c{args.connections} per edge for {args.seconds:g}s per phase,"
          f" 1 KiB cache hits (edges, wrk and the control plane share the cores; control --ingest-yield {pace})")
    print(f"throughput, no access log: {results.get('rps_none', 0):10.0f} requests/s (3 edges together)")
    print(f"throughput, log to a file: {off:10.0f} requests/s (shipping off)")
    print(f"throughput, shipping on  : {on:10.0f} requests/s ({(on / off - 1) * 100 if off else 0:+.1f}% vs file)")
    print(f"edge CPU per request (user+sys of the 3 edges, from /proc): none {cpu['none']:.2f} us,"
          f" file {cpu['file']:.2f} us, on {cpu['on']:.2f} us"
          f" ({(cpu['on'] / cpu['file'] - 1) * 100 if cpu['file'] else 0:+.1f}% vs file)")
    lag = results.get("catch_up_s")
    print(f"control plane while loaded: {results.get('control_cores_on', 0):.2f} cores;"
          f" {results.get('lines_stored', 0)} lines stored, "
          + (f"all of them {lag:.1f} s after the load ended" if lag is not None
             else f"NOT all within {args.catch_up:g} s after the load ended")
          + f"; {results.get('control_cpu_us_per_line') or 0:.2f} us control-plane CPU per line (HTTP, unpacking, DuckDB)")
    if results.get("edge_cpu_us_on_total") is not None:
        total = results["edge_cpu_us_on_total"] + results["control_cpu_us_on_total"]
        print(f"CPU per request with shipping, until every line was stored: edges {results['edge_cpu_us_on_total']:.2f} us"
              f" + control plane {results['control_cpu_us_on_total']:.2f} us = {total:.2f} us"
              f" (edges with a log file: {cpu['file']:.2f} us; {(total / cpu['file'] - 1) * 100 if cpu['file'] else 0:+.1f}%)")
    if "p50" not in results:
        return
    print(f"\n2. steady load: {results['steady_rate']:.0f} requests/s over the 3 edges (--rate {args.rate:g} each)"
          f" for {args.steady_seconds:g}s, + {args.probe_rate:g} probes/s;"
          f" control plane {results['control_cores_steady']:.2f} cores (with the watcher's queries)")
    if results.get("p50") is not None:
        print(f"request complete -> line queryable in the control plane ({results['probes']} probes,"
              f" {results['missing']} missing, polled every {args.poll * 1000:.0f} ms):"
              f" p50 {results['p50'] * 1000:.0f} ms, p99 {results['p99'] * 1000:.0f} ms, max {results['max'] * 1000:.0f} ms")
    if results.get("writer_p50") is not None:
        print(f"request complete -> the writer's `received` stamp (before its commit):"
              f" p50 {results['writer_p50'] * 1000:.0f} ms, p99 {results['writer_p99'] * 1000:.0f} ms")


def report_rounds(rounds: list[dict]) -> None:
    """Each round's saturation figures (section 1 above shows the last round's), and the medians."""
    if len(rounds) < 2:
        return
    rows = [(r.get("rps_file") or 0.0, r.get("rps_on") or 0.0, r.get("edge_cpu_us_file") or 0.0,
             r.get("edge_cpu_us_on") or 0.0, r.get("control_cpu_us_per_line") or 0.0) for r in rounds]
    print(f"\nsaturation, {len(rounds)} rounds (file, on requests/s; edge CPU us per request file, on;"
          " control-plane CPU us per line):")
    for n, (file_, on, cf, con, ctl) in enumerate(rows, 1):
        print(f"  round {n}: {file_:8.0f} {on:8.0f} ({(on / file_ - 1) * 100 if file_ else 0:+.1f}%),"
              f" edge {cf:.2f} {con:.2f} ({(con / cf - 1) * 100 if cf else 0:+.1f}%), control {ctl:.2f}")
    ratio = statistics.median((on / file_ - 1) * 100 for file_, on, *_ in rows if file_)
    edge = statistics.median((con / cf - 1) * 100 for _, _, cf, con, _ in rows if cf)
    print(f"  median: shipping on {ratio:+.1f}% throughput vs file, edge CPU per request {edge:+.1f}%,"
          f" control plane {statistics.median(r[4] for r in rows):.2f} us per line")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="Load per saturation phase.")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections per edge at saturation.")
    parser.add_argument("--rate", type=float, default=1000.0, help="Steady requests/s per edge (latency phase).")
    parser.add_argument("--steady-seconds", type=float, default=10.0, help="Length of the steady phase.")
    parser.add_argument("--probe-rate", type=float, default=20.0, help="Probe requests per second (steady phase).")
    parser.add_argument("--poll", type=float, default=0.05, help="Seconds between the watcher's queries.")
    parser.add_argument("--grace", type=float, default=10.0, help="Seconds to wait for the last probed lines.")
    parser.add_argument("--catch-up", type=float, default=60.0, help="Most seconds to wait for the on phase's lines.")
    parser.add_argument("--rounds", type=int, default=1,
                        help="Saturation rounds (none, file, on each); with more than one, each round's"
                             " figures and their medians are printed too (the machine's other load moves"
                             " between phases: the ratio of one round is only as steady as that load).")
    parser.add_argument("--ingest-yield", type=float, default=None,
                        help="The control plane's --ingest-yield (seconds its ingest keeps to a tenth of a core"
                             " while the machine is busy; 0: never); default: the control plane's default.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="owncdn-loglat-"))
    bench = Bench(work, args.ingest_yield)
    results: dict = {}
    rounds: list[dict] = []  # the saturation figures of each round
    try:
        bench.start_control()
        for round_ in range(1, args.rounds + 1):
            if round_ > 1:
                bench.stop_edges()  # the last round's `on` edges stay up for the steady phase
            results = {}
            saturate(bench, args, results, round_)
            rounds.append(results)
        results = dict(results)
        steady(bench, args, results)
        bench.stop_edges()
    finally:
        bench.procs.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory: {work}")
    report(args, results)
    report_rounds(rounds)
    if args.json:
        args.json.write_text(json.dumps({**results, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
