#!/usr/bin/env python3
"""Cache-hit throughput: owncdn's edge vs Varnish vs nginx proxy_cache.

Every peer runs pinned to core 0 (``taskset -c 0``) in front of the same nginx
origin (core 1). Its cache is warmed, then ``wrk`` (core 1) hammers one cached
object. We report requests/s, p99 latency and CPU time per request of the peer's
process tree (read from /proc, steadier than requests/s on a shared machine), and
for owncdn which tier served the hits (its `owncdn_edge_file_bodies_total` counter).

owncdn's tiers (`--tier`): `auto` (default) is a memory tier with a disk tier behind
it, as an edge is deployed: bodies of at least `--sendfile-min` bytes are served from
their disk-tier file with sendfile, smaller ones from memory (docs/cache-policy.md).
`memory` has no disk tier (every hit from memory); `disk` has a 512 KiB memory tier.

Stdlib only. Run from the project root with the venv's python:

    .venv/bin/python bench/edge_hits.py --quick
    .venv/bin/python bench/edge_hits.py --peers varnish,nginx --json out.json

See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from processes import Procs, cpu_seconds, free_port  # bench/processes.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PEER_CORE = "0"
LOAD_CORE = "1"  # wrk and the origin
WORKERS = 1  # --workers: processes (owncdn, nginx) on cores 0..N-1, wrk sharing them
TIER = "auto"  # --tier: auto (memory + disk, sizes decide), memory (no disk tier), disk
SENDFILE_MIN: int | None = None  # --sendfile-min: owncdn's edge.disk_cache.sendfile_min_size
ALL_PEERS = ("owncdn", "varnish", "nginx")


# --------------------------------------------------------------------------- utils


def die(msg: str) -> None:
    print(f"edge_hits: {msg}", file=sys.stderr)
    sys.exit(2)


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([kmg]?)i?b?", text.strip().lower())
    if not m:
        raise argparse.ArgumentTypeError(f"bad object size {text!r} (try 1k, 1m)")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)]


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def wait_http(port: int, path: str, proc: subprocess.Popen, log_path: Path,
              timeout: float = 20.0) -> None:
    """Wait until GET path answers 200, or fail with the tail of the process log."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            status, _, _ = http_get(port, path, timeout=1.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    state = f"exited with {proc.returncode}" if proc.poll() is not None else f"last: {last}"
    raise RuntimeError(f"{log_path.stem}: no 200 on :{port}{path} ({state})\n{tail}")


# ------------------------------------------------------------------------- origin


def nginx_common(prefix: Path) -> str:
    """Top of an nginx.conf that keeps everything inside prefix (not the system nginx)."""
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes {WORKERS if "nginx-cache" in str(prefix) else 1};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
"""


def nginx_http_common(prefix: Path) -> str:
    return f"""
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    # sendfile in 256k chunks, no tcp_nopush: on loopback with 50 connections this
    # measured ~150 us CPU per 1 MiB hit, vs 220-320 us with Debian's default
    # (sendfile on; tcp_nopush on) -- nginx gets its better setting.
    sendfile on;
    sendfile_max_chunk 256k;
    keepalive_requests 1000000;
    access_log {prefix}/access.log;
"""


def start_nginx(procs: Procs, prefix: Path, conf: str, port: int, core: str,
                ready_path: str) -> subprocess.Popen:
    prefix.mkdir(parents=True, exist_ok=True)
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(conf)
    log_path = prefix / "stdout.log"
    proc = procs.start(
        ["taskset", "-c", core, "nginx", "-p", str(prefix), "-c", str(conf_path),
         "-e", str(prefix / "error.log")],
        log_path,
    )
    wait_http(port, ready_path, proc, log_path)
    return proc


def write_objects(www: Path, sizes: dict[str, int]) -> None:
    www.mkdir(parents=True)
    for name, size in sizes.items():
        # Random-ish, incompressible bytes: a 64 KiB random block repeated.
        block = os.urandom(min(size, 65536))
        data = (block * (size // len(block) + 1))[:size]
        (www / name).write_bytes(data)


def start_origin(procs: Procs, tmp: Path, port: int, first_object: str) -> subprocess.Popen:
    prefix = tmp / "origin"
    conf = nginx_common(prefix) + f"""
http {{
    {nginx_http_common(prefix)}
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
        etag on;
        add_header Cache-Control "public, max-age=3600";
    }}
}}
"""
    return start_nginx(procs, prefix, conf, port, LOAD_CORE, f"/{first_object}")


# -------------------------------------------------------------------------- peers


@dataclass
class Peer:
    name: str
    port: int
    roots: list[subprocess.Popen]  # processes whose trees are charged for CPU
    admin: int | None = None  # owncdn's admin port (/metrics says which tier served)


def start_peer_nginx(procs: Procs, tmp: Path, origin_port: int, first_object: str) -> Peer:
    prefix = tmp / "nginx-cache"
    port = free_port()
    conf = nginx_common(prefix) + f"""
http {{
    {nginx_http_common(prefix)}
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=bench:16m max_size=1g
                     inactive=1h use_temp_path=off;
    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""
    proc = start_nginx(procs, prefix, conf, port, PEER_CORE, f"/{first_object}")
    return Peer("nginx", port, [proc])


def start_peer_varnish(procs: Procs, tmp: Path, origin_port: int, first_object: str,
                       ncsa: bool = True) -> Peer:
    prefix = tmp / "varnish"
    prefix.mkdir()
    vcl = prefix / "bench.vcl"
    vcl.write_text(f"""vcl 4.1;
backend origin {{
    .host = "127.0.0.1";
    .port = "{origin_port}";
}}
""")
    port = free_port()
    workdir = prefix / "work"
    log_path = prefix / "varnishd.log"
    # As root the default "unix" jail drops the worker to the varnish user; the
    # temp dirs are world-readable (0755) so that works. -j none as a fallback.
    argv = ["taskset", "-c", PEER_CORE, "varnishd", "-F", "-a", f"127.0.0.1:{port}",
            "-f", str(vcl), "-s", "malloc,256m", "-n", str(workdir),
            "-p", "thread_pools=1"]
    proc = procs.start(argv, log_path)
    try:
        wait_http(port, f"/{first_object}", proc, log_path)
    except RuntimeError:
        if os.geteuid() != 0:
            raise
        log("varnishd did not start with the default jail; retrying with -j none")
        procs.stop(proc)
        proc = procs.start(argv + ["-j", "none"], log_path)
        wait_http(port, f"/{first_object}", proc, log_path)
    roots = [proc]
    if ncsa:
        # Varnish logs to shared memory; varnishncsa turns that into an access log
        # file, like the other peers write. Its CPU is charged to varnish.
        roots.append(procs.start(
            ["taskset", "-c", PEER_CORE, "varnishncsa", "-n", str(workdir),
             "-w", str(prefix / "access.log")],
            prefix / "varnishncsa.log",
        ))
    return Peer("varnish", port, roots)


def start_peer_owncdn(procs: Procs, tmp: Path, origin_port: int, first_object: str) -> Peer:
    prefix = tmp / "owncdn"
    prefix.mkdir()
    config = prefix / "cdn.yaml"
    # memory: no disk tier; disk: the 1 MiB body cannot be in memory; auto: both tiers,
    # bodies of at least sendfile_min_size served from the disk tier with sendfile
    memory = "512KiB" if TIER == "disk" else "512MiB"
    threshold = f", sendfile_min_size: {SENDFILE_MIN}" if SENDFILE_MIN is not None else ""
    disk = "" if TIER == "memory" else f", disk_cache: {{path: {prefix}/disk, size: 1GiB{threshold}}}"
    config.write_text(f"""version: 1
edge: {{id: bench-edge, location: local, memory_cache: {memory}, access_log: {prefix}/owncdn-access.log{disk}}}
services:
  - name: bench
    hostnames: [127.0.0.1, localhost]
    origins: ["http://127.0.0.1:{origin_port}"]
""")
    port, admin = free_port(), free_port()
    log_path = prefix / "owncdn.log"
    proc = procs.start(
        ["taskset", "-c", PEER_CORE, str(VENV_BIN / "owncdn"), "edge", "--config", str(config),
         "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--workers", str(WORKERS),
         "--state-dir", str(prefix / "state")],
        log_path, cwd=ROOT,
    )
    wait_http(admin, "/healthz", proc, log_path, timeout=30.0)
    return Peer("owncdn", port, [proc], admin)


PEER_STARTERS = {
    "owncdn": start_peer_owncdn,
    "varnish": start_peer_varnish,
    "nginx": start_peer_nginx,
}


def is_hit(peer: str, headers: dict[str, str]) -> bool:
    if peer == "owncdn":
        return headers.get("x-cache", "").upper().startswith("HIT")
    if peer == "varnish":  # a hit carries two transaction ids: this one and the storer's
        return len(headers.get("x-varnish", "").split()) == 2
    return headers.get("x-cache-status", "").upper() == "HIT"


def warm(peer: Peer, obj: str, expected: bytes) -> None:
    for attempt in range(5):
        status, headers, body = http_get(peer.port, f"/{obj}")
        if status != 200 or body != expected:
            raise RuntimeError(f"{peer.name} /{obj}: HTTP {status}, {len(body)} bytes "
                               f"(expected 200, {len(expected)} bytes)")
        if attempt >= 1 and is_hit(peer.name, headers):
            return
    raise RuntimeError(f"{peer.name} /{obj}: still not a cache hit after 5 requests; "
                       f"headers: {headers}")


# --------------------------------------------------------------------------- wrk


@dataclass
class Result:
    peer: str
    object: str
    requests: int
    seconds: float
    rps: float
    p99_ms: float
    cpu_us_per_req: float
    errors: str
    served_from: str = ""  # owncdn: the tier that held the bodies sent during the run


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(out: str) -> tuple[int, float, float, float, str]:
    """-> requests, seconds, requests/s, p99 (ms), error lines."""
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\b", out, re.M)
    if not (m and rps and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    secs = float(m.group(2)) * _UNITS[m.group(3)] / 1000.0
    errors = "; ".join(line.strip() for line in out.splitlines()
                       if "Socket errors" in line or "Non-2xx" in line)
    return int(m.group(1)), secs, float(rps.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)], errors


def run_wrk(port: int, obj: str, connections: int, duration: float) -> str:
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}",
            f"-d{max(1, round(duration))}s", "--latency", f"http://127.0.0.1:{port}/{obj}"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stderr}{res.stdout}")
    return res.stdout


def file_bodies(peer: Peer) -> dict[str, float]:
    """owncdn's response bodies sent from a file so far, by tier (memory / disk)."""
    if peer.admin is None:
        return {}
    _, _, text = http_get(peer.admin, "/metrics")
    found = re.findall(rb'^owncdn_edge_file_bodies_total\{tier="(\w+)"\} ([\d.e+]+)$', text, re.M)
    return {tier.decode(): float(n) for tier, n in found}


def served_from(before: dict[str, float], after: dict[str, float], requests: int) -> str:
    """Which tier held the bodies of the measured run, from the edge's own counter.
    Bodies below 64 KiB are bytes in the memory tier and are not counted there."""
    if not after:
        return ""
    disk = after.get("disk", 0) - before.get("disk", 0)
    memory = after.get("memory", 0) - before.get("memory", 0)
    if not disk and not memory:
        return "memory"
    share = disk / max(requests, 1)  # counted to the end of the run: in-flight requests too
    if share >= 0.99 and not memory:
        return "disk (sendfile)"
    if memory / max(requests, 1) >= 0.99 and not disk:
        return "memory"
    return f"memory {memory / max(requests, 1):.0%}, disk {share:.0%}"


def measure(peer: Peer, obj: str, connections: int, duration: float) -> Result:
    run_wrk(peer.port, obj, connections, 2)  # warm-up, discarded
    pids = [p.pid for p in peer.roots]
    tiers = file_bodies(peer)
    before = cpu_seconds(pids)
    out = run_wrk(peer.port, obj, connections, duration)
    cpu = cpu_seconds(pids) - before
    requests, secs, rps, p99, errors = parse_wrk(out)
    per_req = cpu / requests * 1e6 if requests else float("nan")
    return Result(peer.name, obj, requests, secs, rps, p99, per_req, errors,
                  served_from(tiers, file_bodies(peer), requests))


# ------------------------------------------------------------------------- report


def ratios(results: list[Result], objects: list[str]) -> dict[str, dict[str, float]]:
    by = {(r.peer, r.object): r for r in results}
    out: dict[str, dict[str, float]] = {}
    for other in ("varnish", "nginx"):
        for obj in objects:
            mine, theirs = by.get(("owncdn", obj)), by.get((other, obj))
            if mine and theirs and theirs.rps:
                out.setdefault(f"owncdn/{other}", {})[obj] = mine.rps / theirs.rps
    return out


def median_results(runs: list[Result]) -> list[Result]:
    """One Result per (peer, object): the median of each figure over the rounds."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in runs:
        groups.setdefault((r.peer, r.object), []).append(r)
    out = []
    for (peer, obj), rs in groups.items():
        errors = "; ".join(sorted({r.errors for r in rs if r.errors}))
        out.append(Result(peer, obj, sum(r.requests for r in rs), sum(r.seconds for r in rs),
                          statistics.median(r.rps for r in rs),
                          statistics.median(r.p99_ms for r in rs),
                          statistics.median(r.cpu_us_per_req for r in rs), errors,
                          "; ".join(sorted({r.served_from for r in rs if r.served_from}))))
    return out


def report(runs: list[Result], objects: list[str], peers: list[str]) -> dict:
    results = median_results(runs)
    rounds = max((sum(1 for r in runs if (r.peer, r.object) == (x.peer, x.object))
                  for x in results), default=0)
    print()
    if rounds > 1:
        print(f"medians over {rounds} rounds")
    print(f"{'peer':<8} {'object':<7} {'requests/s':>11} {'p99':>10} {'CPU us/req':>11}  notes")
    for r in results:
        notes = "; ".join(x for x in (f"served from {r.served_from}" if r.served_from else "", r.errors) if x)
        print(f"{r.peer:<8} {r.object:<7} {r.rps:>11,.0f} {r.p99_ms:>8.2f}ms "
              f"{r.cpu_us_per_req:>11.1f}  {notes}")
    rat = ratios(results, objects)
    print()
    for name, per_obj in rat.items():
        print(f"{name:<16} " + "  ".join(f"{o}: {v:.2f}x" for o, v in per_obj.items()))
    wanted = [(o, obj) for o in ("varnish", "nginx") for obj in objects]
    complete = "owncdn" in peers and all(
        obj in rat.get(f"owncdn/{o}", {}) for o, obj in wanted)
    if not complete:
        met = None
        print("target (owncdn >= 1.0x varnish and nginx on every object): not measured "
              "(needs owncdn, varnish and nginx results)")
    else:
        met = all(rat[f"owncdn/{o}"][obj] >= 1.0 for o, obj in wanted)
        print(f"target (owncdn >= 1.0x varnish and nginx on every object): "
              f"{'MET' if met else 'NOT MET'}")
    return {"results": [asdict(r) for r in results], "runs": [asdict(r) for r in runs],
            "ratios": rat, "target_met": met}


# --------------------------------------------------------------------------- main


def ensure_tools(peers: list[str]) -> None:
    needed = {"wrk": "wrk", "nginx": "nginx", "taskset": "util-linux"}
    if "varnish" in peers:
        needed["varnishd"] = "varnish"
        needed["varnishncsa"] = "varnish"
    missing = [tool for tool in needed if not shutil.which(tool)]
    if missing:
        if os.geteuid() != 0:
            die(f"missing {', '.join(missing)}; install them "
                f"(sudo apt-get install -y varnish nginx wrk) or run as root")
        log(f"installing {', '.join(missing)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        pkgs = sorted({needed[t] for t in missing} | {"varnish", "nginx", "wrk"})
        if subprocess.run(["apt-get", "install", "-y", *pkgs], env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=False)
            subprocess.run(["apt-get", "install", "-y", *pkgs], env=env, check=True)
        still = [tool for tool in needed if not shutil.which(tool)]
        if still:
            die(f"still missing after apt-get: {', '.join(still)}")
    if "owncdn" in peers and not (VENV_BIN / "owncdn").exists():
        die(f"{VENV_BIN / 'owncdn'} not found: `pip install -e .` into the venv, "
            f"or leave owncdn out with --peers varnish,nginx")
    if os.cpu_count() and os.cpu_count() < 2:
        log("warning: fewer than 2 cores; peer and load generator share a core")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    ap.add_argument("--objects", default="1k,1m", help="object sizes, comma separated (1k,1m)")
    ap.add_argument("--peers", default=",".join(ALL_PEERS), help="owncdn,varnish,nginx")
    ap.add_argument("--quick", action="store_true", help="3 s runs")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every (peer, object) run this many times, peers taking "
                         "turns, and report medians (1)")
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON")
    ap.add_argument("--no-varnishncsa", action="store_true",
                    help="do not run varnishncsa (varnish then writes no access log file)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, configs)")
    ap.add_argument("--workers", type=int, default=1,
                    help="owncdn and nginx processes (1); with 2 every peer and wrk share both cores")
    ap.add_argument("--tier", choices=("auto", "memory", "disk"), default="auto",
                    help="owncdn's tiers: auto (memory + disk; bodies of at least --sendfile-min from "
                         "disk with sendfile, the rest from memory), memory (no disk tier), disk "
                         "(a 512 KiB memory tier)")
    ap.add_argument("--sendfile-min", type=parse_size, default=None, metavar="SIZE",
                    help="owncdn's edge.disk_cache.sendfile_min_size (its default when not given)")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration = 3.0
    args.objects = [o.strip().lower() for o in args.objects.split(",") if o.strip()]
    args.sizes = {o: parse_size(o) for o in args.objects}
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    bad = [p for p in args.peers if p not in ALL_PEERS]
    if bad:
        ap.error(f"unknown peer(s) {', '.join(bad)}; choose from {', '.join(ALL_PEERS)}")
    return args


def run(args: argparse.Namespace, procs: Procs,
        tmp: Path) -> tuple[list[Result], list[str]]:
    write_objects(tmp / "www", args.sizes)
    expected = {o: (tmp / "www" / o).read_bytes() for o in args.objects}
    origin_port = free_port()
    start_origin(procs, tmp, origin_port, args.objects[0])
    log(f"origin nginx on 127.0.0.1:{origin_port} (core {LOAD_CORE})")
    results, failed = [], []
    for rnd in range(args.rounds):
        # Peers take turns within a round, so slow phases of a shared machine
        # hit all of them rather than one.
        round_dir = tmp / f"round{rnd + 1}"
        round_dir.mkdir()
        for name in args.peers:
            if name in failed:
                continue
            try:
                results.extend(bench_peer(name, args, procs, round_dir, origin_port, expected))
            except RuntimeError as exc:  # one broken peer must not hide the others
                log(f"{name} FAILED: {exc}")
                failed.append(name)
    return results, failed


def bench_peer(name: str, args: argparse.Namespace, procs: Procs, tmp: Path,
               origin_port: int, expected: dict[str, bytes]) -> list[Result]:
    kwargs = {"ncsa": not args.no_varnishncsa} if name == "varnish" else {}
    peer = PEER_STARTERS[name](procs, tmp, origin_port, args.objects[0], **kwargs)
    log(f"{name} on 127.0.0.1:{peer.port} (core {PEER_CORE})")
    results = []
    try:
        for obj in args.objects:
            warm(peer, obj, expected[obj])
            res = measure(peer, obj, args.connections, args.duration)
            log(f"{name} {obj}: {res.rps:,.0f} req/s, p99 {res.p99_ms:.2f} ms, "
                f"{res.cpu_us_per_req:.1f} us CPU/req {res.served_from} {res.errors}")
            results.append(res)
    finally:
        for proc in peer.roots:
            procs.stop(proc)
    return results


def main(argv: list[str] | None = None) -> int:
    global PEER_CORE, LOAD_CORE, WORKERS, TIER, SENDFILE_MIN
    args = parse_args(argv)
    WORKERS, TIER, SENDFILE_MIN = args.workers, args.tier, args.sendfile_min
    if WORKERS > 1:
        PEER_CORE = LOAD_CORE = f"0-{min(WORKERS, os.cpu_count() or 1) - 1}"
    ensure_tools(args.peers)
    # SIGTERM / SIGHUP -> SystemExit so the finally below still cleans up.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="owncdn-bench-"))
    tmp.chmod(0o755)  # nginx workers / varnish's jailed child must read it
    try:
        results, failed = run(args, procs, tmp)
    except RuntimeError as exc:  # the origin did not start
        die(str(exc))
    finally:
        procs.close()
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = report(results, args.objects, args.peers)
    summary["failed_peers"] = failed
    summary["settings"] = {"duration": args.duration, "connections": args.connections,
                           "rounds": args.rounds, "tier": args.tier, "sendfile_min": args.sendfile_min,
                           "objects": args.objects, "peers": args.peers,
                           "varnishncsa": not args.no_varnishncsa}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        log(f"wrote {args.json}")
    if failed:
        log(f"peer(s) that did not run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
