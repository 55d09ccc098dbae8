"""HTTP/1.1 client for origins: a keep-alive connection pool with timeouts.

Rules:
1. One `OriginPool` per origin (scheme, host, port, TLS settings). Idle connections
   are kept for reuse; a connection is returned to the pool only when its response
   was read to the end and both sides allow keep-alive.
2. Three timeouts, each raising `OriginTimeout` with the phase in its message:
   connect (TCP + TLS), first byte (request sent -> response head complete), idle
   (gap between two reads of the body).
3. Errors are grouped by cause at this boundary: `OriginConnectError` (nothing was
   sent, safe to retry anywhere), `OriginTimeout`, `OriginProtocolError` (the origin
   spoke bad HTTP) -- all subclasses of `OriginError`.
4. A reused idle connection that the origin closed meanwhile fails with
   `OriginConnectError(reused=True)` before any response byte, so the caller may
   retry idempotent requests on a fresh connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools


class OriginError(Exception):
    """The origin could not give a usable response."""

    retryable = False


class OriginConnectError(OriginError):
    """No request byte reached the origin (refused, unreachable, TLS failure, stale keep-alive)."""

    retryable = True

    def __init__(self, message: str, reused: bool = False) -> None:
        super().__init__(message)
        self.reused = reused


class OriginTimeout(OriginError):
    pass


class OriginProtocolError(OriginError):
    pass


@dataclass(frozen=True, slots=True)
class OriginAddress:
    scheme: str
    host: str
    port: int
    path_prefix: str = ""
    tls_verify: bool = True

    @classmethod
    def from_url(cls, url: str, tls_verify: bool = True) -> "OriginAddress":
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"origin URL must be http:// or https://, got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), tls_verify)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 30.0
    idle: float = 30.0


@dataclass(slots=True)
class OriginResponse:
    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    version: str
    conn: "OriginConnection"
    no_body: bool = False
    _done: bool = False

    def body(self) -> AsyncIterator[bytes]:
        """Yield the body in chunks as they arrive; releases the connection at the end."""
        return self.conn.read_body(self)

    def close(self) -> None:
        """Abandon the response (the connection is closed, not reused)."""
        if not self._done:
            self._done = True
            self.conn.close()


class OriginConnection(asyncio.Protocol):
    """One connection to an origin; parses responses with llhttp."""

    def __init__(self, pool: "OriginPool") -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.requests = 0
        self._chunks: deque[bytes] = deque()
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_done = False
        self._complete = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future | None = None
        self._paused = False
        self._buffered = 0
        self._skip_body = False
        self._keep_alive = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("busy" if self._waiter or self._head_done else "idle")
        return f"<OriginConnection {self.pool.address} {state} requests={self.requests}>"

    # -- asyncio.Protocol --------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(OriginProtocolError(f"bad response from {self.pool.address}: {exc}"))
            return
        if self._buffered > 1 << 20 and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.pool.forget(self)
        if not self._complete:
            if self._head_done:
                try:
                    self.parser.feed_data(b"")  # EOF may end a close-delimited body
                except httptools.HttpParserError:
                    pass
            if not self._complete:
                err = OriginProtocolError(f"{self.pool.address} closed the connection")
                if not self._head_done and not self._headers:
                    err = OriginConnectError(f"{self.pool.address} closed the connection")
                self._fail(err)
        self._wake()

    # -- llhttp callbacks ----------------------------------------------------
    def on_message_begin(self) -> None:
        self._headers = []
        self._head_done = self._complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the message ends
        if self._skip_body:
            # llhttp cannot know the request was HEAD; the message ends with its head.
            # send() gives the next request a fresh parser.
            self._complete = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        self._complete = True

    # -- request/response --------------------------------------------------
    def _fail(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        self.close()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self, timeout: float, phase: str) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can lose a cancel (owncdn/waiting.py)
                await self._waiter
        except asyncio.TimeoutError:
            self.close()
            raise OriginTimeout(f"{self.pool.address}: no {phase} within {timeout:g}s") from None
        finally:
            self._waiter = None

    def send(self, head: bytes) -> None:
        self.requests += 1
        self._headers = []
        self._head_done = self._complete = False
        self._error = None
        self._chunks.clear()
        self._buffered = 0
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(head)

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def read_head(self, method: str, timeouts: Timeouts) -> OriginResponse:
        self._skip_body = method == "HEAD"
        while not self._head_done:
            if self._error is not None:
                raise self._error
            await self._wait(timeouts.first_byte, "response")
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._head_done = self._complete = False  # interim response: wait for the final one
            return await self.read_head(method, timeouts)
        version = self.parser.get_http_version()
        no_body = method == "HEAD" or status in (204, 304)
        return OriginResponse(status, "", self._headers, version, self, no_body=no_body)

    async def read_body(self, resp: OriginResponse) -> AsyncIterator[bytes]:
        timeouts = self.pool.timeouts
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < 1 << 18:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
            if self._complete or resp.no_body and self._head_done:
                break
            if self._error is not None:
                resp._done = True
                raise self._error
            await self._wait(timeouts.idle, "body data")
        resp._done = True
        self._release()

    def _release(self) -> None:
        if self.closed or not self._keep_alive:
            self.close()
        else:
            self._head_done = self._complete = False
            self.pool.put_back(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.pool.forget(self)


@dataclass
class OriginPool:
    """Keep-alive connections to one origin."""

    address: OriginAddress
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_idle: int = 64
    idle: deque = field(default_factory=deque)
    opened: int = 0

    def __repr__(self) -> str:
        return f"<OriginPool {self.address} idle={len(self.idle)} opened={self.opened}>"

    def _ssl_context(self) -> ssl.SSLContext | None:
        return tls_context(self.address) if self.address.scheme == "https" else None

    async def connect(self) -> OriginConnection:
        loop = asyncio.get_running_loop()
        ctx = self._ssl_context()
        try:
            async with asyncio.timeout(self.timeouts.connect):
                _, conn = await loop.create_connection(
                    lambda: OriginConnection(self), self.address.host, self.address.port,
                    ssl=ctx, server_hostname=self.address.host if ctx else None,
                )
        except asyncio.TimeoutError:
            raise OriginTimeout(f"{self.address}: connect timed out after {self.timeouts.connect:g}s") from None
        except (OSError, ssl.SSLError) as exc:
            raise OriginConnectError(f"{self.address}: {exc.strerror or exc}") from None
        self.opened += 1
        return conn

    async def acquire(self) -> tuple[OriginConnection, bool]:
        """A connection to use, and whether it was reused from the pool."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn, True
        return await self.connect(), False

    def put_back(self, conn: OriginConnection) -> None:
        if len(self.idle) < self.max_idle:
            self.idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: OriginConnection) -> None:
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


def tls_context(address: OriginAddress) -> ssl.SSLContext:
    """The client TLS context for ``address``: the system's trust store, or no checks
    where the origin was configured with ``tls_verify: false``."""
    ctx = ssl.create_default_context()
    if not address.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request_head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send_request(
    pool: OriginPool,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: AsyncIterator[bytes] | None = None,
) -> OriginResponse:
    """Send one request and return the response head; the body is read from the result.

    `headers` must already carry Host and the framing headers (Content-Length or
    Transfer-Encoding: chunked when `body` is given).
    """
    conn, reused = await pool.acquire()
    chunked = any(n.lower() == "transfer-encoding" for n, _ in headers)
    conn.send(request_head(method, pool.address.path_prefix + target, headers))
    try:
        if body is not None:
            async for chunk in body:
                if conn.closed:
                    break
                if chunked and chunk:
                    conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                elif chunk:
                    conn.write(chunk)
            if chunked and not conn.closed:
                conn.write(b"0\r\n\r\n")
        return await conn.read_head(method, pool.timeouts)
    except OriginConnectError as exc:
        conn.close()
        if reused:
            raise OriginConnectError(f"{exc} (reused connection)", reused=True) from None
        raise
    except BaseException:
        conn.close()
        raise
