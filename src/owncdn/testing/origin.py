"""A scripted origin on loopback: answers from a table of routes, records every request.

    origin = FakeOrigin()
    origin.route("/a", body=b"hello", headers={"Cache-Control": "max-age=60"})
    origin.route("/seq", responses=[Reply(200, body=b"v1"), Reply(500)])   # one per request, last repeats
    origin.route("/dyn", handler=lambda req: Reply(200, body=req.path.encode()))
    await origin.start(); ... origin.requests ...; await origin.close()

Replies can be delayed (`delay`), held until an event is set (`hold`), sent chunked
(`chunks`), or cut off mid-body (`abort_after`). ETag / Last-Modified conditionals
are answered with 304 when `conditional=True`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] | list[tuple[str, str]] = field(default_factory=dict)
    delay: float = 0.0
    hold: asyncio.Event | None = None
    chunks: list[bytes] | None = None   # send chunked with these chunks instead of body
    abort_after: int | None = None      # close the connection after this many body bytes
    conditional: bool = True            # answer If-None-Match / If-Modified-Since with 304
    close: bool = False


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]]


@dataclass
class _Route:
    replies: list[Reply] | None = None
    handler: Callable[[SeenRequest], Reply] | None = None
    served: int = 0

    def next(self, req: SeenRequest) -> Reply:
        if self.handler is not None:
            return self.handler(req)
        reply = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return reply


class _OriginConnection(asyncio.Protocol):
    def __init__(self, origin: "FakeOrigin") -> None:
        self.origin = origin
        self.parser = httptools.HttpRequestParser(self)
        self.queue: asyncio.Queue = asyncio.Queue()
        self.transport = None
        self.task = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.origin.connections += 1
        self.origin.open.add(self)
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc) -> None:
        self.origin.open.discard(self)
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", [], []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        req = SeenRequest(self.parser.get_method().decode(), self._url.decode("latin-1"),
                          {k.lower(): v for k, v in self._headers}, b"".join(self._body), self._headers)
        self.queue.put_nowait((req, self.parser.should_keep_alive()))

    async def _serve(self) -> None:
        while True:
            req, keep_alive = await self.queue.get()
            self.origin.requests.append(req)
            reply = self.origin.reply_for(req)
            if reply.hold is not None:
                await reply.hold.wait()
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if not self._send(req, reply) or not keep_alive or reply.close:
                self.transport.close()
                return

    def _send(self, req: SeenRequest, reply: Reply) -> bool:
        status, body = reply.status, reply.body
        headers = list(reply.headers.items()) if isinstance(reply.headers, dict) else list(reply.headers)
        if reply.conditional and status == 200 and _not_modified(req, headers):
            status, body = 304, b""
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
        no_body = req.method == "HEAD" or status in (204, 304)
        if reply.chunks is not None and not no_body:
            lines.append("Transfer-Encoding: chunked")
        elif not any(k.lower() == "content-length" for k, _ in headers) and status not in (204, 304):
            lines.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if no_body:
            return True
        if reply.chunks is not None:
            for chunk in reply.chunks:
                self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.transport.write(b"0\r\n\r\n")
            return True
        if reply.abort_after is not None:
            self.transport.write(body[:reply.abort_after])
            return False
        self.transport.write(body)
        return True


def _not_modified(req: SeenRequest, headers: list[tuple[str, str]]) -> bool:
    fields = {k.lower(): v for k, v in headers}
    inm = req.headers.get("if-none-match")
    if inm is not None and "etag" in fields:
        tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
        return fields["etag"].removeprefix("W/") in tags or "*" in tags
    ims = req.headers.get("if-modified-since")
    return ims is not None and fields.get("last-modified") == ims


class FakeOrigin:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, _Route] = {}
        self.requests: list[SeenRequest] = []
        self.connections = 0
        self.open: set[_OriginConnection] = set()
        self.server: asyncio.AbstractServer | None = None
        self.default = Reply(404, b"not found\n")
        self.scheme = "http"

    def __repr__(self) -> str:
        return f"<FakeOrigin {self.url if self.server else 'stopped'} requests={len(self.requests)}>"

    def route(self, path: str, status: int = 200, body: bytes = b"", headers=None, *,
              responses: list[Reply] | None = None, handler=None, **reply_options) -> None:
        if handler is not None:
            self.routes[path] = _Route(handler=handler)
        else:
            self.routes[path] = _Route(replies=responses or [Reply(status, body, headers or {}, **reply_options)])

    def reply_for(self, req: SeenRequest) -> Reply:
        route = self.routes.get(req.path) or self.routes.get(req.path.split("?")[0])
        return route.next(req) if route is not None else self.default

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    async def start(self, port: int = 0, ssl=None) -> "FakeOrigin":
        """Listen on loopback; with an `ssl.SSLContext`, speak HTTPS."""
        loop = asyncio.get_running_loop()
        self.scheme = "https" if ssl is not None else "http"
        self.server = await loop.create_server(lambda: _OriginConnection(self), self.host, port, ssl=ssl)
        return self

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    async def close(self) -> None:
        """Stop listening and drop every open connection, like a crashed origin."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.open):
            conn.transport.abort()
