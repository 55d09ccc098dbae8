"""``owncdn.client.http11``: a scripted server on loopback answers, the connection reads."""

import socket
import threading

import pytest

from owncdn.client.http11 import Connection, FileChanged, FilePiece, ProtocolError


class Scripted:
    """A one-connection-at-a-time server that reads one request head (and a body of its
    Content-Length) per answer in ``answers`` and sends the answer's bytes; a ``None``
    after an answer closes the connection once it is sent."""

    def __init__(self, answers: list, tls=None) -> None:
        self.answers = list(answers)
        self.tls = tls  # an ssl.SSLContext: each connection is wrapped in it
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except OSError:  # a client that refused the certificate
                    conn.close()
                    continue
            with conn:
                buf = b""
                while self.answers:
                    while b"\r\n\r\n" not in buf:
                        more = conn.recv(65536)
                        if not more:
                            break
                        buf += more
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(buf) < length:
                        more = conn.recv(65536)
                        if not more:  # the client gave up on its body
                            return
                        buf += more
                    self.requests.append(head + b"\r\n\r\n" + buf[:length])
                    buf = buf[length:]
                    conn.sendall(self.answers.pop(0))
                    if self.answers and self.answers[0] is None:
                        self.answers.pop(0)
                        break

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve():
    servers = []

    def start(*answers):
        server = Scripted(list(answers))
        servers.append(server)
        return server, Connection("127.0.0.1", server.port, timeout=5)

    yield start
    for server in servers:
        server.close()


def test_keep_alive_content_length_then_chunked_on_one_connection(serve):
    server, conn = serve(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
                         b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n"
                         b"A\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n")
    first = conn.request("POST", "/v1/x", {"Content-Length": "5", "Authorization": "Bearer t"}, b"hello")
    assert (first.status, first.body, first.will_close, first.header("CONTENT-TYPE")) == (
        200, b"{}", False, "application/json")
    second = conn.request("PUT", "/v1/y", {"Content-Length": "6"}, iter([b"abc", b"def"]))
    assert (second.status, second.reason, second.body) == (201, "Created", b"abc0123456789")
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port)
    assert server.requests[0].endswith(b"Authorization: Bearer t\r\n\r\nhello")
    assert server.requests[1].endswith(b"\r\n\r\nabcdef")
    assert repr(conn).endswith("open>")


def test_interim_answers_are_skipped_and_head_has_no_body(serve):
    server, conn = serve(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                         b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert conn.request("DELETE", "/a", {}).status == 204
    head = conn.request("HEAD", "/b", {})
    assert (head.status, head.body, head.will_close) == (200, b"", False)


def test_a_body_to_the_end_of_the_connection_or_connection_close(serve):
    server, conn = serve(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", None,
                         b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", None)
    first = conn.request("GET", "/a", {})
    assert (first.body, first.will_close, conn.sock) == (b"until the end", True, None)
    second = conn.request("GET", "/b", {})  # a new connection
    assert (second.body, second.will_close, server.connections) == (b"x", True, 2)


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nbad line\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
    b"",
])
def test_what_is_not_http_is_a_protocol_error_and_closes(serve, answer):
    server, conn = serve(answer, None)
    with pytest.raises(ProtocolError):
        conn.request("GET", "/", {})
    assert conn.sock is None


def test_network_failures_are_os_errors():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once closed
    with pytest.raises(OSError):
        Connection("127.0.0.1", port, timeout=2).request("GET", "/", {})
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        conn = Connection("127.0.0.1", silent.getsockname()[1], timeout=0.2)
        with pytest.raises(TimeoutError):
            conn.request("GET", "/", {})
    finally:
        silent.close()


def test_host_header_leaves_out_the_default_port_and_brackets_ipv6():
    assert Connection("example.com", None).authority == "example.com"
    assert Connection("example.com", 443, tls=True).authority == "example.com"
    assert Connection("::1", 8400).authority == "[::1]:8400"


def test_file_pieces_go_out_with_sendfile_between_the_other_pieces(serve, tmp_path, monkeypatch):
    import os

    big, small = tmp_path / "big.bin", tmp_path / "small.txt"
    big.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: more than one sendfile call may take
    small.write_bytes(b"small")
    sent_with = []
    real = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *args: sent_with.append(args[1]) or real(*args))
    server, conn = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    body = [b"<", FilePiece(str(big), 1 << 20), b"|", FilePiece(str(small), 5), b">"]
    size = 3 + (1 << 20) + 5
    assert conn.request("POST", "/bundle", {"Content-Length": str(size)}, body).status == 200
    assert server.requests[0].endswith(b"\r\n\r\n<" + big.read_bytes() + b"|small>")
    assert len(sent_with) >= 2  # both files, never read here


def test_small_pieces_go_out_together_in_sendmsgs_even_when_sent_in_parts(serve, tmp_path, monkeypatch):
    """Rule 5: 5,000 pieces of up to 2 KiB, some empty (over IOV_MAX and over
    GROUP_BYTES, the socket taking them in parts), then a file, then more pieces: all
    in order."""
    import os
    import random

    pieces = [os.urandom(random.Random(i).randrange(1, 2048)) if i % 97 else b"" for i in range(5000)]  # empty files too
    pieces[3999] = pieces[4999] = b""  # the last piece before the file, and the body's last
    tail = tmp_path / "tail.bin"
    tail.write_bytes(b"T" * 100_000)
    calls = []
    server, conn = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    conn._connect()
    real = conn.sock

    class Counting:  # the C socket's methods cannot be patched: wrap it
        def __getattr__(self, name):
            return getattr(real, name)

        def sendmsg(self, buffers, *rest):
            buffers = list(buffers)
            calls.append(len(buffers))
            return real.sendmsg(buffers[:7] if len(calls) % 3 == 0 else buffers, *rest)  # now and then in part

    conn.sock = Counting()
    body = [*pieces[:4000], FilePiece(str(tail), 100_000), *pieces[4000:]]
    size = sum(map(len, pieces)) + 100_000
    assert conn.request("POST", "/bundle", {"Content-Length": str(size)}, body).status == 200
    assert server.requests[0].endswith(b"\r\n\r\n" + b"".join(pieces[:4000]) + tail.read_bytes() + b"".join(pieces[4000:]))
    assert calls and len(calls) < 5000 // 7 + 20 and max(calls) <= 1024


@pytest.mark.parametrize("written", [b"longer now", b"shor"])
def test_a_file_piece_whose_size_changed_raises_and_closes(serve, tmp_path, written):
    path = tmp_path / "f.txt"
    path.write_bytes(written)
    server, conn = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(FileChanged, match="f.txt"):
        conn.request("POST", "/bundle", {"Content-Length": "5"}, [FilePiece(str(path), 5)])
    assert repr(conn).endswith("closed>")


def test_https_checks_the_certificate_and_sends_file_pieces(tmp_path, monkeypatch):
    """Rules 4-6: over TLS (``socket`` and ``ssl``, certificate and host name checked)
    the same request with file pieces goes out (read and sent in pieces, no MSG_MORE:
    an SSLSocket takes no flags)."""
    import ssl

    from owncdn.cli.localca import LocalCA

    ca = LocalCA.load_or_create(tmp_path / "ca", permitted=[])
    chain, key = ca.issue(["localhost"])
    (tmp_path / "chain.pem").write_text(chain)
    (tmp_path / "key.pem").write_text(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_path))  # what create_default_context trusts
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    server = Scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"] * 2, tls=context)
    try:
        data = tmp_path / "data.bin"
        data.write_bytes(bytes(range(256)) * 1024)
        conn = Connection("localhost", server.port, timeout=5, tls=True)
        body = [b"<", FilePiece(str(data), 256 * 1024), b">"]
        assert conn.request("POST", "/bundle", {"Content-Length": str(2 + 256 * 1024)}, body).status == 200
        assert conn.request("GET", "/again", {}).body == b"{}"  # kept alive
        assert server.requests[0].endswith(b"\r\n\r\n<" + data.read_bytes() + b">") and server.connections == 1
        assert repr(conn) == f"<Connection localhost:{server.port} tls open>"
        conn.close()
    finally:
        server.close()
    untrusted = Scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], tls=context)
    try:
        other = LocalCA.load_or_create(tmp_path / "other", permitted=[])
        monkeypatch.setenv("SSL_CERT_FILE", str(other.cert_path))  # another authority
        with pytest.raises(ssl.SSLCertVerificationError):
            Connection("localhost", untrusted.port, timeout=5, tls=True).request("GET", "/", {})
    finally:
        untrusted.close()
