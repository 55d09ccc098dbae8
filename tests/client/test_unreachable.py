"""A control plane that could not be reached (``owncdn.client.unreachable``): the message,
and the hint to use https:// when an http:// URL met a port that speaks only TLS."""

from __future__ import annotations

import socket
import ssl
import threading

import httpx
import pytest

from owncdn.cli.localca import LocalCA
from owncdn.client import unreachable as module
from owncdn.client.errors import ApiError
from owncdn.client.http11 import ProtocolError
from owncdn.client.pushapi import PushApi


class Listener:
    """A loopback port that, for each connection, either completes a TLS handshake and
    closes (as the control plane's TLS port does with a plain request) or just closes."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.context is not None:
                    try:
                        with self.context.wrap_socket(conn, server_side=True) as tls:
                            tls.recv(1)
                    except (OSError, ssl.SSLError):
                        pass  # a plain request: no answer, as the control plane's listener

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tls_port(tmp_path):
    chain, key = LocalCA.load_or_create(tmp_path / "ca", []).issue(["127.0.0.1"])
    (tmp_path / "cert.pem").write_text(chain)
    (tmp_path / "key.pem").write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = Listener(context)
    yield listener.port
    listener.close()


@pytest.fixture
def plain_port():
    listener = Listener(None)
    yield listener.port
    listener.close()


def test_a_tls_port_reached_by_http_is_told_to_use_https(tls_port):
    url = f"http://127.0.0.1:{tls_port}"
    error = module.unreachable(url, ProtocolError("the server closed the connection without an answer"))
    assert error.code == "unreachable" and error.status == 0
    assert str(error) == (f"cannot reach the control plane at {url}: the server closed the connection without an "
                          f"answer; it speaks HTTPS there: use https://127.0.0.1:{tls_port}")


def test_a_port_that_only_closes_gets_no_hint(plain_port):
    url = f"http://127.0.0.1:{plain_port}"
    assert str(module.unreachable(url, ProtocolError("closed"))) == f"cannot reach the control plane at {url}: closed"
    assert not module.speaks_tls("127.0.0.1", plain_port)


@pytest.mark.parametrize("url, exc", [
    ("http://127.0.0.1:9", ConnectionRefusedError(111, "Connection refused")),
    ("http://127.0.0.1:9", TimeoutError("timed out")),
    ("http://127.0.0.1:9", httpx.ConnectError("[Errno 111] Connection refused")),
    ("http://127.0.0.1:9", httpx.ConnectTimeout("timed out")),
    ("https://127.0.0.1:9", ProtocolError("closed")),  # https already
    ("http://[::1", ProtocolError("closed")),  # not a URL to probe
])
def test_no_probe_where_no_server_answered_or_https_is_used(monkeypatch, url, exc):
    monkeypatch.setattr(module, "speaks_tls", lambda *a, **k: pytest.fail("probed"))
    assert "HTTPS there" not in str(module.unreachable(url, exc))


def test_an_error_without_words_is_named():
    assert str(module.unreachable("https://x", httpx.ReadError(""))) == "cannot reach the control plane at https://x: ReadError"


def test_the_clients_say_it(tls_port):
    from owncdn.client import Client

    with Client(f"http://127.0.0.1:{tls_port}", "token") as client, \
            pytest.raises(ApiError, match=f"use https://127.0.0.1:{tls_port}"):
        client.health()


def test_the_push_client_says_it(tls_port):
    api = PushApi(f"http://127.0.0.1:{tls_port}", "token")
    try:
        with pytest.raises(ApiError, match=f"use https://127.0.0.1:{tls_port}"):
            api.missing_blobs(["0" * 64 + "-b3"])
    finally:
        api.close()


def test_an_edge_says_it_before_it_retries(tls_port, tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "owncdn.cli", "edge", "--control", f"http://127.0.0.1:{tls_port}",
                             "--token", "bootstrap", "--state-dir", str(tmp_path / "edge"), "--listen", "127.0.0.1:0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(30, proc.kill)  # a hung edge ends the read below, and the test fails
    killer.start()
    try:
        lines = []
        while not any("retrying" in line for line in lines):
            line = proc.stderr.readline()
            assert line, lines
            lines.append(line)
        assert f"it speaks HTTPS there: use https://127.0.0.1:{tls_port}; retrying" in lines[-1], lines
    finally:
        killer.cancel()
        proc.kill()
        proc.wait()
