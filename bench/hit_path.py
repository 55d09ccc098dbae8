"""CPU cost of one cache hit in owncdn's edge, without sockets.

Feeds a typical GET for a stored 1 KiB object into the edge's connection protocol
through a fake transport, N times, and prints microseconds per request (Python work
only: parse, route, look up, decide, build the response, access-log line). With the
access log on it also prints what formatting one access-log line costs by itself
(the records of one formatting batch, formatted over and over, nothing written).

    .venv/bin/python bench/hit_path.py [--requests 200000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time

import uvloop

from owncdn.core.config import parse_config
from owncdn.edge import accesslog
from owncdn.edge.server import EdgeServer
from owncdn.testing.origin import FakeOrigin

REQUEST = (
    b"GET /1k.bin HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
    b"Accept-Encoding: gzip, deflate\r\n\r\n"
)


class NullTransport:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data) -> None:
        self.bytes += len(data)

    def writelines(self, parts) -> None:
        for p in parts:
            self.bytes += len(p)

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def format_cost(edge, conn, runs: int, batch: int = accesslog.FORMAT_AT) -> float:
    """Seconds to format one access-log line: `batch` records from the hit path above
    (as many as the log formats at once), formatted `runs` times over (best of 5),
    nothing written."""
    log = edge.log
    log.flush()
    log.flush = lambda: None  # keep the records instead of writing them
    accesslog.FORMAT_AT, format_at = batch + 1, accesslog.FORMAT_AT
    for _ in range(batch):
        conn.data_received(REQUEST)
    accesslog.FORMAT_AT = format_at
    records = log.pending
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(runs):
            log.pending = list(records)
            log.lines()
        best = min(best, (time.perf_counter() - t0) / (runs * batch))
    del log.flush
    log.pending = []
    return best


async def main(n: int, profile: bool, log: str, formats: int = 20) -> None:
    origin = await FakeOrigin().start()
    origin.route("/1k.bin", body=os.urandom(1024), headers={"Cache-Control": "max-age=3600", "ETag": '"x"'})
    config = parse_config(
        f"version: 1\nedge: {{access_log: {log}}}\nservices:\n  - name: b\n    hostnames: [bench.test]\n"
        f"    origins: ['{origin.url}']\n", "bench.yaml", lambda k, n: None)
    server = await EdgeServer.start(config)
    from owncdn.testing.client import HttpClient
    async with HttpClient("127.0.0.1", server.port, "bench.test") as c:
        assert (await c.get("/1k.bin")).cache == "MISS"
    edge = server.edge
    from owncdn.edge.protocol import HttpConnection, Limits
    conn = HttpConnection(edge, Limits(), asyncio.get_running_loop())
    transport = NullTransport()
    conn.connection_made(transport)
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    t0 = time.perf_counter()
    c0 = time.process_time()
    for _ in range(n):
        conn.data_received(REQUEST)
    cpu = time.process_time() - c0
    wall = time.perf_counter() - t0
    if prof:
        prof.disable()
    assert edge.counts.get("HIT", 0) >= n, edge.counts
    print(f"{n} hits: {wall / n * 1e6:.2f} us/request wall, {cpu / n * 1e6:.2f} us/request CPU, "
          f"{transport.bytes / n:.0f} bytes/response")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    if log != "off":
        print(f"access-log line: {format_cost(edge, conn, formats) * 1e6:.2f} us/line (formatting only, best of 5)")
    await server.close()
    await origin.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--formats", type=int, default=20, help="times 2000 lines are formatted for the per-line cost")
    ap.add_argument("--no-log", action="store_true", help="access log off (default: on, to a temp file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = "off" if args.no_log else os.path.join(tmp, "access.log")
        uvloop.run(main(args.requests, args.profile, log, args.formats))
