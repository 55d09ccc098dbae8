#!/usr/bin/env python3
"""HTTPS cache-hit throughput: owncdn's edge vs nginx proxy_cache, same certificate.

Two measurements per peer and object, both on a cached object:

* HTTP/1.1 over TLS: ``wrk`` (keep-alive connections, one handshake each);
* HTTP/2 over TLS: ``h2load`` (Debian's nghttp2-client), several streams per connection;
* ``h1new`` (with ``--protocols h1new``): HTTP/1.1 over TLS with ``Connection: close``,
  so every request pays a full TLS 1.3 handshake: the cost a first visit sees.

Both peers hold the same ECDSA P-256 certificate (made by owncdn's test CA; the leaf
alone, as the edge serves it) and run
pinned to core 0 (``taskset -c 0``) in front of the same nginx origin; the load
generator runs on core 1. Reported: requests/s, CPU time per request of the peer's
process tree (read from /proc, steadier than requests/s on a shared machine), and
owncdn / nginx ratios. Run from the project root with the venv's python:

    .venv/bin/python bench/https_hits.py --quick
    .venv/bin/python bench/https_hits.py --objects 1k,1m --duration 10 --json out.json

Reuses the origin and process handling of bench/edge_hits.py and bench/processes.py.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import edge_hits  # bench/edge_hits.py, beside this script
from processes import Procs, cpu_seconds, free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PEER_CORE, LOAD_CORE = "0", "1"
NAME = "bench.test"
PEERS = ("owncdn", "nginx")
PROTOCOLS = ("h1", "h2")
ALL_PROTOCOLS = PROTOCOLS + ("h1new",)


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


@dataclass
class Peer:
    name: str
    port: int  # the TLS port
    roots: list[subprocess.Popen]


@dataclass
class Result:
    peer: str
    protocol: str
    object: str
    requests: int
    seconds: float
    rps: float
    cpu_us_per_req: float
    notes: str


# ------------------------------------------------------------------- certificate


def make_certificate(tmp: Path) -> tuple[Path, Path]:
    """The leaf alone: what the edge serves of a leaf + CA chain (edge/tls.py rule 7), so
    both peers send the same bytes."""
    sys.path.insert(0, str(ROOT / "src"))
    from owncdn.edge.tls import served_chain
    from owncdn.testing.certs import TestCA

    leaf = TestCA("owncdn bench CA").issue([NAME, "localhost"])
    cert, key = leaf.write(tmp, "bench")
    cert.write_text(served_chain(leaf.cert_pem))
    return cert, key


def https_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a bench: the certificate is ours, checked by the tests
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_https(port: int, path: str, proc: subprocess.Popen, log_path: Path, timeout: float = 30.0) -> None:
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status, _, _ = https_get(port, path, timeout=1.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, ssl.SSLError) as exc:
            last = str(exc)
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise RuntimeError(f"{log_path.stem}: no 200 over https on :{port}{path} ({last})\n{tail}")


# -------------------------------------------------------------------------- peers


def start_owncdn(procs: Procs, tmp: Path, origin_port: int, first: str, cert: Path, key: Path) -> Peer:
    prefix = tmp / "owncdn"
    prefix.mkdir()
    config = prefix / "cdn.yaml"
    config.write_text(f"""version: 1
edge: {{id: bench-edge, location: local, memory_cache: 512MiB, access_log: {prefix}/owncdn-access.log}}
services:
  - name: bench
    hostnames: [127.0.0.1, localhost, {NAME}]
    origins: ["http://127.0.0.1:{origin_port}"]
""")
    port, tls_port, admin = free_port(), free_port(), free_port()
    log_path = prefix / "owncdn.log"
    proc = procs.start(
        ["taskset", "-c", PEER_CORE, str(VENV_BIN / "owncdn"), "edge", "--config", str(config),
         "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
         "--tls-listen", f"127.0.0.1:{tls_port}", "--cert", str(cert), "--key", str(key),
         "--state-dir", str(prefix / "state")],
        log_path, cwd=ROOT,
    )
    wait_https(tls_port, f"/{first}", proc, log_path)
    return Peer("owncdn", tls_port, [proc])


def start_nginx(procs: Procs, tmp: Path, origin_port: int, first: str, cert: Path, key: Path) -> Peer:
    prefix = tmp / "nginx-cache"
    prefix.mkdir()
    port = free_port()
    conf = edge_hits.nginx_common(prefix) + f"""
http {{
    {edge_hits.nginx_http_common(prefix)}
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=bench:16m max_size=1g inactive=1h use_temp_path=off;
    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        http2_max_concurrent_streams 128;
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
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(conf)
    log_path = prefix / "stdout.log"
    proc = procs.start(["taskset", "-c", PEER_CORE, "nginx", "-p", str(prefix), "-c", str(conf_path),
                        "-e", str(prefix / "error.log")], log_path)
    wait_https(port, f"/{first}", proc, log_path)
    return Peer("nginx", port, [proc])


STARTERS = {"owncdn": start_owncdn, "nginx": start_nginx}


def warm(peer: Peer, obj: str, expected: bytes) -> None:
    for attempt in range(5):
        status, headers, body = https_get(peer.port, f"/{obj}")
        if status != 200 or body != expected:
            raise RuntimeError(f"{peer.name} /{obj}: HTTP {status}, {len(body)} bytes")
        hit = headers.get("x-cache", headers.get("x-cache-status", "")).upper().startswith("HIT")
        if attempt >= 1 and hit:
            return
    raise RuntimeError(f"{peer.name} /{obj}: not a cache hit after 5 requests: {headers}")


# ------------------------------------------------------------------------ load


def run_load(protocol: str, port: int, obj: str, connections: int, streams: int, duration: float) -> str:
    url = f"https://127.0.0.1:{port}/{obj}"
    seconds = max(1, round(duration))
    if protocol == "h1":
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    elif protocol == "h1new":
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", "Connection: close", url]
    else:
        argv = ["h2load", "-t1", f"-c{connections}", f"-m{streams}", f"-D{seconds}", "--warm-up-time=1", url]
    res = subprocess.run(["taskset", "-c", LOAD_CORE, *argv], capture_output=True, text=True,
                         timeout=duration + 60)
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({res.returncode}): {res.stderr}{res.stdout}")
    return res.stdout


def parse_h2load(out: str) -> tuple[int, float, float, str]:
    """-> requests done, seconds, requests/s, notes."""
    fin = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
    reqs = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (fin and reqs and codes):
        raise RuntimeError(f"cannot parse h2load output:\n{out}")
    secs = float(fin[1]) * {"ms": 0.001, "s": 1.0, "us": 1e-6}.get(fin[2], 1.0)
    notes = "" if int(reqs[5]) == 0 and int(codes[1]) == int(reqs[3]) else \
        f"failed {reqs[5]}, non-2xx {int(reqs[3]) - int(codes[1])}"
    return int(reqs[3]), secs, float(fin[3]), notes


def measure(peer: Peer, protocol: str, obj: str, args) -> Result:
    run_load(protocol, peer.port, obj, args.connections, args.streams, 2)  # warm-up, discarded
    pids = [p.pid for p in peer.roots]
    before = cpu_seconds(pids)
    out = run_load(protocol, peer.port, obj, args.connections, args.streams, args.duration)
    cpu = cpu_seconds(pids) - before
    if protocol in ("h1", "h1new"):
        requests, secs, rps, _p99, notes = edge_hits.parse_wrk(out)
    else:
        requests, secs, rps, notes = parse_h2load(out)
    per_req = cpu / requests * 1e6 if requests else float("nan")
    return Result(peer.name, protocol, obj, requests, secs, rps, per_req, notes)


# ------------------------------------------------------------------------ report


def report(results: list[Result]) -> dict:
    print()
    print(f"{'peer':<8} {'proto':<8} {'object':<7} {'requests/s':>11} {'CPU us/req':>11}  notes")
    for r in results:
        label = {"h2": "h2", "h1new": "h1.1 new"}.get(r.protocol, "h1.1")
        print(f"{r.peer:<8} {label:<8} {r.object:<7} {r.rps:>11,.0f} {r.cpu_us_per_req:>11.1f}  {r.notes}")
    by = {(r.peer, r.protocol, r.object): r for r in results}
    ratios: dict[str, float] = {}
    for (peer, protocol, obj), mine in by.items():
        theirs = by.get(("nginx", protocol, obj))
        if peer == "owncdn" and theirs and theirs.rps:
            ratios[f"{protocol}/{obj}"] = mine.rps / theirs.rps
    if ratios:
        print()
        print("owncdn/nginx requests/s  " + "  ".join(f"{k}: {v:.2f}x" for k, v in ratios.items()))
    return {"results": [asdict(r) for r in results], "ratios_owncdn_over_nginx": ratios}


# -------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured run (10)")
    ap.add_argument("--quick", action="store_true", help="3 s runs")
    ap.add_argument("--connections", type=int, default=50, help="connections (50)")
    ap.add_argument("--streams", type=int, default=10, help="h2load concurrent streams per connection (10)")
    ap.add_argument("--objects", default="1k", help="object sizes, comma separated (1k)")
    ap.add_argument("--peers", default=",".join(PEERS), help="owncdn,nginx")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help="h1 (HTTP/1.1 over TLS, wrk), h2 (h2load); also h1new (a new TLS connection per request)")
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration = 3.0
    args.objects = [o.strip().lower() for o in args.objects.split(",") if o.strip()]
    args.sizes = {o: edge_hits.parse_size(o) for o in args.objects}
    args.peers = [p for p in args.peers.split(",") if p in PEERS]
    args.protocols = [p for p in args.protocols.split(",") if p in ALL_PROTOCOLS]
    return args


def ensure_tools(args) -> None:
    needed = {"nginx": "nginx", "taskset": "util-linux", "wrk": "wrk", "h2load": "nghttp2-client"}
    missing = sorted({pkg for tool, pkg in needed.items() if not shutil.which(tool)})
    if missing:
        if os.geteuid() != 0:
            edge_hits.die(f"missing tools; install them: apt-get install -y {' '.join(missing)}")
        log(f"installing {', '.join(missing)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(["apt-get", "install", "-y", *missing], env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=False)
            subprocess.run(["apt-get", "install", "-y", *missing], env=env, check=True)
    if "owncdn" in args.peers and not (VENV_BIN / "owncdn").exists():
        edge_hits.die(f"{VENV_BIN / 'owncdn'} not found: `pip install -e .` into the venv")


def main(argv=None) -> int:
    args = parse_args(argv)
    ensure_tools(args)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="owncdn-https-bench-"))
    tmp.chmod(0o755)
    results: list[Result] = []
    failed: list[str] = []
    try:
        cert, key = make_certificate(tmp)
        edge_hits.write_objects(tmp / "www", args.sizes)
        expected = {o: (tmp / "www" / o).read_bytes() for o in args.objects}
        origin_port = free_port()
        edge_hits.start_origin(procs, tmp, origin_port, args.objects[0])
        log(f"origin nginx on 127.0.0.1:{origin_port} (core {LOAD_CORE})")
        for name in args.peers:
            try:
                peer = STARTERS[name](procs, tmp, origin_port, args.objects[0], cert, key)
            except RuntimeError as exc:
                log(f"{name} FAILED to start: {exc}")
                failed.append(name)
                continue
            log(f"{name} on https://127.0.0.1:{peer.port} (core {PEER_CORE})")
            try:
                for obj in args.objects:
                    warm(peer, obj, expected[obj])
                    for protocol in args.protocols:
                        res = measure(peer, protocol, obj, args)
                        log(f"{name} {protocol} {obj}: {res.rps:,.0f} req/s, {res.cpu_us_per_req:.1f} us CPU/req "
                            f"{res.notes}")
                        results.append(res)
            except RuntimeError as exc:
                log(f"{name} FAILED: {exc}")
                failed.append(name)
            finally:
                for proc in peer.roots:
                    procs.stop(proc)
    finally:
        procs.close()
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = report(results)
    summary["failed_peers"] = failed
    summary["settings"] = {"duration": args.duration, "connections": args.connections,
                           "streams": args.streams, "objects": args.objects}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
