"""The edge's certificates: checked, kept on disk, chosen by SNI for every handshake.

Rules:
1. `install(cert_id, names, cert_pem, key_pem)` takes a PEM chain (leaf first) and
   its private key. Before anything changes it checks that the PEM parses, that the
   key belongs to the leaf, and that the leaf's subjectAltNames cover every name
   (`core.tls.sni.covers`); an empty `names` means the leaf's own DNS names. A failed
   check raises `CertError` and leaves the store as it was.
2. One `ssl.SSLContext` is built per certificate, at install time. The SNI callback
   picks the certificate for each handshake: the exact name, then the one-label
   wildcard, then the default certificate (`core.tls.sni`), and swaps the connection
   to that certificate's context unless it is the listener's own. No
   certificate: the handshake fails with `unrecognized_name`. A new or replaced
   certificate serves the next handshake; connections already open keep theirs.
   The listener listens with the default certificate's own context when there is
   one (so the usual handshake needs no swap: `SSL_set_SSL_CTX` copies the
   certificate state every time), else with a context that has no certificate.
3. Every context allows TLS 1.2 and 1.3 only, ECDHE with AEAD ciphers for TLS 1.2
   (all of them acceptable to HTTP/2, RFC 9113 §9.2.2), no compression, no
   renegotiation, and offers ALPN `h2` then `http/1.1`.
4. Persistence: each certificate is one JSON file (id, names, default flag, chain and
   key) in the store's directory, written to a temporary file with mode 0600, synced
   and renamed into place; the directory is 0700. Everything there is loaded at
   start, in the order they were installed; a file that no longer loads is reported
   on stderr and skipped.
5. Keys never reach a log, a repr or an exception message. OpenSSL loads them from
   a memory file (memfd), never from a path a key was written to for the purpose.
6. A refused handshake reaches the client as its TLS alert (`AlertingSSLObject`),
   not as a bare reset, and is not logged as an error: it is the client's problem.
7. The chain served is the chain installed without the self-signed certificates at
   its end (never the leaf): such a certificate is a trust anchor, which a client
   that can verify the chain already holds (RFC 8446 4.4.2 lets the server omit it). Sending it made every handshake
   ~0.5 KB bigger and cost the client a certificate parse (about 0.1 ms of CPU with
   OpenSSL 3.0, measured against nginx with and without it). What is stored and
   reported (fingerprint, files) is the chain as installed.
8. Session tickets (TLS 1.3 resumption: a returning visitor's handshake sends and
   verifies no certificate): one ticket per full handshake (OpenSSL's default is
   two; a visitor uses one per connection, and each costs the server a session
   encoding and encryption on the way to the first response), encrypted with the
   store's `TicketKeys` (edge/tickets.py), set on every context it builds and
   changed on all of them by `rotate_tickets`; with a key file shared by the
   workers a ticket resumes on whichever worker accepts the connection. Contexts
   keep no server-side session cache and never build the served chain themselves
   (edge/libssl.py): neither is needed with stateless tickets and an explicit chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID

from owncdn.core.tls.sni import CertNames, covers, normalize_name
from owncdn.edge import libssl
from owncdn.edge.tickets import TicketKeys

__all__ = ["ALPN", "CertError", "CertStore", "Installed", "server_context", "served_chain"]

ALPN = ["h2", "http/1.1"]
# Mozilla's "intermediate" TLS 1.2 suites without DHE; TLS 1.3 suites are OpenSSL's.
TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


class CertError(ValueError):
    """A certificate or key that cannot be installed (the message never holds the key)."""


@dataclass(frozen=True, slots=True)
class Installed:
    """One certificate as the edge holds it."""

    cert_id: str
    names: tuple[str, ...]
    fingerprint: str  # sha256 of the leaf's DER, hex
    serial: str
    not_after: float  # Unix seconds
    context: ssl.SSLContext
    default: bool

    def __repr__(self) -> str:
        return f"<Installed {self.cert_id} names={list(self.names)} sha256={self.fingerprint[:16]}>"


def server_context() -> ssl.SSLContext:
    """A server context with the edge's protocol settings (Rule 3), no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(ALPN)
    ctx.num_tickets = 1   # Rule 8
    libssl.tune(ctx)
    return ctx


def _parse(cert_pem: str, key_pem: str):
    """(leaf, key) after the checks of Rule 1; raises CertError."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CertError("the certificate is not a PEM certificate chain") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise CertError("the private key is not an unencrypted PEM private key") from None
    leaf = chain[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise CertError("the private key does not belong to the certificate (the first one in the chain)")
    return leaf, key


def dns_names(leaf: x509.Certificate) -> list[str]:
    """The leaf's subjectAltName DNS names (lowercased)."""
    try:
        ext = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return []
    return [normalize_name(n) for n in ext.value.get_values_for_type(x509.DNSName)]


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def served_chain(cert_pem: str) -> str:
    """The PEM chain the handshake sends (Rule 7): `cert_pem` without its trailing
    self-signed certificates; the leaf always stays."""
    chain = x509.load_pem_x509_certificates(cert_pem.encode("ascii"))
    keep = len(chain)
    while keep > 1 and _self_signed(chain[keep - 1]):
        keep -= 1
    if keep == len(chain):
        return cert_pem
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain[:keep])


def _context(cert_pem: str, key_pem: str) -> ssl.SSLContext:
    ctx = server_context()
    cert_pem = served_chain(cert_pem)
    cert_fd = os.memfd_create("owncdn-cert", os.MFD_CLOEXEC)
    key_fd = os.memfd_create("owncdn-key", os.MFD_CLOEXEC)
    try:
        os.write(cert_fd, cert_pem.encode("ascii"))
        os.write(key_fd, key_pem.encode("ascii"))
        ctx.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}")
    except ssl.SSLError as exc:
        raise CertError(f"OpenSSL refused the certificate and key ({exc.reason or exc})") from None
    finally:
        os.close(cert_fd)
        os.close(key_fd)
    return ctx


class AlertingSSLObject(ssl.SSLObject):
    """An SSLObject whose failed handshake still sends its alert (Rule 6).

    asyncio's and uvloop's TLS layers close the socket as soon as `do_handshake`
    raises, dropping the alert OpenSSL wrote for the client (`unrecognized_name`,
    `protocol_version`, ...). The first failure is reported as "want read" instead:
    the layer then sends what OpenSSL wrote and waits; the client, having read the
    alert, closes, or the handshake timeout ends the connection. A further call
    raises the real error. A failure with nothing to send is raised at once."""

    _failed: ssl.SSLError | None = None
    _outgoing: ssl.MemoryBIO | None = None

    @classmethod
    def _create(cls, incoming, outgoing, *args, **kwargs):
        obj = super()._create(incoming, outgoing, *args, **kwargs)
        obj._outgoing = outgoing
        return obj

    def do_handshake(self) -> None:
        if self._failed is not None:
            raise self._failed
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            if self._outgoing is not None and not self._outgoing.pending:
                raise  # nothing to send (plain HTTP on the TLS port, say): close now
            self._failed = exc
            raise ssl.SSLWantReadError("handshake failed; the alert is on its way") from None


def _file_name(cert_id: str) -> str:
    if _SAFE_ID.fullmatch(cert_id):
        return cert_id + ".json"
    return "x-" + hashlib.sha256(cert_id.encode()).hexdigest()[:40] + ".json"


class CertStore:
    """Certificates by id; the SNI callback of the edge's TLS listener (Rules 1-5)."""

    def __init__(self, directory: Path | str | None = None, tickets: TicketKeys | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.certs: dict[str, Installed] = {}
        self.index = CertNames()
        self.contexts: dict[str, ssl.SSLContext] = {}  # id -> context, what the callback reads
        self.handshakes_refused = 0
        self.tickets = tickets or TicketKeys()
        self._bare: ssl.SSLContext | None = None  # the listener's context when there is no default
        self.ticket_timer = None  # the loop's handle of the next key change (edge/tlslistener.py)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
            self._load()

    def __repr__(self) -> str:
        where = self.directory or "memory"
        return f"<CertStore {where} certs={len(self.certs)} default={self.index.default}>"

    # -- the interface the sync handler and the CLI use ---------------------------
    def install(self, cert_id: str, names: list[str], cert_pem: str, key_pem: str, *,
                default: bool = False, persist: bool = True) -> Installed:
        """Check, build and switch to a certificate (Rule 1); the next handshake uses it.
        `default`: also answer handshakes no other certificate matches. `persist`:
        False for certificates installed from files at every start (`--cert`)."""
        leaf, _ = _parse(cert_pem, key_pem)
        sans = dns_names(leaf)
        wanted = [normalize_name(n) for n in names] or sans
        if not wanted and not default:
            raise CertError("the certificate names no DNS names; give names or make it the default")
        uncovered = [n for n in wanted if not covers(sans, n)]
        if uncovered:
            raise CertError(f"the certificate does not cover {', '.join(uncovered)}"
                            f" (it names {', '.join(sans) or 'none'})")
        ctx = _context(cert_pem, key_pem)
        default = default or self.index.default == cert_id
        item = Installed(cert_id, tuple(wanted), leaf.fingerprint(hashes.SHA256()).hex(),
                         format(leaf.serial_number, "x"), leaf.not_valid_after_utc.timestamp(), ctx, default)
        if persist and self.directory is not None:
            self._write(item, cert_pem, key_pem)
        self._activate(item)
        return item

    def remove(self, cert_id: str) -> None:
        """Forget a certificate: no new handshake gets it. Unknown ids are ignored."""
        self.certs.pop(cert_id, None)
        self.contexts.pop(cert_id, None)
        self.index.remove(cert_id)
        if self.directory is not None:
            try:
                (self.directory / _file_name(cert_id)).unlink()
            except FileNotFoundError:
                pass

    def ids(self) -> dict[str, str]:
        """cert_id -> sha256 fingerprint of its leaf (hex)."""
        return {cid: item.fingerprint for cid, item in self.certs.items()}

    def select(self, server_name: str | None) -> Installed | None:
        """The certificate a ClientHello for `server_name` gets (Rule 2)."""
        found = self.index.lookup(server_name)
        return self.certs.get(found) if found is not None else None

    # -- the listener ---------------------------------------------------------------
    def listener_context(self) -> ssl.SSLContext:
        """The context to listen with: settings of Rule 3 and the SNI switch; the
        default certificate's own context when there is one (Rule 2)."""
        default = self.certs.get(self.index.default) if self.index.default is not None else None
        if default is not None:
            ctx = default.context
        else:
            ctx = self._bare = self._bare or server_context()
            self.tickets.apply(ctx)
        ctx.sni_callback = self._sni
        ctx.sslobject_class = AlertingSSLObject
        return ctx

    def _sni(self, ssl_object: ssl.SSLObject, server_name: str | None, current: ssl.SSLContext) -> int | None:
        found = self.index.lookup(server_name)
        ctx = self.contexts.get(found) if found is not None else None
        if ctx is None:
            self.handshakes_refused += 1
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        if ctx is not current:
            ssl_object.context = ctx
        return None

    def rotate_tickets(self, now: float | None = None) -> bool:
        """Set the ticket key of the epoch of `now` on every context (Rule 8); False
        when this interpreter keeps OpenSSL's own per-process keys."""
        now = time.time() if now is None else now
        contexts = [item.context for item in self.certs.values()] + ([self._bare] if self._bare else [])
        return all([self.tickets.apply(ctx, now) for ctx in contexts])

    def close(self) -> None:
        """Stop changing ticket keys (the listener closed)."""
        if self.ticket_timer is not None:
            self.ticket_timer.cancel()
            self.ticket_timer = None

    # -- internals -------------------------------------------------------------------
    def _activate(self, item: Installed) -> None:
        self.tickets.apply(item.context)
        self.certs[item.cert_id] = item
        self.contexts[item.cert_id] = item.context
        self.index.add(item.cert_id, item.names)
        if item.default:
            self.index.default = item.cert_id

    def _write(self, item: Installed, cert_pem: str, key_pem: str) -> None:
        data = json.dumps({"id": item.cert_id, "names": list(item.names), "default": item.default,
                           "installed": time.time_ns(), "cert": cert_pem, "key": key_pem}).encode()
        path = self.directory / _file_name(item.cert_id)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _load(self) -> None:
        found = []
        for path in self.directory.glob("*.json"):
            try:
                data = json.loads(path.read_text())
                if not isinstance(data, dict):
                    raise ValueError("not an object")
                found.append((data, path))
            except (OSError, ValueError) as exc:
                print(f"owncdn edge: skipping certificate file {path.name}: {type(exc).__name__}", file=sys.stderr)
        found.sort(key=lambda pair: (pair[0].get("installed", 0), pair[1].name))  # last installed wins
        for data, path in found:
            try:
                leaf, _ = _parse(data["cert"], data["key"])
                item = Installed(data["id"], tuple(data["names"]), leaf.fingerprint(hashes.SHA256()).hex(),
                                 format(leaf.serial_number, "x"), leaf.not_valid_after_utc.timestamp(),
                                 _context(data["cert"], data["key"]), bool(data.get("default")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                reason = str(exc) if isinstance(exc, CertError) else type(exc).__name__
                print(f"owncdn edge: skipping certificate file {path.name}: {reason}", file=sys.stderr)
                continue
            self._activate(item)
