"""The edge's TLS listener: one protocol per connection, chosen by ALPN.

Rules:
1. The TLS handshake (edge/tls.py: certificate by SNI, TLS 1.2/1.3) completes before
   any protocol sees the connection; then ALPN decides: `h2` -> `H2Connection`
   (edge/h2.py), anything else (`http/1.1`, or no ALPN) -> `HttpsConnection`, the
   `HttpConnection` (edge/protocol.py) that serves plain HTTP, with scheme `https`.
2. Every connection starts as an `HttpsConnection` (no intermediate protocol object);
   for `h2` it hands the transport to an `H2Connection`, which takes its
   `connection_made`; nothing was read before, so nothing is lost.
3. A handshake not finished within `header_timeout` is dropped.
4. Per connection work is kept small, since a new TLS connection per request is what
   first visits cost: TCP_NODELAY is not set again (the loop's TCP transport set it
   before TLS started, uvloop and asyncio alike), and a closed connection drops its
   parser (``HttpConnection.connection_lost``), whose callbacks point back at it:
   without that cycle the connection, its transport and its SSL object are freed by
   reference counting when it closes, not by the cyclic collector later.
5. Session tickets (edge/tls.py Rule 8, edge/tickets.py): the store's ticket key
   comes from `<state_dir>/tls-tickets`, or the file the workers share
   (`tickets_file`), and changes at every epoch boundary (a timer on the loop,
   `rotate_tickets`), in every worker at the same moment.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from owncdn.edge.h2 import H2Connection
from owncdn.edge.protocol import HttpConnection, Limits
from owncdn.edge.tickets import TicketKeys
from owncdn.edge.tls import CertError, CertStore

STANDALONE_ID = "standalone"  # the certificate given with --cert / --key


class HttpsConnection(HttpConnection):
    """HTTP/1.1 over TLS (Rule 1), or the hand-over to HTTP/2 when ALPN chose `h2` (Rule 2)."""

    scheme = "https"

    def connection_made(self, transport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self.parser = None  # this object is dropped: no cycle left behind (Rule 4)
            proto = H2Connection(self.app, self.limits, self.loop)
            transport.set_protocol(proto)
            proto.connection_made(transport)
            return
        super().connection_made(transport)


def open_cert_store(state_dir: Path | None, cert_files: tuple[str, str] | None = None,
                    tickets_file: Path | str | None = None) -> CertStore:
    """The edge's certificates: those kept in `<state_dir>/certs` (none without a
    state directory), plus the `--cert/--key` pair, which becomes the default
    certificate and is read from its files at every start (never copied). The
    ticket key: `tickets_file`, else `<state_dir>/tls-tickets`, else in memory (Rule 5)."""
    if tickets_file is None and state_dir is not None:
        tickets_file = Path(state_dir) / "tls-tickets"
    store = CertStore(Path(state_dir) / "certs" if state_dir is not None else None, TicketKeys(tickets_file))
    if not store.tickets.shared:
        print("owncdn edge: this Python's ssl cannot be given a TLS ticket key (edge/libssl.py); each process"
              " keeps OpenSSL's own, so a session resumes only on the worker that issued its ticket", file=sys.stderr)
    if cert_files is not None:
        cert_file, key_file = cert_files
        try:
            cert_pem, key_pem = Path(cert_file).read_text(), Path(key_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CertError(f"cannot read the certificate or key file ({exc.__class__.__name__})") from None
        store.install(STANDALONE_ID, [], cert_pem, key_pem, default=True, persist=False)
    return store


async def listen_tls(app, store: CertStore, limits: Limits, listen: str, *,
                     reuse_port: bool = False) -> asyncio.AbstractServer:
    """Bind the HTTPS listener: TLS with `store`'s SNI switch, then ALPN (Rule 1)."""
    loop = asyncio.get_running_loop()
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    server = await loop.create_server(
        lambda: HttpsConnection(app, limits, loop), host.strip("[]"), int(port), ssl=store.listener_context(),
        reuse_address=True, reuse_port=reuse_port or None, backlog=1024, ssl_handshake_timeout=limits.header_timeout,
    )
    _rotate_at_epochs(loop, store)
    return server


def _rotate_at_epochs(loop: asyncio.AbstractEventLoop, store: CertStore) -> None:
    """Rule 5: a new ticket key at every epoch boundary, while the listener serves."""
    def rotate() -> None:
        store.rotate_tickets()
        _rotate_at_epochs(loop, store)

    now = time.time()
    store.ticket_timer = loop.call_later(store.tickets.next_change(now) - now + 0.001, rotate)
