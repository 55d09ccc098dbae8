"""A small HTTP/1.1 test client that shows exactly what came over the wire.

`HttpClient` keeps one keep-alive connection and parses responses with llhttp;
`raw_exchange` sends arbitrary bytes (for malformed and smuggling tests) and returns
everything the server sent until it closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def cache(self) -> str | None:
        return self.headers.get("x-cache")

    def __repr__(self) -> str:
        return f"<Response {self.status} x-cache={self.cache} body={len(self.body)}B>"


class _ResponseReader:
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[Response] = []
        self._reset()

    def _reset(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []

    def on_message_begin(self) -> None:
        self._reset()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        merged: dict[str, str] = {}
        for k, v in self.headers:
            k = k.lower()
            merged[k] = f"{merged[k]}, {v}" if k in merged else v
        self.done.append(Response(self.parser.get_status_code(), merged, b"".join(self.body), self.headers))


class _HeadReader(_ResponseReader):
    """A response to HEAD: llhttp cannot know the request method, so the head ends it."""

    def on_headers_complete(self) -> None:
        self.on_message_complete()


class HttpClient:
    def __init__(self, host: str, port: int, default_host: str = "example.test") -> None:
        self.host = host
        self.port = port
        self.default_host = default_host
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.parse: _ResponseReader | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.parse = None

    async def request(self, method: str = "GET", path: str = "/", headers: dict[str, str] | None = None,
                      body: bytes | None = None, timeout: float = 10.0) -> Response:
        responses = await self.pipeline([(method, path, headers, body)], timeout)
        return responses[0]

    async def get(self, path: str = "/", **kw) -> Response:
        return await self.request("GET", path, **kw)

    async def head(self, path: str = "/", **kw) -> Response:
        return await self.request("HEAD", path, **kw)

    async def pipeline(self, requests, timeout: float = 10.0) -> list[Response]:
        """Send several requests at once on this connection; read their responses."""
        if self.writer is None or self.writer.is_closing():
            await self._connect()
        data = b""
        heads = []
        for method, path, headers, body in requests:
            fields = {"Host": self.default_host}
            fields.update(headers or {})
            if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k in fields):
                fields["Content-Length"] = str(len(body))
            lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items()]
            data += ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
            heads.append(method)
        self.writer.write(data)
        out: list[Response] = []
        for method in heads:
            out.append(await asyncio.wait_for(self._read_one(method == "HEAD"), timeout))
        return out

    async def _read_one(self, head_only: bool) -> Response:
        if self.parse is None or head_only:
            self.parse = _HeadReader() if head_only else _ResponseReader()
        parse = self.parse
        while not parse.done:
            data = await self.reader.read(65536)
            if not data:
                try:
                    parse.parser.feed_data(b"")  # EOF ends a close-delimited body
                except httptools.HttpParserError:
                    raise ConnectionError("server closed the connection mid-response") from None
                if parse.done:
                    break
                raise ConnectionError("server closed the connection before a response")
            try:
                parse.parser.feed_data(data)
            except httptools.HttpParserError:
                if not parse.done:
                    raise
        if head_only:
            self.parse = None
        return parse.done.pop(0)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except ConnectionError:
                pass
            self.writer = None

    async def __aenter__(self) -> "HttpClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


async def raw_exchange(host: str, port: int, data: bytes | list[bytes], timeout: float = 5.0,
                       pause: float = 0.0) -> bytes:
    """Send raw bytes (in pieces, `pause` seconds apart) and read until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for piece in [data] if isinstance(data, bytes) else data:
            writer.write(piece)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        chunks = []
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        writer.close()
