"""`owncdn edge --tls-listen --cert --key` as a user runs it: a real process, curl-like clients."""

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from owncdn.edge.tls import CertStore
from owncdn.testing.certs import TestCA
from owncdn.testing.https import handshake
from owncdn.testing.origin import FakeOrigin
from owncdn.testing.ports import free_port, wait_for_port

OWNCDN = [sys.executable, "-m", "owncdn.cli"]


async def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)


async def test_https_listener_with_a_certificate_file_and_synced_ones(tmp_path: Path):
    ca = TestCA()
    cert, key = ca.issue(["example.test", "*.example.test"]).write(tmp_path)
    synced = ca.issue(["shop.test"])
    CertStore(tmp_path / "state" / "certs").install("shop", [], synced.cert_pem, synced.key_pem)  # as the sync would
    origin = await FakeOrigin().start()
    origin.route("/hello", body=b"hi", headers={"Cache-Control": "max-age=60"})
    (tmp_path / "cdn.yaml").write_text(
        "version: 1\nedge: {id: tls-edge, location: here, access_log: 'off'}\nservices:\n"
        f"  - name: s\n    hostnames: [example.test, shop.test]\n    origins: ['{origin.url}']\n"
        "    https: {redirect: true, hsts: {max_age: 1h}}\n")
    port, tls_port, admin = free_port(), free_port(), free_port()
    proc = subprocess.Popen(OWNCDN + ["edge", "--config", str(tmp_path / "cdn.yaml"),
                                      "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
                                      "--tls-listen", f"127.0.0.1:{tls_port}", "--cert", str(cert),
                                      "--key", str(key), "--state-dir", str(tmp_path / "state")],
                            stderr=subprocess.PIPE, text=True)
    try:
        await wait_for_port(tls_port, proc)
        async with httpx.AsyncClient(verify=ca.client_context(), http2=True) as client:
            rs = [await client.get(f"https://127.0.0.1:{tls_port}/hello", headers={"host": name},
                                   extensions={"sni_hostname": name}) for name in ("example.test", "shop.test")]
        async with httpx.AsyncClient() as client:
            plain = await client.get(f"http://127.0.0.1:{port}/hello", headers={"host": "example.test"})
        default = await handshake(tls_port, None, _no_hostname(ca))
    finally:
        code = await _stop(proc)
        await origin.close()
    assert [(r.http_version, r.status_code, r.content) for r in rs] == [("HTTP/2", 200, b"hi")] * 2
    assert rs[0].headers["strict-transport-security"] == "max-age=3600"
    assert (plain.status_code, plain.headers["location"]) == (301, "https://example.test/hello")
    assert default.names == ("example.test", "*.example.test")  # --cert is the default certificate
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "state" / "certs").iterdir()) == ["shop.json"]  # --cert is not copied


def _no_hostname(ca):
    ctx = ca.client_context()
    ctx.check_hostname = False
    return ctx


def test_a_key_that_does_not_match_is_one_line_and_exit_1(tmp_path: Path):
    ca = TestCA()
    cert, _ = ca.issue(["example.test"]).write(tmp_path, "a")
    _, key = ca.issue(["example.test"]).write(tmp_path, "b")
    (tmp_path / "cdn.yaml").write_text("version: 1\n")
    res = subprocess.run(OWNCDN + ["edge", "--config", str(tmp_path / "cdn.yaml"), "--listen", "127.0.0.1:0",
                                   "--admin", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--cert", str(cert),
                                   "--key", str(key), "--state-dir", str(tmp_path / "state")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "owncdn: the private key does not belong to the certificate (the first one in the chain)"]
    res = subprocess.run(OWNCDN + ["edge", "--config", str(tmp_path / "cdn.yaml"), "--cert", str(cert)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--cert and --key go together" in res.stderr
