"""CPU cost of one request for a pushed file at the edge, without sockets.

Like `hit_path.py`, but for a push service: a release with a 1 KiB page and a
precompressed sibling is installed straight into the edge's release store, and a
typical GET (with Accept-Encoding) is fed into the connection protocol through a
fake transport N times. Prints microseconds per request next to the same figure for
a cache HIT of a pull service, measured the same way in the same process.

    .venv/bin/python bench/push_serve.py [--requests 100000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from hit_path import REQUEST as HIT_REQUEST, NullTransport  # noqa: E402

from owncdn.core.config import parse_config  # noqa: E402
from owncdn.edge.protocol import HttpConnection, Limits  # noqa: E402
from owncdn.edge.server import EdgeServer  # noqa: E402
from owncdn.testing.client import HttpClient  # noqa: E402
from owncdn.testing.origin import FakeOrigin  # noqa: E402

PUSH_REQUEST = (
    b"GET /about HTTP/1.1\r\nHost: push.test\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
    b"Accept-Encoding: gzip, deflate\r\n\r\n"
)


def run(edge, request: bytes, n: int, profile: bool) -> tuple[float, float, int]:
    conn = HttpConnection(edge, Limits(), asyncio.get_running_loop())
    transport = NullTransport()
    conn.connection_made(transport)
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    c0 = time.process_time()
    for _ in range(n):
        conn.data_received(request)
    cpu = time.process_time() - c0
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return cpu / n * 1e6, transport.bytes / n, conn


async def main(n: int, profile: bool, log: str, state: str) -> None:
    origin = await FakeOrigin().start()
    origin.route("/1k.bin", body=os.urandom(1024), headers={"Cache-Control": "max-age=3600", "ETag": '"x"'})
    config = parse_config(
        f"version: 1\nedge: {{access_log: {log}}}\nservices:\n"
        f"  - name: b\n    hostnames: [bench.test]\n    origins: ['{origin.url}']\n"
        f"  - name: p\n    hostnames: [push.test]\n    mode: push\n", "bench.yaml", lambda k, n: None)
    server = await EdgeServer.start(config, state_dir=Path(state))
    page = os.urandom(512).hex().encode()
    server.edge.releases.install("p", 1, {"about.html": page, "about.html.gz": gzip.compress(page)})
    async with HttpClient("127.0.0.1", server.port, "bench.test") as c:
        assert (await c.get("/1k.bin")).cache == "MISS"
    hit_us, hit_bytes, _ = run(server.edge, HIT_REQUEST, n, False)
    push_us, push_bytes, _ = run(server.edge, PUSH_REQUEST, n, profile)
    assert server.edge.counts.get("PUSH", 0) >= n, server.edge.counts
    print(f"{n} requests each: push {push_us:.2f} us/request CPU ({push_bytes:.0f} bytes/response), "
          f"cache HIT {hit_us:.2f} us/request CPU ({hit_bytes:.0f} bytes/response); "
          f"push/HIT = {push_us / hit_us:.2f}")
    await server.close()
    await origin.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--no-log", action="store_true", help="access log off (default: on, to a temp file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = "off" if args.no_log else os.path.join(tmp, "access.log")
        uvloop.run(main(args.requests, args.profile, log, os.path.join(tmp, "state")))
