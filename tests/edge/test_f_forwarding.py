"""What the origin sees: forwarding headers, Host, header rules, streamed uploads, HTTPS."""

import asyncio
import ssl
import subprocess

import pytest

from owncdn.testing.client import raw_exchange
from owncdn.testing.cluster import EdgeUnderTest
from owncdn.testing.origin import FakeOrigin


def service(origin: str = "{origin}", extra: str = "", edge: str = "") -> str:
    return f"""
version: 1
edge: {{{{id: edge-t, location: test{edge}}}}}
services:
  - name: site
    hostnames: [example.test]
    origins: ["{origin}"]
{extra}
"""


@pytest.mark.parametrize("trusted, sent, xff, proto, xhost", [
    # RFC 7239 practice: an untrusted peer's forwarding headers are replaced...
    ("", {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}, "127.0.0.1", "http", "example.test"),
    # ...a trusted proxy's are kept and the peer appended.
    (", trusted_proxies: [127.0.0.0/8]", {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                                           "X-Forwarded-Host": "www.example.org"},
     "203.0.113.9, 127.0.0.1", "https", "www.example.org"),
    (", trusted_proxies: [10.0.0.0/8]", {"X-Forwarded-For": "203.0.113.9"}, "127.0.0.1", "http", "example.test"),
])
async def test_forwarding_headers(trusted, sent, xff, proto, xhost):
    origin = FakeOrigin()
    origin.route("/", body=b"ok")
    async with EdgeUnderTest(origin, service(edge=trusted)) as t:
        await t.get("/", headers=sent)
    seen = origin.requests[0].headers
    assert (seen["x-forwarded-for"], seen["x-forwarded-proto"], seen["x-forwarded-host"]) == (xff, proto, xhost)
    assert seen["via"] == "1.1 edge-t (owncdn)"
    assert seen["x-request-id"]


@pytest.mark.parametrize("trusted, cached_for_https", [(", trusted_proxies: [127.0.0.0/8]", 2), ("", 1)])
async def test_the_scheme_the_origin_is_told_keys_the_cache(trusted, cached_for_https):
    """A trusted proxy's X-Forwarded-Proto reaches the origin, so it also picks the cache
    key's scheme (core/http/cachekey.py Rule 1); an untrusted peer's is replaced by
    "http" and so shares the plain-HTTP key."""
    origin = FakeOrigin()
    origin.route("/", body=b"ok", headers={"Cache-Control": "max-age=60"})
    async with EdgeUnderTest(origin, service(edge=trusted)) as t:
        plain = await t.get("/")
        proxied = await t.get("/", headers={"X-Forwarded-Proto": "https"})
        again = await t.get("/", headers={"X-Forwarded-Proto": "https"})
    assert plain.headers["x-cache"] == "MISS"
    assert (proxied.headers["x-cache"], again.headers["x-cache"]) == (
        ("MISS", "HIT") if cached_for_https == 2 else ("HIT", "HIT"))
    assert origin.hits("/") == cached_for_https


@pytest.mark.parametrize("mode, expected", [("origin", "127.0.0.1:{port}"), ("client", "example.test")])
async def test_host_sent_to_the_origin(mode, expected):
    origin = FakeOrigin()
    origin.route("/", body=b"ok")
    async with EdgeUnderTest(origin, service(extra=f"    origin_host: {mode}")) as t:
        await t.get("/")
        port = origin.port
    assert origin.requests[0].headers["host"] == expected.format(port=port)


async def test_hop_by_hop_fields_are_not_forwarded():
    origin = FakeOrigin()
    origin.route("/", body=b"ok", headers={"Connection": "x-secret", "X-Secret": "1", "Keep-Alive": "timeout=5"})
    async with EdgeUnderTest(origin) as t:
        r = await t.get("/", headers={"Connection": "keep-alive, x-hop", "X-Hop": "1", "TE": "trailers"})
    seen = origin.requests[0].headers
    assert "x-hop" not in seen and "te" not in seen
    assert "x-secret" not in r.headers and "keep-alive" not in r.headers


async def test_header_rules_with_a_secret_from_the_environment():
    origin = FakeOrigin()
    origin.route("/", body=b"ok", headers={"Server": "origin/1.0", "Cache-Control": "max-age=60"})
    rules = """    headers:
      request: {{set: {{X-Origin-Auth: "${{env:ORIGIN_TOKEN}}"}}, remove: [x-debug]}}
      response: {{set: {{Strict-Transport-Security: max-age=63072000}}, remove: [server]}}"""
    async with EdgeUnderTest(origin, service(extra=rules), env={"ORIGIN_TOKEN": "s3cret"}) as t:
        miss = await t.get("/", headers={"X-Debug": "1"})
        hit = await t.get("/")
    seen = origin.requests[0].headers
    assert seen["x-origin-auth"] == "s3cret" and "x-debug" not in seen
    for r in (miss, hit):
        assert "server" not in r.headers and r.headers["strict-transport-security"] == "max-age=63072000"


async def test_chunked_upload_streams_to_the_origin():
    origin = FakeOrigin()
    origin.route("/upload", body=b"stored")
    parts = [b"%x\r\n%s\r\n" % (65536, bytes([i]) * 65536) for i in range(32)] + [b"0\r\n\r\n"]
    head = b"POST /upload HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    async with EdgeUnderTest(origin) as t:
        raw = await raw_exchange("127.0.0.1", t.port, [head] + parts)
    assert raw.startswith(b"HTTP/1.1 200")
    assert origin.requests[0].body == b"".join(bytes([i]) * 65536 for i in range(32))


async def test_expect_100_continue():
    origin = FakeOrigin()
    origin.route("/upload", body=b"ok")
    async with EdgeUnderTest(origin) as t:
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(b"PUT /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(b"hello")
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    assert final.startswith(b"HTTP/1.1 200") and origin.requests[0].body == b"hello"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.mark.parametrize("verify, status", [("false", 200), ("true", 502)])
async def test_https_origin(tls_files, verify, status):
    cert, key = tls_files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    origin = FakeOrigin()
    origin.route("/", body=b"over tls", headers={"Cache-Control": "max-age=60"})
    await origin.start(ssl=ctx)
    config = f"""
version: 1
edge: {{{{id: edge-t, location: test}}}}
services:
  - name: site
    hostnames: [example.test]
    origins: [{{{{url: "{{origin}}", tls_verify: {verify}}}}}]
"""
    async with EdgeUnderTest(origin, config) as t:
        r = await t.get("/")
    assert r.status == status
    if status == 200:
        assert r.body == b"over tls"
    else:
        assert b"certificate" in r.body.lower()
