"""The small site of ``owncdn world``: one page and five assets, served by a FakeOrigin.

    python -m owncdn.demo.worldsite --listen 10.6.0.30:80 --dns 10.6.0.30:53

Rules:

1. The page (``/``) links every asset with ``href="..."`` or ``src="..."``, so a
   visitor finds them the way a browser does.
2. Assets are cacheable for an hour, the page for a minute; any query string is
   ignored by the origin, so ``/?v=run1`` is a fresh cache key with the same body.
   ``/live`` (not linked) is fresh for one second only: the object a stalled origin
   must revalidate (``owncdn world``'s origin-stalls scenario).
3. With ``--dns``, a tiny DNS server answers every A query with the origin's own
   address: the site's DNS without a CDN, hosted next to the origin, so the
   origin-only scenario pays for a lookup as the CDN ones do.
4. Sizes are those of a small real page: about 35 KB in all, the largest asset
   (the photo) larger than a TCP initial window (10 segments), as images are.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random

import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset

from owncdn.testing.origin import FakeOrigin

ASSETS = {
    "/style.css": ("text/css", 3_000),
    "/app.js": ("application/javascript", 6_000),
    "/logo.svg": ("image/svg+xml", 2_000),
    "/font.woff2": ("font/woff2", 8_000),
    "/photo.jpg": ("image/jpeg", 16_000),
}


def page() -> bytes:
    return (b'<!doctype html>\n<html><head><meta charset="utf-8"><title>owncdn world</title>\n'
            b'<link rel="stylesheet" href="/style.css"><link rel="preload" href="/font.woff2">\n'
            b'<script src="/app.js"></script></head>\n<body><img src="/logo.svg">\n'
            b'<h1>A small site</h1><img src="/photo.jpg">\n' + b"<p>Lorem ipsum.</p>\n" * 60 + b"</body></html>\n")


def site(host: str = "127.0.0.1") -> FakeOrigin:
    """The origin with the page and its assets (rules 1-3)."""
    origin = FakeOrigin(host)
    rng = random.Random(10)
    body = page()
    origin.route("/", body=body, headers={"Content-Type": "text/html; charset=utf-8",
                                          "Cache-Control": "public, max-age=60",
                                          "ETag": '"%s"' % hashlib.sha256(body).hexdigest()[:16]})
    for path, (ctype, size) in ASSETS.items():
        data = rng.randbytes(size)
        origin.route(path, body=data, headers={"Content-Type": ctype, "Cache-Control": "public, max-age=3600",
                                               "ETag": '"%s"' % hashlib.sha256(data).hexdigest()[:16]})
    live = b'{"headline": "fresh for one second"}\n'
    origin.route("/live", body=live, headers={"Content-Type": "application/json",
                                               "Cache-Control": "public, max-age=1"})
    return origin


class _DnsAnswer:
    """Rule 3: a UDP DNS server answering every A question with one address."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - not DNS: ignored
            return
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        for q in query.question:
            if q.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", self.answer))
        self.transport.sendto(reply.to_wire(), addr)

    def error_received(self, exc) -> None:
        pass

    def connection_lost(self, exc) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8000")
    parser.add_argument("--dns", help="HOST:PORT of a DNS server answering with the --listen host (rule 3)")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")

    async def run() -> None:
        await site(host).start(int(port))
        if args.dns:
            dhost, _, dport = args.dns.rpartition(":")
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: _DnsAnswer(host),
                                                                      local_addr=(dhost, int(dport)))
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
