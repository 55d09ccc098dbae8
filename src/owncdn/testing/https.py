"""An edge with its HTTPS listener in front of a scripted origin, and clients for it.

    async with HttpsEdge(origin) as t:                # a test CA, a certificate for
        r = await t.fetch("/a", http2=True)            # example.test and *.example.test
        info = await t.handshake("img.example.test")   # which certificate, TLS version, ALPN

Clients connect to 127.0.0.1 and send the name as SNI and Host, trusting only the
test CA, so certificate selection is checked the way a browser checks it.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from owncdn.testing.certs import TestCA
from owncdn.testing.cluster import ONE_SERVICE, EdgeUnderTest
from owncdn.testing.origin import FakeOrigin

__all__ = ["Handshake", "HttpsEdge", "handshake"]


@dataclass(frozen=True)
class Handshake:
    version: str        # "TLSv1.3"
    alpn: str | None    # "h2", "http/1.1" or None
    fingerprint: str    # sha256 of the certificate the server sent, hex
    names: tuple[str, ...]


async def handshake(port: int, server_name: str | None, ctx: ssl.SSLContext) -> Handshake:
    """One TLS handshake with 127.0.0.1:`port`; raises ssl.SSLError when refused."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=server_name or ""), 10)
    try:
        obj = writer.get_extra_info("ssl_object")
        der = obj.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = tuple(san.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = ()
        return Handshake(obj.version(), obj.selected_alpn_protocol(), cert.fingerprint(hashes.SHA256()).hex(), names)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


class HttpsEdge(EdgeUnderTest):
    """EdgeUnderTest with a TLS listener and a certificate from a test CA."""

    def __init__(self, origin: FakeOrigin, config: str = ONE_SERVICE, *, ca: TestCA | None = None,
                 names: tuple[str, ...] = ("example.test", "*.example.test"), state_dir=None, **kw) -> None:
        options = {"tls_listen": "127.0.0.1:0", "state_dir": state_dir, **kw.pop("server_options", {})}
        super().__init__(origin, config, server_options=options, **kw)
        self.ca = ca or TestCA()
        self.names = names
        self.leaf = None
        self.http: list[httpx.AsyncClient] = []

    async def __aenter__(self) -> "HttpsEdge":
        await super().__aenter__()
        if self.names:
            self.leaf = self.ca.issue(list(self.names))
            self.server.certs.install("site", [], self.leaf.cert_pem, self.leaf.key_pem)
        return self

    async def __aexit__(self, *exc) -> None:
        for client in self.http:
            await client.aclose()
        await super().__aexit__(*exc)

    @property
    def certs(self):
        return self.server.certs

    @property
    def tls_port(self) -> int:
        return self.server.tls_port

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        return self.ca.client_context(alpn)

    def httpx(self, http2: bool = False, **kw) -> httpx.AsyncClient:
        """An httpx client trusting the test CA (closed with the edge)."""
        client = httpx.AsyncClient(verify=self.client_context(), http2=http2, http1=True, timeout=10, **kw)
        self.http.append(client)
        return client

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.tls_port}{path}"

    async def fetch(self, path: str = "/", host: str = "example.test", *, http2: bool = False,
                    method: str = "GET", client: httpx.AsyncClient | None = None, **kw) -> httpx.Response:
        """One request over HTTPS with SNI and Host `host`."""
        client = client or self.httpx(http2=http2)
        headers = {"host": host, **kw.pop("headers", {})}
        return await client.request(method, self.url(path), headers=headers,
                                    extensions={"sni_hostname": host}, **kw)

    async def handshake(self, server_name: str | None, alpn: list[str] | None = None,
                        ctx: ssl.SSLContext | None = None) -> Handshake:
        if ctx is None:
            ctx = self.client_context(alpn)
            if server_name is None:
                ctx.check_hostname = False
        return await handshake(self.tls_port, server_name, ctx)
