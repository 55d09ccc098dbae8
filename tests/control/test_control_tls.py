"""The control plane over HTTPS (``owncdn.control.tlslisten``, ``httpsport``): its
certificate checked at start, reloaded when renewed, plain HTTP answered with where to
go, and a fleet whose edges and pushes reach it by ``https://`` only (edges register, follow the state, fetch a pushed release's blobs and
acknowledge it; `owncdn push` uploads through TLS)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys
from pathlib import Path

import pytest
from cryptography import x509

from owncdn.cli.localca import LocalCA
from owncdn.client.errors import ApiError
from owncdn.client.push import push_site
from owncdn.client.pushapi import PushApi
from owncdn.control.tlslisten import ServerTls, TlsFilesError
from owncdn.testing.fleet import Fleet

SOURCE = """
version: 1
services:
  - name: blog
    hostnames: [blog.test]
    mode: push
"""


def issue(ca: LocalCA, directory: Path, names=("127.0.0.1",)) -> tuple[Path, Path, int]:
    """A leaf for ``names`` written as cert.pem / key.pem in ``directory``: the paths and its serial."""
    chain, key = ca.issue(list(names))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_text(chain)
    key_path.write_text(key)
    return cert_path, key_path, x509.load_pem_x509_certificate(chain.encode()).serial_number


@pytest.fixture
def ca(tmp_path) -> LocalCA:
    return LocalCA.load_or_create(tmp_path / "ca", [])


def served_serial(port: int, cafile: Path) -> int:
    """The serial of the certificate a new TLS connection to 127.0.0.1:port gets (verified)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


# -- Rule 1: what does not load is said, before anything serves -------------------------------
def _encrypted_key(directory: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / "encrypted.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"secret")))
    return path


@pytest.mark.parametrize("case, expected", [
    ("missing key", "cannot read the TLS key"),
    ("missing cert", "cannot read the TLS certificate"),
    ("cert not PEM", "is not PEM"),
    ("key not PEM", "is not PEM"),
    ("cert as key", "holds no private key"),
    ("encrypted key", "is encrypted"),
    ("another key", "the key is not the certificate's"),
])
def test_a_pair_that_does_not_load_is_refused_with_its_reason(tmp_path, ca, case, expected):
    cert, key, _ = issue(ca, tmp_path / "pair")
    _, other_key, _ = issue(ca, tmp_path / "other")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    secret = key.read_text()
    given = {"missing key": (cert, tmp_path / "nope.pem"), "missing cert": (tmp_path / "nope.pem", key),
             "cert not PEM": (junk, key), "key not PEM": (cert, junk), "cert as key": (cert, cert),
             "encrypted key": (cert, _encrypted_key(tmp_path)), "another key": (cert, other_key)}[case]
    with pytest.raises(TlsFilesError) as err:
        ServerTls.load(*given)
    assert expected in str(err.value), str(err.value)
    assert secret.splitlines()[1] not in str(err.value)  # never the key's bytes


def test_a_good_pair_loads_tls12_and_up(tmp_path, ca):
    cert, key, _ = issue(ca, tmp_path / "pair")
    tls = ServerTls.load(cert, key)
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2


# -- Rule 2: a renewal is used by new connections; a half-written one is not -------------------
async def test_a_renewed_certificate_is_served_without_a_restart(tmp_path, ca):
    cert, key, first = issue(ca, tmp_path / "pair")
    tls = ServerTls.load(cert, key)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=tls.context)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await asyncio.to_thread(served_serial, port, ca.cert_path) == first
        assert not tls.reload_if_changed()  # nothing changed: nothing loaded

        renewed_chain, renewed_key = ca.issue(["127.0.0.1"])
        cert.write_text(renewed_chain)  # the chain is new, the key still old: half-written
        assert not tls.reload_if_changed()
        assert await asyncio.to_thread(served_serial, port, ca.cert_path) == first  # still the old one, whole
        assert not tls.reload_if_changed()  # said once: not tried again until a file changes

        key.write_text(renewed_key)
        assert tls.reload_if_changed() and tls.reloads == 1
        renewed = x509.load_pem_x509_certificate(renewed_chain.encode()).serial_number
        assert await asyncio.to_thread(served_serial, port, ca.cert_path) == renewed

        tmp = tmp_path / "pair" / "cert.pem.new"  # renamed over the old file, as certbot does
        third_chain, third_key = ca.issue(["127.0.0.1"])
        key.write_text(third_key)
        tmp.write_text(third_chain)
        os.replace(tmp, cert)
        watching = asyncio.create_task(tls.watch(interval=0.05))
        try:
            third = x509.load_pem_x509_certificate(third_chain.encode()).serial_number
            for _ in range(100):
                if tls.reloads == 2:
                    break
                await asyncio.sleep(0.05)
            assert await asyncio.to_thread(served_serial, port, ca.cert_path) == third
        finally:
            watching.cancel()
    finally:
        server.close()
        await server.wait_closed()


# -- a fleet that reaches its control plane by https:// only ------------------------------------
async def wait_serving(fleet: Fleet, number: int, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all((live := e.edge.releases.live.get("blog")) is not None and live.target.number == number
                  and e.push.acked.get("blog") == (number, "serving") for e in fleet.edges):
        if loop.time() > deadline:
            raise TimeoutError(f"not every edge serves release {number}")
        await asyncio.sleep(0.02)


async def get(edge, path: str) -> bytes:
    from owncdn.testing.client import HttpClient

    host, port = edge.servers[0].sockets[0].getsockname()[:2]
    async with HttpClient(host, port, default_host="blog.test") as client:
        return (await client.get(path)).body


async def test_edges_and_pushes_reach_the_control_plane_over_https_only(tmp_path, ca, monkeypatch):
    cert, key, _ = issue(ca, tmp_path / "control-tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_path))  # the private CA, trusted as OpenSSL and httpx read it
    site = tmp_path / "public"
    (site / "docs").mkdir(parents=True)
    (site / "index.html").write_text("<h1>over TLS</h1>")
    (site / "docs" / "index.html").write_text("docs")
    (site / "big.bin").write_bytes(os.urandom(3 << 20))  # a blob of its own (a PUT), not in a bundle
    async with Fleet(tmp_path / "fleet", edges=2, control_tls=ServerTls.load(cert, key)) as fleet:
        assert fleet.url.startswith("https://")
        version = await fleet.apply(SOURCE)
        await fleet.wait_applied(version)  # the edges registered and follow the state through TLS

        api = PushApi(fleet.url, fleet.admin_token)  # what `owncdn push` uses
        try:
            one = (await asyncio.to_thread(push_site, api, site, service="blog", env=fleet.env)).release["number"]
        finally:
            api.close()
        await wait_serving(fleet, one)
        for edge in fleet.edges:
            assert await get(edge, "/") == b"<h1>over TLS</h1>"
            assert await get(edge, "/big.bin") == (site / "big.bin").read_bytes()

        (site / "docs" / "index.html").write_text("docs, second edition")
        env = dict(os.environ, OWNCDN_CONTROL=fleet.url, OWNCDN_TOKEN=fleet.admin_token,
                   XDG_CACHE_HOME=str(tmp_path / "cache"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "owncdn.cli", "push", str(site), "--service", "blog", "--json", "--wait", "30",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        await wait_serving(fleet, one + 1)
        for edge in fleet.edges:
            assert await get(edge, "/docs/") == b"docs, second edition"

        # the listener speaks TLS only to the app: a plain request is told where to go (httpsport.py)
        reader, writer = await asyncio.open_connection("127.0.0.1", fleet.port)
        writer.write(f"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{fleet.port}\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ") and json.loads(body)["error"] == {
            "code": "https_required", "message": f"this port speaks HTTPS only: use https://127.0.0.1:{fleet.port}/"}
        plain = PushApi(fleet.url.replace("https://", "http://"), fleet.admin_token)
        try:
            with pytest.raises(ApiError, match=f"use https://127.0.0.1:{fleet.port}/"):
                await asyncio.to_thread(plain.missing_blobs, ["0" * 64 + "-b3"])  # this loop serves the fleet
        finally:
            plain.close()

        # and a client that does not trust the certificate is refused, never sent a token
        monkeypatch.delenv("SSL_CERT_FILE")
        env.pop("SSL_CERT_FILE", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "owncdn.cli", "push", str(site), "--service", "blog",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode != 0 and "certificate" in err.decode().lower(), err.decode()


# -- the command ------------------------------------------------------------------------------
async def _control(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "owncdn.cli", "control", "--state-dir", str(tmp_path / "state"), "--no-acme",
        "--no-health", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_the_command_wants_both_files_and_says_what_is_wrong(tmp_path, ca):
    cert, key, _ = issue(ca, tmp_path / "pair")
    code, _, err = await _control(tmp_path, "--tls-cert", str(cert))
    assert code != 0 and "--tls-cert and --tls-key go together" in err
    code, _, err = await _control(tmp_path, "--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope.pem"))
    assert code != 0 and "cannot read the TLS key" in err and "nope.pem" in err


async def test_the_command_serves_https_and_says_so(tmp_path, ca):
    from owncdn.testing.fleet import free_port

    cert, key, serial = issue(ca, tmp_path / "pair")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "owncdn.cli", "control", "--listen", f"127.0.0.1:{port}",
        "--state-dir", str(tmp_path / "state"), "--no-acme", "--no-health",
        "--tls-cert", str(cert), "--tls-key", str(key),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        lines = []
        while not any("control plane on" in line for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, (lines, (await proc.stderr.read()).decode())
            lines.append(line.decode())
        assert f"control plane on https://127.0.0.1:{port}" in lines[-1]
        for _ in range(200):
            try:
                assert await asyncio.to_thread(served_serial, port, ca.cert_path) == serial
                break
            except (ConnectionRefusedError, ssl.SSLError, OSError):
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the control plane never answered TLS")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


@pytest.mark.parametrize("first, where", [
    (b"GET / HTTP/1.1\r\nHost: cdn.example.org\r\n\r\n", "https://cdn.example.org/"),
    (b"POST /v1/x HTTP/1.1\r\nUser-Agent: u\r\nhost:  10.0.0.1:8400 \r\n\r\n", "https://10.0.0.1:8400/"),
    (b"GET / HTTP/1.1\r\nHost: [::1]:8400\r\n\r\n", "https://[::1]:8400/"),
    (b"GET / HTTP/1.0\r\n\r\n", "the https:// URL of this address"),  # no Host
    (b"GET / HTTP/1.1\r\nHost: a/b\"<x>\r\n\r\n", "the https:// URL of this address"),  # not a host: not echoed
    (b"\x00\x01garbage", "the https:// URL of this address"),
])
def test_a_plain_request_is_answered_with_where_to_go(first, where):
    from owncdn.control.httpsport import plain_answer

    head, _, body = plain_answer(first).partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request" and b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": {"code": "https_required", "message": f"this port speaks HTTPS only: use {where}"}}


async def test_a_connection_that_says_nothing_is_closed(monkeypatch, tmp_path, ca):
    from owncdn.control import httpsport

    monkeypatch.setattr(httpsport, "FIRST_BYTES_SECONDS", 0.2)
    cert, key, _ = issue(ca, tmp_path / "pair")
    factory = httpsport.tls_port(asyncio.Protocol, ServerTls.load(cert, key).context)
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server, unanswered
        writer.close()
    finally:
        server.close()
