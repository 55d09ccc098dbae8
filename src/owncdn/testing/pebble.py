"""Pebble, Let's Encrypt's test CA, and its ``pebble-challtestsrv``, as local processes.

    with ChallTestSrv() as dns:                         # a mock DNS: every A is 127.0.0.1
        with Pebble(tmp_path, dns=f"127.0.0.1:{dns.dns_port}", http_port=edge_port) as ca:
            ca.directory, ca.ca_bundle                   # for the ACME client
            ca.roots_pem()                               # the issuing root, to verify served chains

Rules:
1. Both come from Debian's ``pebble`` package (``/usr/bin/pebble``,
   ``/usr/bin/pebble-challtestsrv``); ``scripts/test.sh`` installs it.
2. Pebble listens on loopback only, on free ports, with a TLS certificate made here
   for 127.0.0.1 by a throwaway CA (``ca_bundle``). ``-dnsserver`` points its resolver
   at the DNS server given (owncdn's DNS for DNS-01, challtestsrv for HTTP-01), and
   ``httpPort`` (the port HTTP-01 validation connects to) at an edge's HTTP port.
3. ``PEBBLE_VA_NOSLEEP=1`` (validate at once), ``PEBBLE_VA_ALWAYS_VALID=0`` (really
   validate), ``PEBBLE_WFE_NONCEREJECT=0`` (no random bad nonces) and
   ``PEBBLE_AUTHZREUSE=0`` (every order validates its names afresh).
4. Output goes to ``<dir>/pebble.log``; a failed start raises with its tail.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["ChallTestSrv", "Pebble", "pebble_available"]


def pebble_available() -> bool:
    return shutil.which("pebble") is not None and shutil.which("pebble-challtestsrv") is not None


def _free_port(udp_too: bool = False) -> int:
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if not udp_too:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise OSError("no free port")


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.args[0]} did not listen on {port}: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_tls_files(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for ``host``, all PEM files."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "owncdn test CA for pebble")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(paths[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


class Pebble:
    def __init__(self, directory: Path, *, dns: str, http_port: int = 5002) -> None:
        self.dir = Path(directory)
        self.dns = dns
        self.http_port = http_port
        self.port = 0
        self.management_port = 0
        self.proc: subprocess.Popen | None = None
        self.ca_bundle = ""

    def __repr__(self) -> str:
        return f"<Pebble 127.0.0.1:{self.port} dns={self.dns} httpPort={self.http_port}>"

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def __enter__(self) -> "Pebble":
        ca, cert, key = make_tls_files(self.dir / "tls")
        self.ca_bundle = str(ca)
        self.port, self.management_port = _free_port(), _free_port()
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}", "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert), "privateKey": str(key), "httpPort": self.http_port,
            "tlsPort": _free_port(), "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        path = self.dir / "pebble-config.json"
        path.write_text(json.dumps(config))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_VA_ALWAYS_VALID": "0",
               "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
        log = self.dir / "pebble.log"
        self.proc = subprocess.Popen(["pebble", "-config", str(path), "-dnsserver", self.dns],
                                     stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        _wait_port(self.port, self.proc, log)
        return self

    def __exit__(self, *exc) -> None:
        _stop(self.proc)

    def roots_pem(self) -> str:
        """The root that signs Pebble's certificates (new at every Pebble start)."""
        ctx = ssl.create_default_context(cafile=self.ca_bundle)
        with urllib.request.urlopen(f"https://127.0.0.1:{self.management_port}/roots/0", context=ctx) as resp:
            return resp.read().decode()

    def log(self) -> str:
        return (self.dir / "pebble.log").read_text()


class ChallTestSrv:
    """The mock DNS of Pebble's test suite: A queries answer ``127.0.0.1``, AAAA nothing."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dns_port = 0
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ChallTestSrv":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dns_port = _free_port(udp_too=True)
        log = self.dir / "challtestsrv.log"
        self.proc = subprocess.Popen(
            ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
             "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-management", f"127.0.0.1:{_free_port()}"],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        _wait_port(self.dns_port, self.proc, log)
        return self

    def __exit__(self, *exc) -> None:
        _stop(self.proc)
