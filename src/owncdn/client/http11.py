"""A small blocking HTTP/1.1 client connection: what ``PushApi`` needs, nothing more.

    conn = Connection("127.0.0.1", 8400, timeout=60)
    response = conn.request("POST", "/v1/blobs/missing", {"Content-Type": "application/json",
                                                          "Content-Length": "13"}, b'{"hashes":[]}')
    response.status, response.header("content-type"), response.body, response.will_close

`owncdn push` starts a new interpreter each time; importing ``http.client`` (with the
``email`` package and ``ssl`` it pulls in) took about 25 ms there, a sixth of a whole
one-file push, so the push talks through this class instead.

Rules:
1. One request at a time: ``request`` sends the head and the body (bytes, or an
   iterable of bytes whose total the caller gave as ``Content-Length``), then reads the
   whole answer: interim 1xx answers are skipped; the body is delimited by
   ``Content-Length``, by chunked transfer coding, or by the end of the connection;
   HEAD, 204 and 304 answers have none.
2. ``will_close`` is true when the connection cannot carry another request: HTTP/1.0,
   ``Connection: close``, or a body that ended with the connection.
3. What the server sends that is not HTTP/1.x (a bad status line, header line, size
   or chunk, a head over ``MAX_HEAD`` bytes, a body shorter than announced) raises
   ``ProtocolError``; network failures are the socket's ``OSError`` (``TimeoutError``
   for timeouts). After either the connection is closed; the next request opens a
   new one.
4. ``tls=True`` imports ``ssl`` only then and checks the certificate and the host
   name with the default context.
5. An iterable body may hold ``FilePiece(path, size)`` items: the file's first ``size``
   bytes, sent with ``sendfile`` (no copy through this process; read and sent in
   pieces over TLS), the pieces before them held back (``MSG_MORE``) so that they leave
   with the file's bytes rather than as small packets of their own. A file whose size
   is not ``size`` when it is opened, or that ends early, raises ``FileChanged`` (the
   connection is closed: the server sees a body cut short). Over TLS the pieces are
   sent without ``MSG_MORE`` (an ``SSLSocket`` takes no flags). Pieces of bytes up to
   ``SMALL_BODY`` each are held together up to ``GROUP_BYTES`` and sent with one
   ``sendmsg`` (joined into one ``bytes`` over TLS): the records of many small files
   kept in memory (``push`` Rule 11) leave in full segments.
6. A plain connection is a socket of the C module ``_socket``, read through
   ``io.BufferedReader``: the ``socket`` module (with ``selectors`` and ``enum``) took
   about 2-4 ms of `owncdn push`'s start. ``tls=True`` uses ``socket``, which ``ssl``
   needs and imports anyway.
"""

from __future__ import annotations

import io
import os

try:
    import _socket  # Rule 6
except ImportError:  # pragma: no cover - CPython has it
    _socket = None

TYPE_CHECKING = False  # not from typing: `owncdn push` starts without importing it
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterable

__all__ = ["Connection", "FileChanged", "FilePiece", "ProtocolError", "Response"]

MAX_LINE = 65536
MAX_HEAD = 256 << 10
SMALL_BODY = 64 << 10  # bodies up to this size go out with the head in one send
GROUP_BYTES = 1 << 20  # small pieces of a body held together up to this many bytes (Rule 5)
_IOV = 1024  # buffers one sendmsg takes at most (Linux's IOV_MAX)


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x (Rule 3)."""


class FileChanged(Exception):
    """A ``FilePiece`` whose file does not have its size (Rule 5); the message names it."""


class FilePiece:
    """Rule 5: part of a body, the first ``size`` bytes of the file at ``path``."""

    __slots__ = ("path", "size")

    def __init__(self, path: str, size: int) -> None:
        self.path, self.size = path, size

    def __repr__(self) -> str:
        return f"<FilePiece {self.path} {self.size}>"


class Response:
    """A complete answer (Rule 1)."""

    __slots__ = ("status", "reason", "headers", "body", "will_close")

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, will_close: bool) -> None:
        self.status, self.reason, self.headers, self.body, self.will_close = status, reason, headers, body, will_close

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes{' close' if self.will_close else ''}>"

    def header(self, name: str, default: str | None = None) -> str | None:
        """The last value of the field ``name`` (any case)."""
        name = name.lower()
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return default


class Connection:
    """One keep-alive connection to ``host:port`` (opened on first use)."""

    def __init__(self, host: str, port: int | None = None, timeout: float = 60.0, tls: bool = False) -> None:
        self.host, self.tls, self.timeout = host, tls, timeout
        self.port = port or (443 if tls else 80)
        name = f"[{host}]" if ":" in host else host
        self.authority = name if self.port == (443 if tls else 80) else f"{name}:{self.port}"
        self.sock: socket.socket | None = None
        self._reader = None

    def __repr__(self) -> str:
        return f"<Connection {self.authority}{' tls' if self.tls else ''} {'open' if self.sock else 'closed'}>"

    def settimeout(self, timeout: float) -> None:
        self.timeout = timeout
        if self.sock is not None:
            self.sock.settimeout(timeout)

    def close(self) -> None:
        sock, reader, self.sock, self._reader = self.sock, self._reader, None, None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()

    def _connect(self) -> None:
        host = self.host.encode("ascii") if self.host.isascii() else self.host  # bytes: no "idna" codec import
        if not self.tls and _socket is not None:
            sock = _open(host, self.port, self.timeout)  # Rule 6
            self.sock, self._reader = sock, io.BufferedReader(_Reading(sock))
            return
        import socket

        sock = socket.create_connection((host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                import ssl  # Rule 4: only for https

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock, self._reader = sock, sock.makefile("rb")

    def request(self, method: str, target: str, headers: dict[str, str],
                body: bytes | bytearray | memoryview | Iterable[bytes] | None = None) -> Response:
        """Rules 1-3."""
        try:
            if self.sock is None:
                self._connect()
            head = [f"{method} {target} HTTP/1.1\r\nHost: {self.authority}\r\n"]
            head += [f"{name}: {value}\r\n" for name, value in headers.items()]
            data = "".join(head).encode("latin-1") + b"\r\n"
            if body is None or isinstance(body, (bytes, bytearray, memoryview)):
                if body and len(body) > SMALL_BODY:
                    self.sock.sendall(data)
                    self.sock.sendall(body)
                else:
                    self.sock.sendall(data + bytes(body or b""))
            else:
                self._send_pieces(data, body)
            response = self._response(method)
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response

    def _send_pieces(self, head: bytes, body: Iterable) -> None:
        """Rules 1 and 5: the head, then each piece; bytes held back until the next
        piece when that one is a file."""
        sock, more = self.sock, 0 if self.tls else getattr(_socket, "MSG_MORE", 0)
        held, held_bytes = [head], len(head)
        for piece in body:
            if isinstance(piece, FilePiece) or len(piece) > SMALL_BODY:
                if held:
                    self._send_held(held, more)
                    held, held_bytes = [], 0
                if isinstance(piece, FilePiece):
                    self._send_file(piece)
                else:
                    sock.sendall(piece)
                continue
            held.append(piece)
            held_bytes += len(piece)
            if held_bytes > GROUP_BYTES:
                self._send_held(held, more)
                held, held_bytes = [], 0
        if held:
            self._send_held(held, 0)

    def _send_held(self, held: list, flags: int) -> None:
        """Rule 5: the pieces held, in one ``sendmsg`` (more when the socket takes them
        in parts); joined over TLS."""
        if self.tls or len(held) == 1:
            self.sock.sendall(held[0] if len(held) == 1 else b"".join(held), flags)
            return
        views = [memoryview(piece) for piece in held if piece]  # an empty one would be sent forever
        i = 0
        while i < len(views):
            sent = self.sock.sendmsg(views[i:i + _IOV], (), flags)
            while sent:
                size = len(views[i])
                if sent < size:
                    views[i] = views[i][sent:]
                    break
                sent -= size
                i += 1

    def _send_file(self, piece: FilePiece) -> None:
        fd = os.open(piece.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            if os.fstat(fd).st_size != piece.size:
                raise FileChanged(f"{piece.path} no longer has the size it was hashed with")
            if self.tls or not hasattr(os, "sendfile"):
                self._send_read(fd, piece)
                return
            sent, out = 0, self.sock.fileno()
            while sent < piece.size:
                try:
                    n = os.sendfile(out, fd, sent, piece.size - sent)
                except (BlockingIOError, InterruptedError):
                    self._wait_writable()
                    continue
                if not n:
                    raise FileChanged(f"{piece.path} ended before the size it was hashed with")
                sent += n
        finally:
            os.close(fd)

    def _send_read(self, fd: int, piece: FilePiece) -> None:
        left = piece.size
        while left:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise FileChanged(f"{piece.path} ended before the size it was hashed with")
            self.sock.sendall(chunk)
            left -= len(chunk)

    def _wait_writable(self) -> None:
        """A socket with a timeout is non-blocking underneath: wait as ``sendall`` would."""
        import select

        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLOUT)
        if not poller.poll(None if self.timeout is None else self.timeout * 1000):
            raise TimeoutError("timed out sending the body")

    # -- reading (Rules 1-3) ------------------------------------------------------------
    def _line(self) -> bytes:
        line = self._reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError("a line of the answer is too long")
        if not line:
            raise ProtocolError("the server closed the connection without an answer")
        return line

    def _response(self, method: str) -> Response:
        while True:
            status_line = self._line()
            parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (parts[1].isdigit() and len(parts[1]) == 3):
                raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
            status, version = int(parts[1]), parts[0]
            headers = self._headers()
            if not 100 <= status < 200:
                break
        fields = {name: value for name, value in headers}  # the last of each
        close = version == "HTTP/1.0" or "close" in fields.get("connection", "").lower()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in fields:
            length = fields["content-length"]
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length {length[:40]!r}")
            body = self._exactly(int(length))
        else:
            body, close = self._reader.read(), True
        return Response(status, parts[2] if len(parts) > 2 else "", headers, body, close)

    def _headers(self) -> list[tuple[str, str]]:
        out, size = [], 0
        while True:
            line = self._line()
            size += len(line)
            if size > MAX_HEAD:
                raise ProtocolError("the answer's head is too large")
            if line in (b"\r\n", b"\n"):
                return out
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name or name != name.strip():
                raise ProtocolError(f"bad header line {line[:80]!r}")
            out.append((name.lower(), value.strip()))

    def _exactly(self, length: int) -> bytes:
        data = self._reader.read(length)
        if len(data) != length:
            raise ProtocolError(f"the body ended after {len(data)} of {length} bytes")
        return data

    def _chunked(self) -> bytes:
        parts = []
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
                raise ProtocolError(f"bad chunk size {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self._line() not in (b"\r\n", b"\n"):  # trailer fields: ignored
                    pass
                return b"".join(parts)
            parts.append(self._exactly(size))
            if self._line() not in (b"\r\n", b"\n"):
                raise ProtocolError("a chunk does not end with CRLF")


def _open(host: bytes | str, port: int, timeout: float | None) -> _socket.socket:
    """``socket.create_connection((host, port), timeout)`` with ``_socket`` (Rule 6), and
    ``TCP_NODELAY``: each address in turn, the first error if none connects."""
    first: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(address)
            return sock
        except BaseException as exc:
            sock.close()
            if not isinstance(exc, OSError):
                raise
            first = first or exc
    raise first or OSError(f"no address for {host!r}")


class _Reading(io.RawIOBase):
    """The reading side of a ``_socket`` socket, for ``io.BufferedReader`` (what
    ``socket.makefile("rb")`` makes; a timeout raises ``TimeoutError``)."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)
