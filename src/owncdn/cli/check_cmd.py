"""`owncdn check URL`: a tracer bullet through a deployment, local or real.

    owncdn check https://www.example.com/
    owncdn check http://demo.cdn.test/ --dns 127.0.0.1:5353 --control http://127.0.0.1:8400 --token T
    owncdn check https://www.example.test/ --connect-to 127.0.1.1:8443 --ca ca.pem

Prints a checklist (✓ / ✗ / - lines) and exits 1 if any check failed, so it can
gate a deploy. The verdicts are ``owncdn.core.check``; this module does the I/O.

Rules:

1. DNS: the name is asked of ``--dns HOST:PORT`` (the CDN's own DNS server) or,
   without it, of the system resolver. ``--connect-to HOST:PORT`` (like curl's
   ``--resolve``) sends every request there instead of to the answer; without
   ``--dns`` the lookup is then skipped.
2. Every request is a new connection to that address with the URL's host as
   ``Host`` and, for https, as SNI; the certificate is verified against the system
   store or ``--ca FILE``, and a failed verification is a failed check (the
   certificate's details are then read without verification, to say why).
3. Edge and cache: two GETs of the URL; the first names the edge (X-Served-By),
   the pair of X-Cache values gives the cache verdict.
4. Forwarding: a GET of ``--echo-path`` (default ``/__owncdn/echo``, served by the
   demo origin) returns the headers the origin received; ``--echo-path ''``
   skips it. ``--origin-host`` is the Host the origin should see.
5. Purge: with ``--control`` and ``--token`` (or ``OWNCDN_TOKEN``) the URL is
   purged in ``--env``, waiting up to 10 s for every edge's ack, then fetched again.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from urllib.parse import urlsplit

import typer

from owncdn.core.check import (Check, cache_verdict, certificate_verdict, dns_verdict, edge_verdict, exit_status,
                               forwarding_verdicts, purge_verdict, render)

ECHO_PATH = "/__owncdn/echo"


@dataclass
class Got:
    status: int
    headers: Message
    body: bytes
    local: str        # the source address of this connection
    cert_der: bytes | None


def _split(hostport: str, default_port: int) -> tuple[str, int]:
    host, sep, port = hostport.rpartition(":")
    if not sep:
        return hostport, default_port
    return host.strip("[]"), int(port)


def _lookup(name: str, dns_server: str | None, timeout: float) -> tuple[list[str], str]:
    """Rule 1: (addresses, who answered)."""
    if dns_server:
        import dns.message
        import dns.query
        import dns.rdatatype

        host, port = _split(dns_server, 53)
        reply = dns.query.udp(dns.message.make_query(name, "A"), host, port=port, timeout=timeout)
        return ([r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset],
                dns_server)
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return [], "the system resolver"
    return list(dict.fromkeys(i[4][0] for i in infos)), "the system resolver"


def _context(ca: Path | None, verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _get(scheme: str, address: str, port: int, host: str, path: str, ctx: ssl.SSLContext | None,
         timeout: float) -> Got:
    """Rule 2: one GET on a new connection."""
    sock = socket.create_connection((address, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local = sock.getsockname()[0]
        der = None
        if scheme == "https":
            sock = ctx.wrap_socket(sock, server_hostname=host)
            der = sock.getpeercert(binary_form=True)
        conn = HTTPConnection(address, port, timeout=timeout)
        conn.sock = sock
        conn.request("GET", path, headers={"Host": host, "User-Agent": "owncdn-check"})
        resp = conn.getresponse()
        body = resp.read()
        return Got(resp.status, resp.headers, body, local, der)
    finally:
        sock.close()


def _certificate(host: str, address: str, port: int, ca: Path | None, timeout: float) -> Check:
    from cryptography import x509

    problem = None
    try:
        der = _handshake(host, address, port, _context(ca), timeout)
    except ssl.SSLCertVerificationError as exc:
        problem = exc.verify_message or str(exc)
        der = _handshake(host, address, port, _context(ca, verify=False), timeout)
    cert = x509.load_der_x509_certificate(der)
    try:
        names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                     .value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = []
    check = certificate_verdict(host, names, cert.not_valid_before_utc, cert.not_valid_after_utc, datetime.now(UTC))
    if problem and check.ok:
        return Check(check.name, "fail", f"not trusted: {problem}; {check.detail}")
    return check


def _handshake(host: str, address: str, port: int, ctx: ssl.SSLContext, timeout: float) -> bytes:
    with socket.create_connection((address, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)


def run_checks(url: str, dns_server: str | None = None, connect_to: str | None = None, ca: Path | None = None,
               echo_path: str = ECHO_PATH, origin_host: str | None = None, control: str | None = None,
               token: str | None = None, env: str = "production", timeout: float = 10.0) -> list[Check]:
    """Every check of rules 1-5, in order; stops early only when nothing can be reached."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [Check("URL", "fail", f"not an http(s) URL: {url!r}")]
    scheme, host = parts.scheme, parts.hostname
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    checks: list[Check] = []

    address = None
    if connect_to and not dns_server:
        checks.append(Check("DNS", "skip", f"not asked (--connect-to {connect_to})"))
    else:
        try:
            addresses, who = _lookup(host, dns_server, timeout)
        except Exception as exc:  # noqa: BLE001 - any failure of the lookup is the check's answer
            addresses, who = [], f"{dns_server} ({type(exc).__name__}: {exc})"
        checks.append(dns_verdict(host, addresses, who))
        address = addresses[0] if addresses else None
    if connect_to:
        address, port = _split(connect_to, port)
    if address is None:
        return checks

    ctx = None
    if scheme == "https":
        try:
            checks.append(_certificate(host, address, port, ca, timeout))
        except (OSError, ssl.SSLError) as exc:
            checks.append(Check("TLS certificate", "fail", f"no handshake with {address}:{port}: {exc}"))
            return checks
        ctx = _context(ca, verify=checks[-1].ok)

    def get(path: str) -> Got:
        return _get(scheme, address, port, host, path, ctx, timeout)

    try:
        first, second = get(target), get(target)
    except (OSError, HTTPException) as exc:
        checks.append(Check("edge", "fail", f"no answer from {address}:{port}: {exc}"))
        return checks
    checks.append(edge_verdict(first.headers.get("X-Served-By"), f"{address}:{port}"))
    status = Check("status", "ok" if first.status < 400 else "fail", f"{first.status} for {target}")
    checks.append(status)
    checks.append(cache_verdict(first.headers.get("X-Cache"), second.headers.get("X-Cache")))

    if echo_path:
        echoed = None
        try:
            got = get(echo_path)
            if got.status == 200:
                echoed = [(k, v) for k, v in json.loads(got.body)["headers"]]
        except (OSError, HTTPException, ValueError, KeyError, TypeError):
            pass
        checks += forwarding_verdicts(echoed, origin_host, first.local, address)
    else:
        checks.append(Check("forwarding", "skip", "not checked (--echo-path '')"))

    if control and token:
        from owncdn.client import Client

        try:
            result = Client(control, token, timeout=timeout).purge(env, url=url, wait=10)
            acked = f"purge {result['id']} acked by {len(result['acked'])} node(s)"
            if not result.get("complete"):
                pending = ", ".join(str(p.get("node_id") or p.get("name") or p) for p in result.get("pending", []))
                checks.append(Check("purge", "fail", f"{acked}; still pending: {pending}"))
            else:
                checks.append(purge_verdict(get(target).headers.get("X-Cache"), acked))
        except Exception as exc:  # noqa: BLE001 - the API's or the network's failure is the check's answer
            checks.append(Check("purge", "fail", f"{type(exc).__name__}: {exc}"))
    else:
        checks.append(Check("purge", "skip", "not checked (give --control and --token)"))
    return checks


def check(
    url: str = typer.Argument(..., help="The URL to check, e.g. https://www.example.com/"),
    dns: str = typer.Option(None, "--dns", help="HOST:PORT of the CDN's DNS server to ask (default: the system "
                            "resolver)."),
    connect_to: str = typer.Option(None, "--connect-to", help="HOST:PORT to send the requests to instead of the "
                                   "DNS answer (like curl --resolve)."),
    ca: Path = typer.Option(None, "--ca", exists=True, dir_okay=False, help="PEM file of a CA to trust (a test CA)."),
    echo_path: str = typer.Option(ECHO_PATH, help="The origin's echo path (returns the request headers it got as "
                                  "JSON); '' to skip."),
    origin_host: str = typer.Option(None, help="The Host the origin should receive (default: any)."),
    control: str = typer.Option(None, envvar="OWNCDN_CONTROL", help="Control plane URL, for the purge round trip."),
    token: str = typer.Option(None, envvar="OWNCDN_TOKEN", help="API token with the purge scope."),
    env: str = typer.Option("production", help="Environment to purge in."),
    timeout: float = typer.Option(10.0, min=0.1, help="Seconds per network step."),
) -> None:
    """Check a deployment end to end: DNS, certificate, edge, cache, forwarding, purge."""
    checks = run_checks(url, dns, connect_to, ca, echo_path, origin_host, control, token, env, timeout)
    typer.echo(render(checks), nl=False)
    raise typer.Exit(exit_status(checks))
