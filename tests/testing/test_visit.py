"""The world's measuring client: one GET timed to the first byte, over HTTP and HTTPS (loopback)."""

import socket
import ssl
import threading

from owncdn.testing.certs import TestCA
from owncdn.testing.visit import _fetch, visit

PAGE = b'<link href="/a.css"><img src="/b.png">'


def _server(ctx: ssl.SSLContext | None = None):
    """A tiny HTTP/1.1 server on a free loopback port: every path answers 200 with X-Cache: HIT."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                if ctx is not None:
                    conn = ctx.wrap_socket(conn, server_side=True)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                seen.append(data)
                body = PAGE if data.startswith(b"GET /?") or data.startswith(b"GET / ") else b"asset"
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Cache: HIT\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, seen


def test_fetch_times_the_first_byte_then_parses_the_response():
    listener, seen = _server()
    try:
        r = _fetch("127.0.0.1", listener.getsockname()[1], "www.example.test", "/?v=1")
    finally:
        listener.close()
    assert r["status"] == 200 and r["cache"] == "HIT" and r["body"] == PAGE
    assert 0 < r["connect"] <= r["ttfb"] <= r["headers"] and r["tls"] is None
    # one request, in the form a browser sends: Host and no body
    assert seen[0].startswith(b"GET /?v=1 HTTP/1.1\r\nHost: www.example.test\r\n")


def _tls_server(tmp_path):
    """`_server` over TLS with a certificate for www.example.test from a test CA, and a
    client context that trusts that CA."""
    ca = TestCA("visit test CA")
    cert, key = ca.issue(["www.example.test"]).write(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    listener, seen = _server(server_ctx)
    return listener, seen, ssl.create_default_context(cafile=str(ca.write(tmp_path)))


def test_visit_over_tls_loads_the_page_and_its_assets(tmp_path):
    listener, seen, client_ctx = _tls_server(tmp_path)
    try:
        r = visit("www.example.test", None, "127.0.0.1", listener.getsockname()[1], "v=2", client_ctx)
    finally:
        listener.close()
    assert r["cache"] == "HIT" and r["bytes"] == len(PAGE) + 2 * len(b"asset")
    assert r["tls"] > 0 and r["connect"] + r["tls"] <= r["ttfb"] <= r["headers"] <= r["page"]
    assert r["tls_cpu"] is not None   # the client's own CPU in the handshake (visit rule 2)
    # the TLS warm-up (rule 6) went to the visitor's own listener: the server saw the visit only
    assert sorted(req.split(b" ")[1] for req in seen) == [b"/?v=2", b"/a.css?v=2", b"/b.png?v=2"]


def test_the_tls_warm_up_makes_a_handshake_on_the_visitors_own_loopback():
    from owncdn.testing.visit import _warm_up

    _warm_up("www.example.test", tls=True)   # its own CA, certificate and listener: nothing else is asked


def test_a_returning_visitor_resumes_its_tls_sessions(tmp_path):
    listener, seen, client_ctx = _tls_server(tmp_path)
    try:
        port = listener.getsockname()[1]
        first = visit("www.example.test", None, "127.0.0.1", port, "v=3", client_ctx)
        back = visit("www.example.test", None, "127.0.0.1", port, "v=3", client_ctx, resume=True)
    finally:
        listener.close()
    assert first["resumed"] is False                  # a first visit: a full handshake (https-warm)
    assert back["resumed"] is True and back["cache"] == "HIT"   # rule 7
    # the returning visitor's earlier, untimed load came first: page and assets twice over
    assert [req.split(b" ")[1] for req in seen[3:]].count(b"/?v=3") == 2 and len(seen) == 9
