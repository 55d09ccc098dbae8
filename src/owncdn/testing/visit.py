"""One visitor loading a page, timed step by step (run inside a visitor's namespace).

    python -m owncdn.testing.visit --name www.world.test --dns 10.9.0.20 --query v=1

Prints one JSON object: ``dns``, ``connect``, ``ttfb`` and ``page`` in seconds,
``address`` (where the name led), ``cache`` (the page's X-Cache) and ``assets``.

Rules:

1. ``dns`` is one UDP query to the given server (the visitor's nearest DNS server,
   as anycast or a nearby resolver would give); with ``--address`` there is no
   lookup and ``dns`` is null.
2. ``connect`` is the TCP handshake; ``ttfb`` runs from the start of the handshake
   to the response's status line and headers (connect + request), so its floor is
   two round trips.
3. ``page`` runs from the start of the lookup until the last asset's last byte:
   the page on the first connection, then every asset it links at once, each on a
   connection of its own, like a browser's six parallel connections.
4. ``--watch`` (a failure scenario) prints ``ready``, then looks the name up and
   fetches the page every 0.2 s, each sample with its wall-clock time, the address
   DNS gave and whether the request succeeded (2 s timeouts), until DNS sends it
   away from ``--avoid`` and a request there succeeds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.message
import dns.query


def _get(address: str, port: int, name: str, path: str) -> tuple[float, float, int, str]:
    """(connect seconds, ttfb seconds, body bytes, X-Cache) of one GET on a new connection."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection(address, port, timeout=30)
    conn.connect()
    connected = time.perf_counter()
    conn.request("GET", path, headers={"Host": name, "User-Agent": "owncdn-world-visitor"})
    resp = conn.getresponse()
    first = time.perf_counter()
    body = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status}")
    return connected - start, first - start, len(body), resp.getheader("X-Cache", "")


def visit(name: str, dns_server: str | None, address: str | None, port: int, query: str) -> dict:
    start = time.perf_counter()
    dns_s = None
    if dns_server:
        reply = dns.query.udp(dns.message.make_query(name, "A"), dns_server, timeout=10)
        dns_s = time.perf_counter() - start
        addresses = [r.address for rrset in reply.answer for r in rrset if hasattr(r, "address")]
        if not addresses:
            raise RuntimeError(f"no address for {name} from {dns_server}")
        address = addresses[0]
    suffix = f"?{query}" if query else ""
    conn = http.client.HTTPConnection(address, port, timeout=30)
    t0 = time.perf_counter()
    conn.connect()
    connect_s = time.perf_counter() - t0
    conn.request("GET", "/" + suffix, headers={"Host": name, "User-Agent": "owncdn-world-visitor"})
    resp = conn.getresponse()
    ttfb_s = time.perf_counter() - t0
    html = resp.read()
    cache = resp.getheader("X-Cache", "")
    conn.close()
    assets = sorted(set(re.findall(rb'(?:href|src)="(/[^"]*)"', html)))
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda p: _get(address, port, name, p.decode() + suffix), assets))
    page_s = time.perf_counter() - start
    return {"dns": dns_s, "connect": connect_s, "ttfb": ttfb_s, "page": page_s, "address": address,
            "cache": cache, "assets": [{"bytes": n, "cache": c} for _, _, n, c in results],
            "bytes": len(html) + sum(n for _, _, n, _ in results)}


def watch(name: str, dns_server: str, port: int, avoid: str, seconds: float, every: float = 0.2) -> dict:
    """Rule 4: ask and fetch every ``every`` seconds until DNS no longer answers ``avoid``
    and a request elsewhere succeeded, or ``seconds`` passed."""
    samples = []
    deadline = time.time() + seconds
    print("ready", flush=True)
    while time.time() < deadline:
        t = time.time()
        target, ok = None, False
        try:
            reply = dns.query.udp(dns.message.make_query(name, "A"), dns_server, timeout=2)
            target = next(r.address for rrset in reply.answer for r in rrset if hasattr(r, "address"))
            conn = http.client.HTTPConnection(target, port, timeout=2)
            conn.request("GET", "/", headers={"Host": name})
            ok = conn.getresponse().status == 200
            conn.close()
        except (OSError, StopIteration, dns.exception.DNSException):
            pass
        samples.append({"time": t, "address": target, "ok": ok})
        if target is not None and target != avoid and ok:
            break
        time.sleep(max(0.0, every - (time.time() - t)))
    return {"samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--dns")
    parser.add_argument("--address")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--query", default="")
    parser.add_argument("--watch", type=float, help="Rule 4: watch for this many seconds")
    parser.add_argument("--avoid", help="With --watch: the address of the edge that died")
    args = parser.parse_args()
    if args.watch:
        print(json.dumps(watch(args.name, args.dns, args.port, args.avoid, args.watch)))
    else:
        print(json.dumps(visit(args.name, args.dns, args.address, args.port, args.query)))


if __name__ == "__main__":
    main()
