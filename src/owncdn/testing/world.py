"""A simulated world: real owncdn processes in network namespaces joined by the WAN emulator.

    with World(state_dir, cities=3, locations=2, scale=1.0) as world:
        row = world.visit(world.visitors[1], "pull-warm")

The pieces come from ``owncdn.core.world`` (cities, latency model, address plan)
and ``owncdn.testing.wan`` (namespaces, TUN devices, the delaying forwarder).

Rules:

1. Hosts: a visitor in every chosen city; in every chosen edge-location city an
   edge (HTTP on port 80) and an owncdn DNS server (port 53) on the same address;
   in Frankfurt the origin (``owncdn.demo.worldsite``) and the control plane; the
   lab host in the root namespace, which drives the control plane's API and sees
   no delay.
2. Every owncdn process runs as its own ``owncdn`` subprocess inside its host's
   namespace, following the control plane like a real deployment; edges and DNS
   servers locate addresses with a geo database that maps each city's /24 to the
   city (``geo.mmdb`` in the state directory).
3. A visitor asks the DNS server of its nearest edge location (what anycast or a
   nearby resolver gives it); the DNS answers by the visitor's own address.
4. Scenarios: ``origin`` (straight to the origin, no CDN; the name is looked up at
   the site's own DNS server next to the origin), ``pull-first``
   (through the CDN with a query string no one asked for yet, so every object is a
   miss), ``pull-warm`` (the same URLs again: every object is a hit),
   ``https-warm`` (the same URLs over HTTPS: the edges listen on port 443 with a
   certificate from a test CA made at start, uploaded through the control plane;
   visitors trust that CA, ``ca.pem`` in the state directory; the scheme is part of
   the edge's cache key, so the first ``https-warm`` visit of a URL set is preceded
   by one untimed HTTPS load of it, which fills the edge), ``https-return`` (the
   same URLs over HTTPS by a returning visitor: its earlier, untimed load left it a
   TLS session per connection, which the timed load resumes, ``visit`` rule 7; the
   floor stays three round trips, TLS 1.3 resumption without early data still
   taking one) and ``push`` (a push service whose release is on every edge).
5. Visits run one after another, so they never compete for the CPU.
6. Failure ``edge_dies``: a watcher in a visitor's namespace samples DNS and the
   page every 0.2 s (``owncdn.testing.visit`` rule 4) while the edge of its nearest
   location is killed (SIGKILL; that location's DNS server keeps running); the
   result is how long until DNS sent it elsewhere and how many requests failed
   meanwhile. The control plane's health monitor (``--health-interval`` 2 s,
   ``--health-fall`` 3, re-checks every 0.5 s once a check failed, at once when the
   edge's event stream ends) decides; the numbers measure that path end to end. The
   samples also record every address of the DNS answer, and whether trying the next
   one would have served the page.
7. Failure ``origin_stalls``: the origin process is stopped and continued in a loop
   (SIGSTOP for ``stop`` seconds, SIGCONT for ``run``), as a starved virtual machine
   stalls, while every visitor city fetches ``/live`` (fresh for one second) and the
   page every 0.5 s. The service waits ``first_byte`` 2 s for the origin, then serves
   its stale copy (``stale_if_error``, 1 day by default) instead of retrying the one
   origin it has (``retries: 0``); counted: requests, errors,
   X-Cache values, the slowest request.
8. Failure ``origin_dies``: every visitor city fetches every object once through the
   address DNS gives it now (warming those edges), the origin is killed (SIGKILL),
   and every city fetches every object again; the share served is the number. The
   origin is started again afterwards.
9. Failure ``control_dies``: the control plane is killed (SIGKILL) while every
   visitor city looks the name up and fetches every object every 0.5 s; edges and
   DNS servers keep their last state, so every failure counted is a real one.
10. One world per machine: every world uses the same addresses, so ``start`` takes
   an exclusive lock (``LOCK_FILE``) and waits for another world (another test
   run, another ``owncdn world``) to close first, up to ``lock_wait`` seconds.
11. The emulator's own cost, measured in the run: ``probe_emulator`` times a TCP
   echo (``owncdn.testing.wanprobe``) between the first visitor and the edge host
   of its nearest location, across the emulator and, as the baseline, with both
   ends on the edge host's loopback; the difference beyond the modelled round
   trips, per crossing, is what the emulator adds. ``emulator()`` (after
   ``close``) adds the forwarder's timer settings and how late its packets left
   against their due time (``owncdn.testing.wan`` rules 5-6).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from owncdn.core.world import LatencyModel, address, pick
from owncdn.core.world.addresses import LAB_ADDRESS, subnet
from owncdn.core.world.cities import ORIGIN_CITY, City, by_key
from owncdn.testing.wan import Wan, WanHost

ZONE = "world.test"
SITE = f"www.{ZONE}"
STATIC = f"static.{ZONE}"
CONTROL_PORT = 8400
MARKER = ".owncdn-world"
LOCK_FILE = Path("/run/lock/owncdn-world.lock") if Path("/run/lock").is_dir() else Path("/tmp/owncdn-world.lock")
SCENARIOS = ("origin", "pull-first", "pull-warm", "https-warm", "https-return", "push")
HTTPS = ("https-warm", "https-return")

CONFIG = """\
# Written by `owncdn world`.
version: 1
dns: {{zone: {zone}, nameservers: [ns1.{zone}]}}
locations:
{locations}
services:
  - name: www
    hostnames: [{site}]
    origins: ["http://{origin}:80"]
    timeouts: {{first_byte: 2s}}
    retries: 0
{push}"""
PUSH = """\
  - name: static
    hostnames: [{static}]
    mode: push
"""


@dataclass
class Visit:
    """One visitor's page load in one scenario, in seconds. ``floor`` (core.world latency
    rule 4): 2 round trips to the server that answered; for ``pull-first`` plus the
    edge's request to the origin, one round trip on a connection the edge keeps open
    (a new connection costs one more)."""
    city: City
    scenario: str
    server: City
    dns: float | None
    connect: float
    ttfb: float
    page: float
    floor: float
    cache: str
    tls: float | None = None
    headers: float | None = None   # to the parsed response headers (visit rule 2)
    tls_cpu: float | None = None   # the visitor's own CPU in the TLS handshake (visit rule 2)
    resumed: bool | None = None    # over HTTPS: the page's connection resumed a TLS session (visit rule 7)


class World:
    def __init__(self, state_dir: Path, cities: int = 3, locations: int = 2, scale: float = 1.0,
                 push: bool = True, lock_wait: float = 900.0) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.lock_wait = lock_wait
        self._lock = None
        self.visitors, self.locations = pick(cities, locations)
        self.model = LatencyModel(scale=scale)
        self.origin_city = by_key(ORIGIN_CITY)
        self.push = push
        self.children: list[subprocess.Popen] = []
        self.control_url = f"http://{address(self.origin_city, 'control')}:{CONTROL_PORT}"
        hosts = [WanHost("lab", LAB_ADDRESS, "", namespace=False),
                 WanHost("control", address(self.origin_city, "control"), ORIGIN_CITY),
                 WanHost("origin", address(self.origin_city, "origin"), ORIGIN_CITY)]
        hosts += [WanHost(f"edge-{c.key}", address(c, "edge"), c.key) for c in self.locations]
        hosts += [WanHost(f"visitor-{c.key}", address(c, "visitor"), c.key) for c in self.visitors]
        self.wan = Wan(hosts, self._delay)
        self.pushed = False
        self.edges: dict[str, subprocess.Popen] = {}
        self._https_warmed: set[tuple[str, str]] = set()   # (city, run) loaded over HTTPS once (rule 4)

    def __repr__(self) -> str:
        return (f"<World visitors={[c.key for c in self.visitors]} locations={[c.key for c in self.locations]} "
                f"scale={self.model.scale:g} {self.wan!r}>")

    def _delay(self, a: WanHost, b: WanHost) -> float:
        if not a.city or not b.city:
            return 0.0   # the lab host (rule 1)
        return self.model.one_way(by_key(a.city), by_key(b.city))

    # --- building ------------------------------------------------------------------

    def _spawn(self, host: str, args: list[str], log: str) -> subprocess.Popen:
        with open(self.state_dir / "logs" / f"{log}.log", "ab") as out:
            proc = subprocess.Popen(self.wan.exec_args(host) + [sys.executable, *args], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd=self.state_dir / "logs")
        self.children.append(proc)
        return proc

    def _owncdn(self, host: str, args: list[str], log: str) -> subprocess.Popen:
        return self._spawn(host, ["-m", "owncdn.cli", *args], log)

    def _take_lock(self) -> None:
        """Rule 10."""
        import fcntl

        lock = open(LOCK_FILE, "a+")
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock = lock
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise RuntimeError(f"another owncdn world has held {LOCK_FILE} for {self.lock_wait:g}s") from None
                time.sleep(0.5)

    def start(self) -> None:
        from owncdn.client import Client
        from owncdn.testing.geodb import write_test_db

        self._take_lock()
        if self.state_dir.exists() and any(self.state_dir.iterdir()):
            if not (self.state_dir / MARKER).exists():
                raise RuntimeError(f"{self.state_dir} is not empty and not an owncdn world's state; not wiping it")
            shutil.rmtree(self.state_dir)
        for sub in ("logs", "control", "edges", "dns"):
            (self.state_dir / sub).mkdir(parents=True)
        (self.state_dir / MARKER).write_text("state of `owncdn world`, wiped at its next start\n")
        geo = self.state_dir / "geo.mmdb"
        write_test_db(geo, {subnet(c): (c.lat, c.lon) for c in {*self.visitors, *self.locations, self.origin_city}})
        self.wan.start()
        origin = address(self.origin_city, "origin")
        self.start_origin()
        self.control = self._owncdn("control", ["control", "--listen", f"{address(self.origin_city, 'control')}:{CONTROL_PORT}",
                                 "--zone", ZONE, "--state-dir", str(self.state_dir / "control")], "control")
        _until(lambda: Client(self.control_url).health(), "the control plane starting", self.children)
        admin = (self.state_dir / "control" / "admin.token").read_text().strip()
        bootstrap = (self.state_dir / "control" / "bootstrap.token").read_text().strip()
        self.api = Client(self.control_url, admin)
        self.admin_token = admin
        locations = "\n".join(
            f"  - {{name: {c.key}, city: {c.name}, lat: {c.lat}, lon: {c.lon}, addresses: [{address(c, 'edge')}]}}"
            for c in self.locations)
        source = CONFIG.format(zone=ZONE, locations=locations, site=SITE, origin=address(self.origin_city, "origin"),
                               push=PUSH.format(static=STATIC) if self.push else "")
        (self.state_dir / "cdn.yaml").write_text(source)
        version = self.api.add_version("production", source, comment="owncdn world")["number"]
        from owncdn.testing.certs import TestCA

        ca = TestCA("owncdn world CA")
        self.ca_file = ca.write(self.state_dir)
        leaf = ca.issue([SITE, STATIC])
        self.api.put_cert("world", leaf.cert_pem, leaf.key_pem)
        for c in self.locations:
            ip = address(c, "edge")
            common = ["--control", self.control_url, "--token", bootstrap, "--env", "production",
                      "--location", c.key, "--geoip", str(geo)]
            self.edges[c.key] = self._owncdn(
                f"edge-{c.key}", ["edge", *common, "--state-dir", str(self.state_dir / "edges" / c.key),
                                  "--listen", f"{ip}:80", "--admin", f"{ip}:9080", "--id", f"edge-{c.key}",
                                  "--tls-listen", f"{ip}:443"],
                f"edge-{c.key}")
            self._owncdn(f"edge-{c.key}", ["dns", *common, "--state-dir", str(self.state_dir / "dns" / c.key),
                                           "--listen", f"{ip}:53", "--name", f"dns-{c.key}"], f"dns-{c.key}")

        def applied() -> bool:
            running = {n["name"]: n.get("running_version") for n in self.api.status("production")["nodes"]}
            return all(running.get(f"edge-{c.key}") == version for c in self.locations)

        _until(lambda: _dns_answers(origin, SITE), "the origin's DNS server answering", self.children)
        _until(applied, f"every edge running v{version}", self.children, timeout=60)
        for c in self.locations:
            _until(lambda c=c: _dns_answers(address(c, "edge"), SITE), f"the DNS server in {c.name} answering",
                   self.children, timeout=60)
            _until(lambda c=c: _handshake(address(c, "edge"), SITE, self.ca_file),
                   f"the edge in {c.name} serving the certificate", self.children, timeout=60)

    def start_origin(self) -> None:
        origin = address(self.origin_city, "origin")
        self.origin = self._spawn("origin", ["-m", "owncdn.demo.worldsite", "--listen", f"{origin}:80",
                                             "--dns", f"{origin}:53"], "origin")

    def push_site(self) -> None:
        """Push the world site's files as a release of the push service (scenario ``push``)."""
        from owncdn.demo.worldsite import site

        root = self.state_dir / "public"
        origin = site()
        for path, route in origin.routes.items():
            target = root / ("index.html" if path == "/" else path.lstrip("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(route.replies[0].body)
        env = {**os.environ, "OWNCDN_CONTROL": self.control_url, "OWNCDN_TOKEN": self.admin_token}
        done = subprocess.run([sys.executable, "-m", "owncdn.cli", "push", str(root), "--service", "static",
                               "--control", self.control_url, "--token", self.admin_token],
                              env=env, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"owncdn push failed: {done.stdout}{done.stderr}")

        def everywhere() -> bool:
            current = next(r for r in self.api.releases("production", "static") if r["current"])
            serving = {n["name"] if isinstance(n, dict) else n for n in current["nodes"]}
            return all(f"edge-{c.key}" in serving for c in self.locations)

        _until(everywhere, "every edge serving the pushed release", self.children, timeout=60)
        self.pushed = True

    # --- measuring -----------------------------------------------------------------

    def visit(self, city: City, scenario: str, run: str = "1") -> Visit:
        """Load the page from ``city`` in ``scenario`` (rules 3-5)."""
        edge = self.model.nearest(city, self.locations)
        args = ["-m", "owncdn.testing.visit"]
        if scenario == "origin":
            server = self.origin_city
            args += ["--name", SITE, "--dns", address(server, "origin")]
        elif scenario in ("pull-first", "pull-warm", *HTTPS):
            server = edge
            args += ["--name", SITE, "--dns", address(edge, "edge"), "--query", f"v={run}-{city.key}"]
            if scenario in HTTPS:
                args += ["--tls", str(self.ca_file)]
        elif scenario == "push":
            server = edge
            args += ["--name", STATIC, "--dns", address(edge, "edge")]
        else:
            raise ValueError(f"unknown scenario {scenario!r}")
        if scenario in HTTPS and (city.key, run) not in self._https_warmed:
            self._visitor(city, scenario, args)   # fills the edge's HTTPS keys (rule 4), not timed
            self._https_warmed.add((city.key, run))
        r = self._visitor(city, scenario, args + (["--resume"] if scenario == "https-return" else []))
        floor = self.model.floor(city, server)
        if scenario == "pull-first":   # a miss: the edge's request to the origin on top
            floor += self.model.floor(server, self.origin_city, ("http",))
        if scenario in HTTPS:   # TLS 1.3, full or resumed: one more round trip
            floor = self.model.floor(city, server, ("tcp", "tls", "http"))
        return Visit(city, scenario, server, r["dns"], r["connect"], r["ttfb"], r["page"], floor, r["cache"],
                     r.get("tls"), r.get("headers"), r.get("tls_cpu"), r.get("resumed"))

    def _visitor(self, city: City, scenario: str, args: list[str]) -> dict:
        done = subprocess.run(self.wan.exec_args(f"visitor-{city.key}") + [sys.executable, *args],
                              capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"visitor in {city.name} ({scenario}): {done.stderr.strip().splitlines()[-1:]}")
        return json.loads(done.stdout)

    def edge_dies(self, city: City, watch: float = 60.0) -> dict:
        """Rule 6: kill the edge ``city``'s visitors use, and watch them move away."""
        edge = self.model.nearest(city, self.locations)
        dead = address(edge, "edge")
        watcher = subprocess.Popen(self.wan.exec_args(f"visitor-{city.key}") + [
            sys.executable, "-m", "owncdn.testing.visit", "--name", SITE, "--dns", dead, "--watch", str(watch),
            "--avoid", dead], stdout=subprocess.PIPE, text=True)
        try:
            if watcher.stdout.readline().strip() != "ready":
                raise RuntimeError("the failure watcher did not start")
            time.sleep(1.0)   # a few samples before the failure
            killed = time.time()
            os.killpg(self.edges[edge.key].pid, signal.SIGKILL)
            samples = json.loads(watcher.stdout.read())["samples"]
        finally:
            if watcher.poll() is None:
                watcher.kill()
            watcher.wait()
        after = [s for s in samples if s["time"] >= killed]
        moved = next((s for s in after if s["address"] not in (None, dead)), None)
        ok = next((s for s in after if s["ok"]), None)
        return {"city": city.name, "edge": edge.name, "moved_to": moved and city_of_address(moved["address"]),
                "dns_moved_after": moved and moved["time"] - killed,
                "first_success_after": ok and ok["time"] - killed,
                "failed": sum(1 for s in after if not s["ok"]), "requests": len(after),
                "answer_sizes": sorted({len(s.get("addresses") or []) for s in samples}),
                "failed_with_retry": sum(1 for s in after if not s.get("ok_retry"))}

    def _loops(self, seconds: float, query: str, paths: tuple[str, ...] | None = None,
               during=None) -> dict[str, list[dict]]:
        """Every visitor city samples every object every 0.5 s for ``seconds`` (visit rule 5);
        ``during()`` runs once they are all ready. Returns city name -> samples."""
        from owncdn.testing.visit import PATHS

        procs = {}
        for c in self.visitors:
            edge = self.model.nearest(c, self.locations)
            procs[c.name] = subprocess.Popen(self.wan.exec_args(f"visitor-{c.key}") + [
                sys.executable, "-m", "owncdn.testing.visit", "--name", SITE, "--dns", address(edge, "edge"),
                "--objects", "--loop", str(seconds), "--query", query, "--paths", ",".join(paths or PATHS)],
                stdout=subprocess.PIPE, text=True)
        try:
            for p in procs.values():
                if p.stdout.readline().strip() != "ready":
                    raise RuntimeError("a failure sampler did not start")
            if during is not None:
                during()
            return {name: json.loads(p.stdout.read())["samples"] for name, p in procs.items()}
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                p.wait()

    def _objects_once(self, query: str, paths: tuple[str, ...] | None = None) -> dict[str, dict]:
        from owncdn.testing.visit import PATHS

        out = {}
        for c in self.visitors:
            edge = self.model.nearest(c, self.locations)
            done = subprocess.run(self.wan.exec_args(f"visitor-{c.key}") + [
                sys.executable, "-m", "owncdn.testing.visit", "--name", SITE, "--dns", address(edge, "edge"),
                "--objects", "--query", query, "--paths", ",".join(paths or PATHS)],
                capture_output=True, text=True, timeout=120)
            if done.returncode:
                raise RuntimeError(f"visitor in {c.name}: {done.stderr.strip().splitlines()[-1:]}")
            out[c.name] = json.loads(done.stdout)
        return out

    def origin_stalls(self, seconds: float = 20.0, stop: float = 3.0, run: float = 1.0) -> dict:
        """Rule 7."""
        import threading

        halt = threading.Event()

        def starve() -> None:
            while not halt.is_set():
                os.killpg(self.origin.pid, signal.SIGSTOP)
                halt.wait(stop)
                os.killpg(self.origin.pid, signal.SIGCONT)
                halt.wait(run)

        self._objects_once("stall", ("/live", "/"))   # every edge has /live and the page in its cache
        thread = threading.Thread(target=starve, daemon=True)
        try:
            samples = self._loops(seconds, "stall", ("/live", "/"), during=thread.start)
        finally:
            halt.set()
            if thread.is_alive():
                thread.join()
            os.killpg(self.origin.pid, signal.SIGCONT)
        objs = [o for ss in samples.values() for s in ss for o in s["objects"]]
        caches: dict[str, int] = {}
        for o in objs:
            caches[o["cache"] or "-"] = caches.get(o["cache"] or "-", 0) + 1
        return {"seconds": seconds, "stop": stop, "run": run, "cities": len(samples), "requests": len(objs),
                "errors": sum(1 for o in objs if o["status"] != 200),
                "statuses": sorted({o["status"] for o in objs}), "cache": caches,
                "slowest": max((o["seconds"] for o in objs), default=0.0)}

    def origin_dies(self) -> dict:
        """Rule 8."""
        self._objects_once("after")
        os.killpg(self.origin.pid, signal.SIGKILL)
        self.origin.wait()
        time.sleep(0.5)
        after = self._objects_once("after")
        objs = [o for r in after.values() for o in r["objects"]]
        cold = self._objects_once("never-fetched")
        misses = [o for r in cold.values() for o in r["objects"]]
        self.children.remove(self.origin)
        self.start_origin()
        _until(lambda: _dns_answers(address(self.origin_city, "origin"), SITE), "the origin starting again",
               [self.origin])
        served = sum(1 for o in objs if o["status"] == 200)
        return {"cities": len(after), "objects": len(objs), "served": served,
                "share": served / len(objs) if objs else 0.0,
                "uncached_served": sum(1 for o in misses if o["status"] == 200), "uncached": len(misses),
                "uncached_statuses": sorted({o["status"] for o in misses}),
                "per_city": {city: sum(1 for o in r["objects"] if o["status"] == 200) for city, r in after.items()}}

    def control_dies(self, seconds: float = 10.0) -> dict:
        """Rule 9."""
        self._objects_once("control")

        def kill() -> None:
            os.killpg(self.control.pid, signal.SIGKILL)

        samples = self._loops(seconds, "control", during=kill)
        self.control.wait()
        self.children.remove(self.control)
        flat = [s for ss in samples.values() for s in ss]
        objs = [o for s in flat for o in s["objects"]]
        return {"seconds": seconds, "cities": len(samples), "lookups": len(flat),
                "lookups_failed": sum(1 for s in flat if s["address"] is None),
                "requests": len(objs), "failed": sum(1 for o in objs if o["status"] != 200)}

    def probe_emulator(self, samples: int = 100) -> dict:
        """Rule 11: the emulator's residual per crossing, from echo exchanges (medians)."""
        from owncdn.core.world.emulator import per_hop
        from owncdn.testing.wanprobe import EXCHANGES, measure

        city = self.visitors[0]
        edge = self.model.nearest(city, self.locations)
        server = self.wan.exec_args(f"edge-{edge.key}")
        ip = address(edge, "edge")
        direct = measure(server, server, ip, samples)
        across = measure(server, self.wan.exec_args(f"visitor-{city.key}"), ip, samples)
        rtt = self.model.rtt(city, edge)
        med = statistics.median
        return {"city": city.name, "server": edge.name, "rtt": rtt, "samples": samples,
                "exchanges": {ex: {"round_trips": rts, "median": med(across[ex]), "direct": med(direct[ex]),
                                   "per_crossing": per_hop(across[ex], rts * rtt, direct[ex]) / rts}
                              for ex, rts in EXCHANGES.items()}}

    def emulator(self) -> dict:
        """Rule 11: the forwarder's timer settings and lateness (after ``close``)."""
        from owncdn.core.world.emulator import summary

        return {"modes": self.wan.modes, "lateness": summary(self.wan.lateness)}

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                try:
                    os.killpg(child.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for child in self.children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        self.wan.close()
        if self._lock is not None:
            self._lock.close()   # releases the flock (rule 10)
            self._lock = None

    def __enter__(self) -> World:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def city_of_address(ip: str) -> str:
    from owncdn.core.world import city_of

    city = city_of(ip)
    return city.name if city else ip


def _handshake(server: str, name: str, ca_file: Path) -> bool:
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((server, 443), timeout=2) as sock:
        with ctx.wrap_socket(sock, server_hostname=name):
            return True


def _dns_answers(server: str, name: str) -> bool:
    import dns.message
    import dns.query

    reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=1)
    return bool(reply.answer)


def _until(check, what: str, children: list[subprocess.Popen], timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        if any(c.poll() is not None for c in children):
            raise RuntimeError(f"a process exited while waiting for {what}")
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not happen within {timeout:g}s ({last})")
