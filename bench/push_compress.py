#!/usr/bin/env python3
"""Compressed pages of a pushed site: owncdn's edge vs nginx `gzip on` and `gzip_static`.

A visitor's browser asks with ``Accept-Encoding``; a text file of a pushed site without a
precompressed sibling goes out in the edge's own compressed form, made once per file
(``edge/variants.py``). nginx either compresses every response again (``gzip on``,
level 6, as the edge's gzip) or sends a ``.gz`` made beforehand (``gzip_static on``:
the site built with ``.gz`` siblings, here made with Python's gzip at level 6).

The site is the Python docs of Debian's ``python3-doc`` (as ``bench/push.py``; installed
with apt as root, with ``nginx`` and ``wrk``), copied with its symlinks resolved. owncdn:
a control plane and one edge (`owncdn edge --control`), the docs pushed with `owncdn
push`. Every peer runs pinned to core 0 (``taskset``), ``wrk`` on core 1 with
``Accept-Encoding: gzip`` (what a browser sends over plain HTTP), 50 connections,
against each page of ``--pages``. Printed per peer and page: requests/s, p99 latency,
the peer's CPU time per request (its process tree, from /proc) and the body bytes of
one response; then owncdn's ratios to each nginx (requests/s, and CPU per request).

    .venv/bin/python bench/push_compress.py [--seconds 5] [--pages library/functions.html,index.html]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import push as push_bench  # noqa: E402 - bench/push.py: the docs, the fleet
from edge_hits import (  # noqa: E402
    LOAD_CORE, PEER_CORE, ensure_tools, nginx_common, nginx_http_common, parse_wrk, start_nginx,
)
from processes import Procs, cpu_seconds, free_port  # noqa: E402

HOST = "docs.example.test"
PAGES = ("library/functions.html", "tutorial/index.html")


class PinnedCdn(push_bench.Cdn):
    """bench/push.py's fleet with its edges pinned to the peers' core."""

    def _argv(self, name: str, args: list[str]) -> list[str]:
        argv = super()._argv(name, args)
        return ["taskset", "-c", PEER_CORE, *argv] if name.startswith("edge-") else argv


def get(addr: str, path: str) -> tuple[int, dict[str, str], bytes]:
    host, _, port = addr.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/" + path, headers={"Host": HOST, "Accept-Encoding": "gzip"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def wrk(addr: str, path: str, seconds: float) -> str:
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c50", f"-d{max(1, round(seconds))}s", "--latency",
            "-H", f"Host: {HOST}", "-H", "Accept-Encoding: gzip", f"http://{addr}/{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode:
        raise RuntimeError(f"wrk failed: {done.stderr}{done.stdout}")
    return done.stdout


def measure(name: str, addr: str, pids: list[int], path: str, plain: bytes, seconds: float,
            url: str | None = None) -> dict:
    """``path`` of the site, asked for as ``url`` (the path itself by default)."""
    page, path = path, (url if url is not None else path)
    status, headers, body = get(addr, path)  # also makes owncdn's form, before the timing
    if status != 200 or headers.get("content-encoding") != "gzip" or gzip.decompress(body) != plain:
        raise RuntimeError(f"{name}: /{path} did not come back gzipped as the file ({status}, {headers})")
    wrk(addr, path, 1)  # warm-up, discarded
    before = cpu_seconds(pids)
    out = wrk(addr, path, seconds)
    cpu = cpu_seconds(pids) - before
    requests, _, rps, p99, errors = parse_wrk(out)
    return {"peer": name, "page": page, "rps": rps, "p99_ms": p99, "cpu_us": cpu / requests * 1e6,
            "bytes": len(body), "errors": errors}


def nginx_conf(prefix: Path, root: Path, port: int, static: bool) -> str:
    gz = ("gzip_static on;" if static else
          "gzip on; gzip_comp_level 6; gzip_min_length 1024; gzip_vary on;"
          " gzip_types text/css text/javascript application/javascript application/json image/svg+xml;")
    return nginx_common(prefix) + f"""http {{
{nginx_http_common(prefix)}
    types {{ text/html html; text/css css; text/javascript js; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        {gz}
    }}
}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk's duration per peer and page.")
    parser.add_argument("--pages", default=",".join(PAGES), help="Pages of the docs, comma-separated.")
    args = parser.parse_args()
    docs = push_bench.ensure_packages()
    ensure_tools(["nginx"])
    pages = args.pages.split(",")
    work = Path(tempfile.mkdtemp(prefix="owncdn-compress-bench-", dir="/var/tmp"))
    procs = Procs()
    results = []
    try:
        site = work / "site"
        shutil.copytree(docs, site, symlinks=False)
        static = work / "static"
        shutil.copytree(site, static)
        for page in pages:
            (static / (page + ".gz")).write_bytes(gzip.compress((static / page).read_bytes(), 6, mtime=0))
        push_bench.EDGES = 1
        cdn = PinnedCdn(work)
        try:
            cdn.start()
            owncdn = str(Path(sys.executable).parent / "owncdn")
            subprocess.run([owncdn, "push", str(site), "--service", push_bench.SERVICE, "--control", cdn.url,
                            "--token", cdn.token, "--quiet", "--wait", "60", "--hidden"], check=True)
            edge = cdn.procs.procs[1]
            for page in pages:
                results.append(measure("owncdn", _edge_addr(edge), [edge.pid], page, (site / page).read_bytes(),
                                       args.seconds, url=_pretty(page)))
        finally:
            cdn.stop()
        for name, root, is_static in (("nginx gzip on", site, False), ("nginx gzip_static", static, True)):
            prefix, port = work / name.replace(" ", "-"), free_port()
            proc = start_nginx(procs, prefix, nginx_conf(prefix, root, port, is_static), port, PEER_CORE,
                               "/" + pages[0])
            for page in pages:
                results.append(measure(name, f"127.0.0.1:{port}", [proc.pid], page, (site / page).read_bytes(),
                                       args.seconds))
            procs.stop(proc)
    finally:
        procs.close()
        shutil.rmtree(work, ignore_errors=True)
    report(results, pages)
    return 0


def _pretty(page: str) -> str:
    """The URL the edge serves ``page`` at (pretty URLs: no ``.html``, ``dir/`` for an index)."""
    if page == "index.html" or page.endswith("/index.html"):
        return page[:-len("index.html")]
    return page.removesuffix(".html")


def _edge_addr(edge: subprocess.Popen) -> str:
    """The edge's public address, from its command line (bench/push.py picks it)."""
    return edge.args[edge.args.index("--listen") + 1]


def report(results: list[dict], pages: list[str]) -> None:
    print(f"{'peer':18} {'page':28} {'req/s':>9} {'p99 ms':>8} {'CPU us/req':>11} {'body B':>8}")
    for r in results:
        print(f"{r['peer']:18} {r['page']:28} {r['rps']:9.0f} {r['p99_ms']:8.2f} {r['cpu_us']:11.1f} {r['bytes']:8d}"
              + (f"  {r['errors']}" if r["errors"] else ""))
    for page in pages:
        own = next(r for r in results if r["peer"] == "owncdn" and r["page"] == page)
        for r in results:
            if r["page"] == page and r["peer"] != "owncdn":
                print(f"{page}: owncdn / {r['peer']}: req/s {own['rps'] / r['rps']:.3g}x, "
                      f"CPU per request {own['cpu_us'] / r['cpu_us']:.3g}x")


if __name__ == "__main__":
    sys.exit(main())
