"""Time from adding a hostname to a valid certificate served by every edge, against Pebble.

Pebble (Let's Encrypt's test CA, Debian's `pebble`) validates through DNS-01 with
owncdn's own DNS server as its resolver. The control plane (with its certificate
manager at its default one-second round), the DNS node and the edges (each on its
own loopback address, with its HTTPS listener) run in this process, as `owncdn up`
would run them. For each run, a config version with one more service (a new
hostname, `tls: {acme: true}`) is applied, and the clock stops when a verified TLS
handshake with that hostname as SNI gets the new certificate from every edge.
Prints each run and the median. Target: under 10 s.

    .venv/bin/python bench/cert_time.py [--edges 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from owncdn.control.acme.manager import ManagerSettings
from owncdn.testing.dnsnode import DnsNodeUnderTest
from owncdn.testing.fleet import Fleet
from owncdn.testing.pebble import Pebble, pebble_available


def source(directory: str, count: int) -> str:
    lines = ["version: 1", f"acme: {{directory: {json.dumps(directory)}}}", "services:"]
    for i in range(count):
        lines += [f"  - name: site{i}", f"    hostnames: [site{i}.example.com]", "    origins: [http://127.0.0.1:9]",
                  "    tls: {acme: true}"]
    return "\n".join(lines) + "\n"


def served_fingerprint(host: str, port: int, name: str, root: str) -> str | None:
    ctx = ssl.create_default_context(cadata=root)
    try:
        with socket.create_connection((host, port), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
    except (OSError, ssl.SSLError):
        return None


async def one_run(fleet: Fleet, pebble: Pebble, root: str, count: int) -> float:
    name = f"site{count - 1}.example.com"
    start = time.perf_counter()
    await fleet.apply(source(pebble.directory, count))
    while True:
        got = [await asyncio.to_thread(served_fingerprint, e.tls_server.sockets[0].getsockname()[0], e.tls_port,
                                       name, root) for e in fleet.edges]
        if all(got):
            return time.perf_counter() - start
        if time.perf_counter() - start > 120:
            raise SystemExit(f"no valid certificate for {name} on every edge after 120 s")
        await asyncio.sleep(0.02)


async def main(edges: int, runs: int) -> None:
    if not pebble_available():
        raise SystemExit("needs Debian's pebble package (apt-get install pebble)")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        fleet = Fleet(state, edges=edges)
        fleet.tls = True
        async with fleet:
            async with DnsNodeUnderTest(fleet, state / "dns") as dns:
                with Pebble(state / "pebble", dns=f"127.0.0.1:{dns.port}") as pebble:
                    fleet.acme = ManagerSettings(ca_bundle=pebble.ca_bundle)
                    await fleet.stop_control()
                    await fleet.start_control()
                    await dns.connected()
                    root = pebble.roots_pem()
                    times = []
                    for run in range(1, runs + 1):
                        seconds = await one_run(fleet, pebble, root, run)
                        times.append(seconds)
                        print(f"run {run}: site{run - 1}.example.com valid on {edges} edges after {seconds:.2f} s",
                              flush=True)
                    print(f"cert_time: median {statistics.median(times):.2f} s, max {max(times):.2f} s "
                          f"over {runs} runs, {edges} edges (target < 10 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.edges, args.runs))
    sys.exit(0)
