"""One visitor loading a page, timed step by step (run inside a visitor's namespace).

    python -m owncdn.testing.visit --name www.world.test --dns 10.9.0.20 --query v=1

Prints one JSON object: ``dns``, ``connect``, ``tls``, ``tls_cpu``, ``ttfb``, ``headers``
and ``page`` in seconds, ``address`` (where the name led), ``cache`` (the page's X-Cache),
``assets`` and, over TLS, ``resumed`` (whether the page's connection resumed a session).

Rules:

1. ``dns`` is one UDP query to the given server (the visitor's nearest DNS server,
   as anycast or a nearby resolver would give); with ``--address`` there is no
   lookup and ``dns`` is null.
2. ``connect`` is the TCP handshake, timed from ``connect()`` on a socket made (and
   set to ``TCP_NODELAY``, as browsers do) beforehand, so no name-to-address
   conversion (``getaddrinfo``, about 1 ms in a fresh process) is counted. ``ttfb``
   runs from the start of the handshake to the response's first byte (curl's
   ``time_starttransfer``, a browser's ``responseStart``): connect + request, so its
   floor is two round trips; ``headers`` runs to the parsed status line and headers
   (the client's own parsing, 0.1-0.2 ms of Python, on top). The request goes out in
   one ``send``. With ``--tls CAFILE`` (port 443 by default) every connection makes a
   full TLS handshake (no resumption; ``--resume``: rule 7) with the name as SNI,
   verified against that CA; ``tls`` is its time (one more round trip with TLS 1.3), and ``ttfb`` includes
   it (the first byte is the first decrypted byte). ``tls_cpu`` is the client's own
   CPU time (this thread's) during that handshake: what the measuring client (Python's
   ``ssl``) adds to ``tls`` by itself, the server's part being the rest. TLS runs on an
   ``SSLObject`` over memory BIOs (``_TlsStream``), made before the TCP handshake
   starts, with the session to resume if any: Python's ``SSLSocket`` wrapper and its
   session copy (an encode and decode of the session, the server's certificate
   included: 0.12 ms per connection on loopback) are client overhead, not TLS.
3. ``page`` runs from the start of the lookup until the last asset's last byte:
   the page on the first connection, then every asset it links at once, each on a
   connection of its own, like a browser's six parallel connections.
4. ``--watch`` (a failure scenario) prints ``ready``, then looks the name up and
   fetches the page every 0.2 s, each sample with its wall-clock time, the address
   DNS gave and whether the request succeeded (2 s timeouts), until DNS sends it
   away from ``--avoid`` and a request there succeeds. Each sample also holds every
   address of the answer (``addresses``) and whether a visitor that tries the next
   address when one fails would have got the page (``ok_retry``).
5. ``--objects`` (failure scenarios) fetches the page and every asset with the
   given query, one GET each, and records per object its status, X-Cache and time,
   never raising (a failed request has status 0). With ``--loop S`` it does so
   every ``--every`` seconds for S seconds, printing ``ready`` first; without, once.
6. Before a timed visit the client warms itself up, as a browser that is already
   running is warm: one DNS message built and parsed in memory, and one request of
   the same shape to a listener on the visitor's own loopback (nothing crosses the
   emulator or reaches the CDN). The first request of a fresh Python process costs
   about 0.3 ms more than the next ones, which a 4 ms floor would count against the
   CDN. With ``--tls`` the warm-up request goes over TLS 1.3 to that listener, with a
   throwaway ECDSA P-256 certificate from a throwaway CA (``testing.certs``), trusted
   by a context of its own: the first handshake of a fresh process costs the client
   about 1.3 ms more than the next ones (OpenSSL 3.0 loading and caching its
   algorithms on first use; measured on loopback, against nginx as much as against
   an edge), which a browser already running has long paid. ``--cold`` skips it.
7. ``--resume`` (with ``--tls``): a returning visitor. The page and its assets are
   first loaded once, untimed, each connection keeping the TLS session (ticket) the
   edge sent; the timed load then offers one of those sessions on each connection
   (a ticket used once, as browsers do), so the handshake is a TLS 1.3 resumption
   (PSK with a fresh ECDHE; no certificate sent or verified) and still one round
   trip: the floor stays three. ``resumed`` tells whether the page's connection did
   resume. The certificate was verified, in full, on the first load.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import io
import json
import re
import socket
import ssl
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rrset


WARM_UP_NAME = "warm-up.invalid"   # rule 6: a name nothing outside the visitor answers


class _Peeked:
    """What ``http.client.HTTPResponse`` reads from: the buffered reader that already holds
    the response's first byte (rule 2)."""

    def __init__(self, fp) -> None:
        self.fp = fp

    def makefile(self, *args, **kwargs):
        return self.fp


class _TlsStream(io.RawIOBase):
    """TLS 1.3 over a connected socket through memory BIOs (rule 2): the ``SSLObject``,
    and with it the session to resume, is made before the TCP handshake starts. Python's
    ``ssl`` copies a session each time one is set (or read) by encoding and decoding it,
    which decodes the server's certificate again: about 0.12 ms of CPU on loopback, work
    a browser's session cache does not do, and no part of the TLS exchange."""

    def __init__(self, ctx: ssl.SSLContext, name: str, session: ssl.SSLSession | None) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=name, session=session)
        self.sock: socket.socket | None = None

    def handshake(self, sock: socket.socket) -> None:
        self.sock = sock
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def sendall(self, data: bytes) -> None:
        self.obj.write(data)
        self._flush()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            try:
                return self.obj.read(len(buffer), buffer)
            except ssl.SSLWantReadError:
                self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return 0

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        super().close()

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()


def _open(address: str, port: int, name: str, ctx: ssl.SSLContext | None, timeout: float = 30,
          session: ssl.SSLSession | None = None) -> tuple:
    """(socket or _TlsStream, handshake start, TCP handshake seconds, TLS handshake seconds or
    None, the client's CPU seconds in the TLS handshake or None) (rule 2); ``session``:
    resume it (rule 7)."""
    tls = _TlsStream(ctx, name, session) if ctx is not None else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # as browsers (and http.client) do
    t0 = time.perf_counter()
    sock.connect((address, port))
    t1 = time.perf_counter()
    if tls is None:
        return sock, t0, t1 - t0, None, None
    cpu = time.thread_time()
    tls.handshake(sock)
    return tls, t0, t1 - t0, time.perf_counter() - t1, time.thread_time() - cpu


def _fetch(address: str, port: int, name: str, path: str, ctx: ssl.SSLContext | None = None,
           session: ssl.SSLSession | None = None, keep: bool = False) -> dict:
    """One GET on a new connection, timed (rule 2): ``connect``, ``tls``, ``ttfb`` (from the
    start of the handshake to the response's first byte), ``headers`` (to the parsed
    headers), ``status``, ``cache`` (X-Cache) and the ``body``; over TLS also ``resumed``,
    and with ``keep`` the ``session`` to come back with (rule 7)."""
    conn, t0, connect_s, tls_s, tls_cpu = _open(address, port, name, ctx, session=session)
    tls = isinstance(conn, _TlsStream)
    try:
        fp = io.BufferedReader(conn) if tls else conn.makefile("rb")
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: owncdn-world-visitor\r\n"
                     f"Accept-Encoding: identity\r\n\r\n".encode("latin-1"))
        fp.peek(1)
        first = time.perf_counter()
        resp = http.client.HTTPResponse(_Peeked(fp), method="GET")
        resp.begin()
        headers = time.perf_counter()
        body = resp.read()
        resumed = conn.obj.session_reused if tls else None
        kept = conn.obj.session if tls and keep else None
        fp.close()
    finally:
        conn.close()
    return {"connect": connect_s, "tls": tls_s, "tls_cpu": tls_cpu, "ttfb": first - t0, "headers": headers - t0,
            "status": resp.status, "cache": resp.getheader("X-Cache", ""), "body": body,
            "resumed": resumed, "session": kept}


def _get(address: str, port: int, name: str, path: str,
         ctx: ssl.SSLContext | None = None, session: ssl.SSLSession | None = None) -> tuple[int, str]:
    """(body bytes, X-Cache) of one GET of an asset; anything but 200 raises."""
    r = _fetch(address, port, name, path, ctx, session)
    if r["status"] != 200:
        raise RuntimeError(f"GET {path}: {r['status']}")
    return len(r["body"]), r["cache"]


def _lookup(name: str, dns_server: str) -> str:
    reply = dns.query.udp(dns.message.make_query(name, "A"), dns_server, timeout=10)
    addresses = [r.address for rrset in reply.answer for r in rrset if hasattr(r, "address")]
    if not addresses:
        raise RuntimeError(f"no address for {name} from {dns_server}")
    return addresses[0]


def _assets(html: bytes) -> list[bytes]:
    return sorted(set(re.findall(rb'(?:href|src)="(/[^"]*)"', html)))


def _first_visit(name: str, dns_server: str | None, address: str | None, port: int, suffix: str,
                 ctx: ssl.SSLContext) -> list[ssl.SSLSession]:
    """Rule 7: the earlier, untimed visit of a returning visitor; the session of the page's
    connection, then one per asset, in ``_assets`` order."""
    if dns_server:
        address = _lookup(name, dns_server)
    page = _fetch(address, port, name, "/" + suffix, ctx, keep=True)
    sessions = [page["session"]]
    for path in _assets(page["body"]):
        sessions.append(_fetch(address, port, name, path.decode() + suffix, ctx, keep=True)["session"])
    return sessions


def _warm_up_tls(directory: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for the TLS warm-up (rule 6); nothing the visit trusts."""
    from owncdn.testing.certs import TestCA

    ca = TestCA("owncdn world visitor warm-up CA")
    cert, key = ca.issue([WARM_UP_NAME]).write(Path(directory), "warm-up")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ca.client_context()


def _warm_up(name: str, tls: bool = False) -> None:
    """Rule 6: the client's own first-use costs, paid against its own loopback."""
    query = dns.message.make_query(name, "A")
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "127.0.0.1"))
    dns.message.from_wire(reply.to_wire())
    server_ctx = client_ctx = None
    if tls:
        with tempfile.TemporaryDirectory() as directory:   # the key is loaded, then its file goes
            server_ctx, client_ctx = _warm_up_tls(directory)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        if server_ctx is not None:
            conn = server_ctx.wrap_socket(conn, server_side=True)
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Cache: WARM-UP\r\n\r\nok")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        _fetch("127.0.0.1", listener.getsockname()[1], WARM_UP_NAME if tls else name, "/", client_ctx)
    finally:
        thread.join(5)
        listener.close()
    gc.collect()   # the warm-up's garbage (certificates made for it) is not collected during the visit


def visit(name: str, dns_server: str | None, address: str | None, port: int, query: str,
          ctx: ssl.SSLContext | None = None, warm_up: bool = True, resume: bool = False) -> dict:
    if warm_up:
        _warm_up(name, tls=ctx is not None)
    suffix = f"?{query}" if query else ""
    sessions = _first_visit(name, dns_server, address, port, suffix, ctx) if resume and ctx is not None else []
    pool = ThreadPoolExecutor(max_workers=6)
    start = time.perf_counter()
    dns_s = None
    if dns_server:
        address = _lookup(name, dns_server)
        dns_s = time.perf_counter() - start
    page = _fetch(address, port, name, "/" + suffix, ctx, sessions[0] if sessions else None)
    html = page["body"]
    assets = _assets(html)
    kept = dict(zip(assets, sessions[1:]))
    with pool:
        results = list(pool.map(lambda p: _get(address, port, name, p.decode() + suffix, ctx, kept.get(p)), assets))
    page_s = time.perf_counter() - start
    return {"dns": dns_s, "connect": page["connect"], "tls": page["tls"], "tls_cpu": page["tls_cpu"], "ttfb": page["ttfb"],
            "headers": page["headers"], "page": page_s, "address": address, "cache": page["cache"],
            "assets": [{"bytes": n, "cache": c} for n, c in results],
            "bytes": len(html) + sum(n for n, _ in results), "resumed": page["resumed"]}


PATHS = ("/", "/style.css", "/app.js", "/logo.svg", "/font.woff2", "/photo.jpg")


def _resolve(name: str, dns_server: str, timeout: float) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), dns_server, timeout=timeout)
    return [r.address for rrset in reply.answer for r in rrset if hasattr(r, "address")]


def _try(address: str, port: int, name: str, path: str, timeout: float) -> tuple[int, str, float]:
    """(status, X-Cache, seconds) of one GET; status 0 when it failed (rule 5)."""
    t = time.perf_counter()
    try:
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
        conn.request("GET", path, headers={"Host": name, "User-Agent": "owncdn-world-visitor"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status, resp.getheader("X-Cache", ""), time.perf_counter() - t
    except (OSError, http.client.HTTPException):
        return 0, "", time.perf_counter() - t


def objects(name: str, dns_server: str, port: int, query: str, paths=PATHS, timeout: float = 10.0) -> dict:
    """Rule 5: one GET of every object, through the address DNS gives now."""
    t = time.time()
    try:
        addresses = _resolve(name, dns_server, 2)
    except dns.exception.DNSException:
        addresses = []
    suffix = f"?{query}" if query else ""
    got = []
    for path in paths:
        status, cache, seconds = _try(addresses[0], port, name, path + suffix, timeout) if addresses else (0, "", 0.0)
        got.append({"path": path, "status": status, "cache": cache, "seconds": seconds})
    return {"time": t, "address": addresses[0] if addresses else None, "objects": got}


def loop(name: str, dns_server: str, port: int, query: str, seconds: float, every: float, paths=PATHS) -> dict:
    samples = []
    deadline = time.time() + seconds
    print("ready", flush=True)
    while time.time() < deadline:
        t = time.time()
        samples.append(objects(name, dns_server, port, query, paths))
        time.sleep(max(0.0, every - (time.time() - t)))
    return {"samples": samples}


def watch(name: str, dns_server: str, port: int, avoid: str, seconds: float, every: float = 0.2) -> dict:
    """Rule 4: ask and fetch every ``every`` seconds until DNS no longer answers ``avoid``
    and a request elsewhere succeeded, or ``seconds`` passed."""
    samples = []
    deadline = time.time() + seconds
    print("ready", flush=True)
    while time.time() < deadline:
        t = time.time()
        target, ok, retry, addresses = None, False, False, []
        try:
            addresses = _resolve(name, dns_server, 2)
        except dns.exception.DNSException:
            pass
        for i, candidate in enumerate(addresses):
            good = _try(candidate, port, name, "/", 2)[0] == 200
            if i == 0:
                target, ok = candidate, good
            if good:
                retry = True
                break
        samples.append({"time": t, "address": target, "addresses": addresses, "ok": ok, "ok_retry": retry})
        if target is not None and target != avoid and ok:
            break
        time.sleep(max(0.0, every - (time.time() - t)))
    return {"samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--dns")
    parser.add_argument("--address")
    parser.add_argument("--port", type=int)
    parser.add_argument("--tls", metavar="CAFILE", help="Rule 2: HTTPS, trusting this CA (port 443)")
    parser.add_argument("--query", default="")
    parser.add_argument("--watch", type=float, help="Rule 4: watch for this many seconds")
    parser.add_argument("--avoid", help="With --watch: the address of the edge that died")
    parser.add_argument("--objects", action="store_true", help="Rule 5: every object once, never raising")
    parser.add_argument("--loop", type=float, help="With --objects: repeat for this many seconds")
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--paths", default=",".join(PATHS), help="With --objects: comma-separated paths")
    parser.add_argument("--cold", action="store_true", help="Rule 6: measure without warming the client up")
    parser.add_argument("--resume", action="store_true", help="Rule 7: a returning visitor (with --tls)")
    args = parser.parse_args()
    ctx = ssl.create_default_context(cafile=args.tls) if args.tls else None
    if args.port is None:
        args.port = 443 if args.tls else 80
    if args.objects and args.loop:
        print(json.dumps(loop(args.name, args.dns, args.port, args.query, args.loop, args.every,
                              args.paths.split(","))))
    elif args.objects:
        print(json.dumps(objects(args.name, args.dns, args.port, args.query, args.paths.split(","))))
    elif args.watch:
        print(json.dumps(watch(args.name, args.dns, args.port, args.avoid, args.watch)))
    else:
        print(json.dumps(visit(args.name, args.dns, args.address, args.port, args.query, ctx, not args.cold,
                               args.resume)))


if __name__ == "__main__":
    main()
