#!/usr/bin/env python3
"""CPU per TLS 1.3 handshake, client and server: owncdn's edge vs nginx, same certificate.

What a first visit (a full handshake) and a returning visit (a resumed one: a
session ticket, no certificate) cost on loopback. The client is Python's ``ssl``
(OpenSSL), as the world's visitors (``owncdn.testing.visit``): a context made once,
trusting only the test CA, the name verified; one new connection per handshake,
which reads until the session ticket has arrived (so the server issued it) and
closes. Reported per peer and kind, as medians over the run:

* client us: the client thread's CPU time inside ``wrap_socket`` (the handshake);
* server us: the peer's CPU time (every thread of its process group, from
  /proc/<pid>/task/*/schedstat, nanoseconds) over the run, divided by the handshakes; it includes accepting and
  closing the connection;
* resumed: how many handshakes resumed a session.

Both peers hold the same ECDSA P-256 leaf (from owncdn's test CA, served without
the CA, as the edge serves it) and run pinned to core 0; the client runs on core 1.
nginx: one worker, ``ssl_session_cache shared:SSL:10m``, tickets on (its defaults
otherwise). ``--owncdn-src DIR`` adds a second owncdn peer run from another source
tree (e.g. the previous commit's, for before/after figures in one run):

    .venv/bin/python bench/tls_handshakes.py --handshakes 2000
    .venv/bin/python bench/tls_handshakes.py --owncdn-src /tmp/before/src
"""

from __future__ import annotations

import argparse
import glob
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import edge_hits  # bench/edge_hits.py, beside this script
from processes import Procs, free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
NAME = "bench.test"


def certificate(tmp: Path) -> tuple[Path, Path, Path]:
    """(leaf as served, key, CA file)."""
    sys.path.insert(0, str(ROOT / "src"))
    from owncdn.edge.tls import served_chain
    from owncdn.testing.certs import TestCA

    ca = TestCA("owncdn bench CA")
    leaf = ca.issue([NAME])
    cert, key = leaf.write(tmp, "leaf")
    cert.write_text(served_chain(leaf.cert_pem))
    return cert, key, ca.write(tmp)


def start_owncdn(procs: Procs, prefix: Path, cert: Path, key: Path, src: Path | None) -> tuple:
    prefix.mkdir()
    (prefix / "cdn.yaml").write_text("version: 1\nedge: {id: bench-edge, location: local, access_log: 'off'}\n"
                                     "services: []\n")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(src)) if src else None
    argv = ["taskset", "-c", "0", str(VENV_PY), "-m", "owncdn.cli", "edge", "--config", str(prefix / "cdn.yaml"),
            "--listen", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{free_port()}",
            "--tls-listen", f"127.0.0.1:{port}", "--cert", str(cert), "--key", str(key),
            "--state-dir", str(prefix / "state")]
    proc = subprocess.Popen(argv, stdout=open(prefix / "log", "ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True, env=env)
    procs.procs.append(proc)
    return proc, port


def start_nginx(procs: Procs, prefix: Path, cert: Path, key: Path) -> tuple:
    prefix.mkdir()
    port = free_port()
    conf = edge_hits.nginx_common(prefix) + f"""
http {{
    {edge_hits.nginx_http_common(prefix)}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {{ return 200 ok; }}
    }}
}}
"""
    (prefix / "nginx.conf").write_text(conf)
    proc = procs.start(["taskset", "-c", "0", "nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                        "-e", str(prefix / "error.log")], prefix / "log")
    return proc, port


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            time.sleep(0.5)   # let start-up finish before CPU is counted
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def server_cpu(pid: int) -> float:
    """Seconds of CPU of every thread of every process in `pid`'s process group (the
    peer and its workers), from schedstat (nanoseconds)."""
    total = 0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
            if int(text[text.rindex(")") + 2:].split()[2]) != pid:   # field 5: the process group
                continue
            for path in glob.glob(f"{stat[:-5]}/task/*/schedstat"):
                total += int(Path(path).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def handshake(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None) -> tuple[float, bool, ssl.SSLSession]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cpu = time.thread_time()
    tls = ctx.wrap_socket(sock, server_hostname=NAME, session=session)
    cpu = time.thread_time() - cpu
    tls.settimeout(0.0005)
    deadline = time.perf_counter() + 0.005
    while not tls.session.has_ticket and time.perf_counter() < deadline:   # the ticket follows the handshake
        try:
            tls.recv(1)
        except (TimeoutError, ssl.SSLError, OSError):
            pass
    reused, got = tls.session_reused, tls.session
    tls.close()
    return cpu, reused, got


def measure(port: int, pid: int, ca_file: Path, count: int, resume: bool) -> dict:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    _, _, session = handshake(port, ctx, None)
    for _ in range(20):   # warm both ends up
        _, _, session = handshake(port, ctx, session if resume else None)
    cpus, reused = [], 0
    before = server_cpu(pid)
    for _ in range(count):
        cpu, hit, got = handshake(port, ctx, session if resume else None)
        cpus.append(cpu)
        reused += hit
        if resume:
            session = got   # a ticket is used once, as browsers do
    spent = server_cpu(pid) - before
    return {"client_us": statistics.median(cpus) * 1e6, "server_us": spent / count * 1e6, "resumed": reused}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--handshakes", type=int, default=1000, help="handshakes per peer and kind (1000)")
    ap.add_argument("--rounds", type=int, default=2, help="peers measured in turn this many times (2)")
    ap.add_argument("--owncdn-src", type=Path, help="also run owncdn from this source tree (label owncdn-other)")
    args = ap.parse_args(argv)
    os.sched_setaffinity(0, {1})
    tmp = Path(tempfile.mkdtemp(prefix="owncdn-tls-bench-"))
    tmp.chmod(0o755)
    procs = Procs()
    rows: dict[tuple[str, str], list[dict]] = {}
    try:
        cert, key, ca_file = certificate(tmp)
        peers = {"owncdn": lambda d: start_owncdn(procs, d, cert, key, None),
                 "nginx": lambda d: start_nginx(procs, d, cert, key)}
        if args.owncdn_src:
            peers["owncdn-other"] = lambda d: start_owncdn(procs, d, cert, key, args.owncdn_src)
        for i in range(args.rounds):
            for name, start in peers.items():
                proc, port = start(tmp / f"{name}-{i}")
                wait_listening(port, proc)
                for kind, resume in (("full", False), ("resumed", True)):
                    r = measure(port, proc.pid, ca_file, args.handshakes, resume)
                    rows.setdefault((name, kind), []).append(r)
                    print(f"# {name} {kind}: client {r['client_us']:.0f} us, server {r['server_us']:.0f} us, "
                          f"resumed {r['resumed']}/{args.handshakes}", file=sys.stderr, flush=True)
                procs.stop(proc)
    finally:
        procs.close()
    print(f"\n{'peer':<13} {'handshake':<9} {'client us':>9} {'server us':>9}  resumed")
    for (name, kind), rs in rows.items():
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        print(f"{name:<13} {kind:<9} {med('client_us'):>9.0f} {med('server_us'):>9.0f}  "
              f"{sum(r['resumed'] for r in rs)}/{args.handshakes * len(rs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
