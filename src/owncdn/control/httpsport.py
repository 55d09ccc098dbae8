"""The API's port when it speaks HTTPS: TLS for the app, a clear answer to plain HTTP.

    config.http_protocol_class = tls_port(config.http_protocol_class, tls.context)

Rules:
1. Each connection is looked at when its first bytes arrive. A TLS handshake (a
   record of type 22) goes on through TLS (``asyncio.sslproto.SSLProtocol``, the
   context given, reloaded in place by ``tlslisten.py``) to the HTTP protocol the
   server would have used; those first bytes are fed to TLS as they came.
2. Anything else is a plain request sent to the HTTPS port (``curl http://...``, a
   command given ``--control http://...``): it is answered ``400`` with the API's
   error body (code ``https_required``) naming the ``https://`` URL to use (from the
   request's ``Host``, when it has one), and the connection closed. Nothing of it
   reaches the app; a token it carried went in clear already, which the answer
   cannot undo.
3. A connection that sends nothing for ``FIRST_BYTES_SECONDS`` is closed (the
   handshake timeout a TLS listener has).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from asyncio.sslproto import SSLProtocol

__all__ = ["FIRST_BYTES_SECONDS", "plain_answer", "tls_port"]

FIRST_BYTES_SECONDS = 60.0
_TLS_HANDSHAKE = 0x16
_HOST = re.compile(rb"\r\nhost:[ \t]*([A-Za-z0-9.\-\[\]:]{1,300})[ \t]*\r\n", re.IGNORECASE)


def tls_port(protocol_class, context: ssl.SSLContext):
    """A protocol factory, called as ``protocol_class`` is, for Rules 1-3."""

    def factory(*args, **kwargs) -> FirstBytes:
        return FirstBytes(lambda: protocol_class(*args, **kwargs), context)

    return factory


def plain_answer(first: bytes) -> bytes:
    """Rule 2: the whole HTTP answer to a plain request that began with ``first``."""
    host = _HOST.search(first[:8192])
    where = f"https://{host.group(1).decode('ascii')}/" if host else "the https:// URL of this address"
    body = json.dumps({"error": {"code": "https_required", "message": f"this port speaks HTTPS only: use {where}"}})
    return (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body.encode()))


class FirstBytes(asyncio.Protocol):
    """Rules 1-3 for one connection, until its first bytes say which it is."""

    def __init__(self, inner, context: ssl.SSLContext) -> None:
        self.inner, self.context = inner, context
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(FIRST_BYTES_SECONDS, transport.close)  # Rule 3

    def data_received(self, data: bytes) -> None:
        self.timer.cancel()
        transport = self.transport
        if data[0] != _TLS_HANDSHAKE:  # Rule 2
            transport.write(plain_answer(data))
            transport.close()
            return
        tls = SSLProtocol(asyncio.get_running_loop(), self.inner(), self.context, None, server_side=True)
        transport.set_protocol(tls)
        tls.connection_made(transport)
        view = memoryview(data)  # Rule 1: the bytes read so far, to TLS as they came
        while view:
            buffer = tls.get_buffer(len(view))
            n = min(len(buffer), len(view))
            buffer[:n] = view[:n]
            tls.buffer_updated(n)
            view = view[n:]

    def eof_received(self) -> bool:
        return False  # closed before saying anything

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
