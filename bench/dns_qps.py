#!/usr/bin/env python3
"""GeoDNS queries per second: owncdn's DNS vs gdnsd vs Knot DNS.

Every server answers the same zone ``cdn.test`` (SOA, NS, and a routed name
``blog.cdn.test`` with three locations: fra, iad, sin), pinned to core 0
(``taskset -c 0``). ``dnsperf`` (core 1) asks ``blog.cdn.test A`` as fast as it
can, once plain and once with an EDNS Client Subnet option (10.1.2.0/24, which
the small GeoIP database places in Paris). Before measuring, each server is
asked with ECS from three networks to check that it really routes.

Run from the project root with the venv's python (needs dnspython and the
owncdn package for the GeoIP test database):

    .venv/bin/python bench/dns_qps.py --quick
    .venv/bin/python bench/dns_qps.py --servers owncdn,gdnsd --duration 10

See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from processes import Procs, cpu_seconds, free_port  # bench/processes.py, beside this script

import dns.edns
import dns.message
import dns.query

from owncdn.testing.geodb import write_test_db

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
SERVER_CORE = "0"
LOAD_CORE = "1"
ALL_SERVERS = ("owncdn", "gdnsd", "knot")

ZONE = "cdn.test"
NAME = "blog.cdn.test"
TTL = 20
# name, lat, lon, IPv4 address
LOCATIONS = [
    ("fra", 50.11, 8.68, "192.0.2.1"),
    ("iad", 38.95, -77.45, "198.51.100.1"),
    ("sin", 1.35, 103.82, "203.0.113.1"),
]
NETWORKS = {
    "10.1.0.0/16": (48.85, 2.35),      # Paris  -> fra
    "10.2.0.0/16": (40.71, -74.0),     # New York -> iad
    "10.3.0.0/16": (35.68, 139.69),    # Tokyo  -> sin
}
# (ECS subnet, expected answer) used to check routing before the load runs
ROUTING_CHECKS = [("10.1.2.0/24", "192.0.2.1"), ("10.2.2.0/24", "198.51.100.1"),
                  ("10.3.2.0/24", "203.0.113.1")]
NEAREST = {"10.1.0.0/16": "192.0.2.1", "10.2.0.0/16": "198.51.100.1",
           "10.3.0.0/16": "203.0.113.1"}
STATIC_ADDRESS = "192.0.2.1"  # the answer of a server that does not route
ECS_SUBNET = "10.1.2.0/24"
APT_PACKAGES = {"gdnsd": "gdnsd", "knotd": "knot", "dnsperf": "dnsperf", "taskset": "util-linux"}
KNOT_GEOIP_SO = Path("/usr/lib/x86_64-linux-gnu/knot")  # knot-module-geoip puts geoip.so below


# --------------------------------------------------------------------------- utils


def die(msg: str) -> None:
    print(f"dns_qps: {msg}", file=sys.stderr)
    sys.exit(2)


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


def ecs_hex(subnet: str) -> str:
    """The ECS option value (RFC 7871) for an IPv4 subnet, as dnsperf's -E wants it:
    family 1, source prefix, scope 0, then only the significant address bytes."""
    address, prefix = subnet.split("/")
    nbytes = (int(prefix) + 7) // 8
    addr = bytes(int(part) for part in address.split("."))[:nbytes]
    return (b"\x00\x01" + bytes([int(prefix), 0]) + addr).hex()


def ask(port: int, subnet: str | None = None, timeout: float = 1.0) -> list[str]:
    """A addresses the server gives for NAME (optionally with ECS)."""
    options = []
    if subnet:
        address, prefix = subnet.split("/")
        options.append(dns.edns.ECSOption(address, int(prefix)))
    query = dns.message.make_query(NAME, "A", use_edns=0 if subnet else False, options=options)
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)
    return sorted(rr.address for rrset in reply.answer for rr in rrset if rrset.rdtype == 1)


def wait_dns(port: int, proc: subprocess.Popen, log_path: Path, timeout: float = 20.0) -> None:
    """Wait until the server answers NAME, or fail with the tail of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if ask(port, timeout=0.3):
                return
        except Exception:
            time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise RuntimeError(f"no answer on port {port} (exit {proc.poll()}):\n{tail}")


def routing_status(port: int) -> str:
    """'geo' when every ECS check gets its nearest location, else what came back."""
    got = {subnet: ask(port, subnet) for subnet, _ in ROUTING_CHECKS}
    if all(got[s] == [want] for s, want in ROUTING_CHECKS):
        return "geo"
    return "off (" + ", ".join(f"{s}->{'/'.join(a) or '-'}" for s, a in got.items()) + ")"


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    routing: str = ""          # how it routes (as configured)
    notes: list[str] = field(default_factory=list)


def zone_file_text(blog_line: str) -> str:
    return (f"$TTL {TTL}\n"
            f"@ SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 259200 {TTL}\n"
            f"@ NS ns1.{ZONE}.\n"
            f"ns1 A 127.0.0.1\n"
            f"{blog_line}\n")


def start_owncdn(procs: Procs, tmp: Path, geo: Path) -> Server:
    d = tmp / "owncdn"
    d.mkdir()
    locs = "\n".join(f"  - {{name: {n}, lat: {lat}, lon: {lon}, addresses: [{a}]}}"
                     for n, lat, lon, a in LOCATIONS)
    (d / "cdn.yaml").write_text(
        "version: 1\n"
        f"dns: {{zone: {ZONE}, nameservers: [ns1.{ZONE}], ttl: {TTL}s}}\n"
        f"locations:\n{locs}\n"
        "services:\n"
        "  - name: blog\n"
        "    hostnames: [blog.example.com]\n"
        '    origins: ["https://origin.example.com"]\n')
    port = free_port()
    log_path = d / "owncdn.log"
    proc = procs.start(["taskset", "-c", SERVER_CORE, str(VENV_BIN / "owncdn"), "dns",
                        "--config", str(d / "cdn.yaml"), "--listen", f"127.0.0.1:{port}",
                        "--geoip", str(geo)], log_path)
    wait_dns(port, proc, log_path)
    return Server("owncdn", port, proc, routing="geoip nearest")


def gdnsd_config(port: int, d: Path, geo_routing: bool) -> str:
    plugins = ""
    if geo_routing:
        coords = " ".join(f"{n} => [ {lat}, {lon} ]" for n, lat, lon, _ in LOCATIONS)
        dcmap = " ".join(f"{n} => {a}" for n, _, _, a in LOCATIONS)
        names = ", ".join(n for n, *_ in LOCATIONS)
        plugins = (
            "plugins => { geoip => {\n"
            f"  maps => {{ cdn => {{ geoip2_db => geo.mmdb, datacenters => [{names}],\n"
            f"                      auto_dc_coords => {{ {coords} }} }} }}\n"
            f"  resources => {{ blog => {{ map => cdn, dcmap => {{ {dcmap} }} }} }}\n"
            "} }\n")
    return (f"options => {{\n  listen => [ 127.0.0.1:{port} ]\n"
            "  udp_threads => 1\n  tcp_threads => 1\n"
            f"  run_dir => {d / 'run'}\n  state_dir => {d / 'state'}\n}}\n" + plugins)


def start_gdnsd(procs: Procs, tmp: Path, geo: Path) -> Server:
    """gdnsd with its geoip plugin (city-auto-mode: nearest datacenter by distance);
    falls back to a static A record when that does not come up."""
    last_error = None
    for geo_routing in (True, False):
        d = tmp / ("gdnsd" if geo_routing else "gdnsd-static")
        (d / "zones").mkdir(parents=True)
        (d / "geoip").mkdir()
        shutil.copy(geo, d / "geoip" / "geo.mmdb")
        port = free_port()
        (d / "config").write_text(gdnsd_config(port, d, geo_routing))
        blog = f"blog {TTL} DYNA geoip!blog" if geo_routing else f"blog A {STATIC_ADDRESS}"
        (d / "zones" / ZONE).write_text(zone_file_text(blog))
        log_path = d / "gdnsd.log"
        proc = procs.start(["taskset", "-c", SERVER_CORE, "gdnsd", "-c", str(d), "start"],
                           log_path)
        try:
            wait_dns(port, proc, log_path)
        except RuntimeError as e:
            last_error = e
            procs.stop(proc)
            log(f"gdnsd with geoip did not start, falling back to a static record: {e}")
            continue
        server = Server("gdnsd", port, proc,
                        routing="geoip city-auto-mode" if geo_routing else "STATIC")
        if not geo_routing:
            server.notes.append("geoip plugin failed: static A record, routing off")
        return server
    raise RuntimeError(f"gdnsd did not start: {last_error}")


def knot_geo_config() -> str:
    """mod-geoip in subnet mode: Knot's geodb mode matches database keys (country,
    city ids) exactly and has no nearest-by-coordinates mode, so each network of the
    GeoIP database is mapped to its nearest location (precomputed here)."""
    lines = [f"{NAME}:"]
    for net, address in NEAREST.items():
        lines += [f"  - net: {net}", f"    A: {address}"]
    return "\n".join(lines) + "\n"


def knot_config(port: int, d: Path, geo_routing: bool) -> str:
    module = ""
    zone_module = ""
    if geo_routing:
        module = (f"mod-geoip:\n  - id: blog\n    config-file: {d / 'geo.conf'}\n"
                  f"    ttl: {TTL}\n    mode: subnet\n\n")
        zone_module = "    module: mod-geoip/blog\n"
    return (f"server:\n    rundir: {d}\n    listen: 127.0.0.1@{port}\n"
            "    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n"
            # A server option in Knot 3.2: lets mod-geoip use the client subnet.
            f"    edns-client-subnet: {'on' if geo_routing else 'off'}\n\n"
            "log:\n  - target: stderr\n    any: info\n\n"
            f"database:\n    storage: {d / 'db'}\n\n"
            + module +
            f"zone:\n  - domain: {ZONE}\n    storage: {d}\n    file: {ZONE}.zone\n"
            + zone_module)


def start_knot(procs: Procs, tmp: Path, geo: Path) -> Server:
    """knotd with mod-geoip (subnet mode), else a static A record."""
    last_error = None
    for geo_routing in (True, False):
        d = tmp / ("knot" if geo_routing else "knot-static")
        d.mkdir()
        port = free_port()
        (d / "knot.conf").write_text(knot_config(port, d, geo_routing))
        (d / "geo.conf").write_text(knot_geo_config())
        # Outside the geo networks (e.g. 127.0.0.1) Knot answers the zone's own record.
        (d / f"{ZONE}.zone").write_text(zone_file_text(f"blog A {STATIC_ADDRESS}"))
        log_path = d / "knot.log"
        proc = procs.start(["taskset", "-c", SERVER_CORE, "knotd", "-c", str(d / "knot.conf")],
                           log_path)
        try:
            wait_dns(port, proc, log_path)
        except RuntimeError as e:
            last_error = e
            procs.stop(proc)
            log(f"knotd with mod-geoip did not start, falling back to a static record: {e}")
            continue
        server = Server("knot", port, proc,
                        routing="mod-geoip subnet" if geo_routing else "STATIC")
        if geo_routing:
            server.notes.append("mod-geoip subnet mode: networks pre-mapped to nearest")
        else:
            server.notes.append("mod-geoip failed: static A record, routing off")
        return server
    raise RuntimeError(f"knotd did not start: {last_error}")


STARTERS = {"owncdn": start_owncdn, "gdnsd": start_gdnsd, "knot": start_knot}


# --------------------------------------------------------------------------- load


@dataclass
class Result:
    server: str
    mode: str
    qps: float
    avg_latency_ms: float
    lost: int
    cpu_us: float
    answer: str
    rcodes: str


def dnsperf_argv(port: int, queryfile: Path, duration: float, clients: int,
                 ecs: bool) -> list[str]:
    argv = ["taskset", "-c", LOAD_CORE, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
            "-d", str(queryfile), "-l", f"{duration:g}", "-c", str(clients), "-T", "1",
            "-q", "100"]
    if ecs:
        argv += ["-e", "-E", f"8:{ecs_hex(ECS_SUBNET)}"]
    return argv


def parse_dnsperf(out: str) -> tuple[float, float, int, str]:
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    lat = re.search(r"Average Latency \(s\):\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    rcodes = re.search(r"Response codes:\s+(.*)", out)
    if not (qps and lat):
        raise RuntimeError(f"cannot parse dnsperf output:\n{out[-1500:]}")
    return (float(qps.group(1)), float(lat.group(1)) * 1000,
            int(lost.group(1)) if lost else 0, rcodes.group(1).strip() if rcodes else "?")


def measure(server: Server, queryfile: Path, mode: str, duration: float,
            clients: int) -> Result:
    ecs = mode == "ECS"
    answer = "/".join(ask(server.port, ECS_SUBNET if ecs else None)) or "-"
    # A short run that is thrown away (caches, page faults, CPU frequency).
    subprocess.run(dnsperf_argv(server.port, queryfile, 1, clients, ecs),
                   capture_output=True, text=True)
    cpu0 = cpu_seconds([server.proc.pid])
    done = subprocess.run(dnsperf_argv(server.port, queryfile, duration, clients, ecs),
                          capture_output=True, text=True)
    cpu = cpu_seconds([server.proc.pid]) - cpu0
    qps, lat_ms, lost, rcodes = parse_dnsperf(done.stdout + done.stderr)
    queries = qps * duration
    return Result(server.name, mode, qps, lat_ms, lost,
                  cpu * 1e6 / queries if queries else 0.0, answer, rcodes)


# --------------------------------------------------------------------------- report


def report(results: list[Result], servers: dict[str, Server], failed: dict[str, str]) -> bool:
    print()
    print(f"{'server':<8} {'mode':<6} {'queries/s':>11} {'avg lat':>9} {'CPU us/q':>9} "
          f"{'lost':>6}  answer        routing")
    for r in results:
        s = servers[r.server]
        print(f"{r.server:<8} {r.mode:<6} {r.qps:>11,.0f} {r.avg_latency_ms:>7.3f}ms "
              f"{r.cpu_us:>9.1f} {r.lost:>6}  {r.answer:<13} {s.routing}")
    for r in results:
        if not r.rcodes.startswith("NOERROR") or "100.00%" not in r.rcodes:
            print(f"note: {r.server} {r.mode}: dnsperf response codes {r.rcodes}")
    for name, s in servers.items():
        for note in s.notes:
            print(f"note: {name}: {note}")
    for name, err in failed.items():
        print(f"note: {name}: not measured ({err.splitlines()[0]})")
    print()
    by = {(r.server, r.mode): r.qps for r in results}
    met = True
    for peer, need in (("knot", 1.0), ("gdnsd", 0.8)):
        cells = []
        for mode in ("plain", "ECS"):
            if (peer, mode) in by and ("owncdn", mode) in by:
                ratio = by[("owncdn", mode)] / by[(peer, mode)]
                cells.append(f"{mode}: {ratio:.2f}x")
                met &= ratio >= need
            else:
                cells.append(f"{mode}: n/a")
                met = False
        print(f"owncdn/{peer:<6} " + "  ".join(cells) + f"   (target >= {need:.1f}x)")
    measured = {r.server for r in results}
    verdict = "MET" if met else ("NOT MET" if {"owncdn", "knot", "gdnsd"} <= measured
                                 else "not fully measured")
    print(f"target (owncdn >= 1.0x knot and >= 0.8x gdnsd, plain and ECS): {verdict}")
    return met


# --------------------------------------------------------------------------- main


def ensure_tools(names: list[str]) -> None:
    needed = {"dnsperf", "taskset"} | {"gdnsd"} & set(names) | ({"knotd"} if "knot" in names else set())
    missing = [tool for tool in sorted(needed) if not shutil.which(tool)]
    want_knot_geo = "knot" in names and not list(KNOT_GEOIP_SO.glob("modules-*/geoip.so"))
    if missing or want_knot_geo:
        if os.geteuid() != 0:
            die(f"missing {', '.join(missing) or 'knot-module-geoip'}; install them "
                "(sudo apt-get install -y gdnsd knot knot-module-geoip dnsperf) or run as root")
        pkgs = sorted({APT_PACKAGES[t] for t in missing}
                      | ({"knot-module-geoip"} if want_knot_geo else set()))
        log(f"installing {', '.join(pkgs)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(["apt-get", "install", "-y", *pkgs], env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=False)
            subprocess.run(["apt-get", "install", "-y", *pkgs], env=env, check=False)
        # Debian starts the packaged services on port 53; they are not ours to stop,
        # and they do not disturb us (we use our own ports and config dirs).
        still = [tool for tool in needed if not shutil.which(tool)]
        if still:
            die(f"still missing after apt-get: {', '.join(still)}")
    if "owncdn" in names and not (VENV_BIN / "owncdn").exists():
        die(f"{VENV_BIN / 'owncdn'} not found: `pip install -e .` into the venv")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    ap.add_argument("--quick", action="store_true", help="3 s runs")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS), help="owncdn,gdnsd,knot")
    ap.add_argument("--clients", type=int, default=10, help="dnsperf clients (10)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration = 3.0
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.servers) - set(ALL_SERVERS)
    if unknown:
        ap.error(f"unknown servers: {', '.join(sorted(unknown))}")
    return args


def bench(args: argparse.Namespace, procs: Procs, tmp: Path) -> bool:
    geo = tmp / "geo.mmdb"
    write_test_db(geo, NETWORKS)
    queryfile = tmp / "queries.txt"
    queryfile.write_text(f"{NAME} A\n" * 100)
    results: list[Result] = []
    servers: dict[str, Server] = {}
    failed: dict[str, str] = {}
    for name in args.servers:
        log(f"starting {name}")
        try:
            server = STARTERS[name](procs, tmp, geo)
        except Exception as e:  # one peer failing must not stop the others
            failed[name] = str(e)
            log(f"{name}: {e}")
            continue
        checked = routing_status(server.port)
        if checked != "geo":
            server.notes.append(f"routing check: {checked}")
        servers[name] = server
        for mode in ("plain", "ECS"):
            log(f"{name} {mode}: {args.duration:g} s of dnsperf")
            results.append(measure(server, queryfile, mode, args.duration, args.clients))
        procs.stop(server.proc)
    met = report(results, servers, failed)
    return met and not failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_tools(args.servers)
    if (os.cpu_count() or 1) < 2:
        log("warning: fewer than 2 cores; server and dnsperf share a core")
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="dns_qps."))

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        return 0 if bench(args, procs, tmp) else 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.close()
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
