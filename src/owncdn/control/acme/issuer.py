"""One ACME order, start to finish, for one certificate (blocking; run in a thread).

The steps, each a method below:
1. ``issue`` takes the lease ``order:<names>`` in the store (``acquire_lock``); a
   replica that cannot take it skips this certificate for now. With the lease held it
   reads the certificate again: if another replica issued it meanwhile, nothing is
   ordered (one order per name for the whole fleet).
2. The ledger (``owncdn.core.certs.ledger``) is checked for every registered domain
   of the names; an order past the CA's limit is refused before the CA is asked.
3. The order is placed and recorded in the ledger; its challenges are written to the
   store and the streams woken (``publish``): DNS nodes serve the TXT records
   (``acme_dns``), edges the HTTP resources (``acme_http``).
4. ``Propagation.wait`` asks every DNS node (or edge) that was in contact in the last
   minute until each answers with the value, for at most ``propagation_timeout``
   seconds; then the challenges are answered and the authorizations polled.
5. The chain is finalized, parsed and stored with the sealed key; the challenges are
   removed and the lease released whatever happened.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from owncdn.core.certs import QuotaExceeded, check_quota, renew_at
from owncdn.core.certs.ledger import WEEK
from owncdn.core.contact import IN_CONTACT, contact_state

from .client import AcmeConnection, AcmeFailure, Challenge
from .domains import registered_domain
from .pem import new_csr_pem, new_key_pem, parse_chain
from .sealing import Sealer

__all__ = ["Busy", "Issuer", "IssueOptions", "Propagation"]

log = logging.getLogger("owncdn.control.acme")


class Busy(Exception):
    """Another control-plane replica holds this certificate's lease."""


@dataclass(frozen=True)
class IssueOptions:
    ca_bundle: str | None = None  # a CA file to trust for the ACME server (test CAs)
    lock_ttl: float = 300.0
    order_timeout: float = 120.0
    propagation_timeout: float = 30.0


class Issuer:
    def __init__(self, store, sealer: Sealer, publish: Callable[[], None], options: IssueOptions,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.sealer = sealer
        self.publish = publish
        self.options = options
        self.clock = clock
        self.holder = secrets.token_hex(8)
        self.propagation = Propagation(store, options.propagation_timeout)
        self._local = threading.local()  # one AcmeConnection per worker thread and directory

    def __repr__(self) -> str:
        return f"<Issuer holder={self.holder}>"

    # -- accounts -----------------------------------------------------------------------
    def connection(self, directory: str, email: str | None) -> AcmeConnection:
        """This thread's connection to ``directory``, with the directory's account
        (``client`` Rule 1). Orders run in several threads at once, and the library's
        nonce handling is not shared safely between threads, so each has its own."""
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(directory)
        if conn is not None:
            return conn
        saved = self.store.acme_account(directory)
        if saved is None:
            sealed, uri = self.store.save_acme_account(directory, self.sealer.seal(AcmeConnection.new_account_key()), "")
        else:
            sealed, uri = saved
        conn = AcmeConnection(directory, self.sealer.open(sealed), uri, ca_bundle=self.options.ca_bundle)
        if not uri:
            self.store.save_acme_account(directory, sealed, conn.register(email))
        conns[directory] = conn
        return conn

    # -- one order ----------------------------------------------------------------------
    def issue(self, cert_id: str, email: str | None, orders_per_week: int, still_due: Callable,
              retry_at: Callable[[object, Exception], float]) -> object | None:
        """Steps 1-5; the stored certificate, or None when someone else issued it. A
        failure is recorded (with its next attempt, ``retry_at(cert, exc)``) before the
        lease is released, so no other replica starts the same order meanwhile."""
        cert = self.store.get_cert(cert_id)
        lock = "order:" + ",".join(cert.names)
        if not self.store.acquire_lock(lock, self.holder, self.options.lock_ttl):
            raise Busy(f"{cert_id}: another control-plane replica is ordering it")
        try:
            cert = self.store.get_cert(cert_id)
            if cert is None or not still_due(cert, self.clock()):
                return None
            domains = {registered_domain(n) for n in cert.names}
            now = self.clock()
            try:
                check_quota(domains, self.store.orders_since(domains, now - WEEK, cert.directory), now,
                            orders_per_week)
                return self._order(cert, email, domains)
            except Exception as exc:
                self.store.cert_failed(cert_id, _describe(exc), retry_at(cert, exc))
                raise
        finally:
            self.store.remove_challenges(cert_id)
            self.publish()
            self.store.release_lock(lock, self.holder)

    def _order(self, cert, email: str | None, domains: set[str]):
        deadline = time.monotonic() + self.options.order_timeout
        conn = self.connection(cert.directory, email)
        key_pem = new_key_pem()
        order = conn.new_order(new_csr_pem(key_pem, list(cert.names)))
        self.store.record_order(cert.id, domains, cert.names, cert.directory)
        challenges = conn.challenges(order, cert.challenge)
        if challenges:
            self.store.add_challenges(cert.id, [(c.kind, c.key, c.value) for c in challenges])
            self.publish()
            self.propagation.wait(challenges)
            for challenge in challenges:
                conn.answer(challenge)
            order = conn.wait_valid(order, deadline)
        chain = conn.finalize(order, deadline)
        info = parse_chain(chain)
        return self.store.store_cert(
            cert.id, names=cert.names, cert_pem=chain, key_pem=self.sealer.seal(key_pem),
            fingerprint=info.fingerprint, issuer=info.issuer, not_before=info.not_before,
            not_after=info.not_after, renew_at=renew_at(info.not_before, info.not_after), source="acme",
            env=cert.env, challenge=cert.challenge, directory=cert.directory)

    def renewal_info(self, cert, email: str | None) -> tuple[float | None, float]:
        try:
            return self.connection(cert.directory, email).renewal_info(cert.cert_pem)
        except AcmeFailure as exc:
            log.warning("renewal information for %s: %s", cert.id, exc)
            return None, self.clock() + 6 * 3600


def _describe(exc: Exception) -> str:
    if isinstance(exc, (AcmeFailure, QuotaExceeded)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Propagation:
    """Step 4: wait until the nodes that answer challenges have the records."""

    def __init__(self, store, timeout: float) -> None:
        self.store = store
        self.timeout = timeout

    def wait(self, challenges: list[Challenge]) -> bool:
        """True once every node of the kind that answers (DNS nodes for DNS-01, edges
        for HTTP-01) in contact (``owncdn.core.contact``) serves every record, and there
        is at least one; False after ``timeout`` (the challenges are answered anyway).
        A node whose event stream ended and stayed gone is not waited for
        (``owncdn.core.contact``): stopped, it answers nothing the CA could ask."""
        kind = "dns" if challenges[0].kind == "dns" else "edge"
        deadline = time.monotonic() + self.timeout
        seen: set[tuple[str, str]] = set()
        while True:
            now = time.time()
            nodes = [n for n in self.store.list_nodes() if n.kind == kind
                     and contact_state(n.last_contact, n.stream_ended_at, now) == IN_CONTACT]
            pending = [(n, c) for n in nodes for c in challenges if (n.id, c.key) not in seen]
            for n, c in pending:
                if self._answers(n.address, c):
                    seen.add((n.id, c.key))
            pending = [(n, c) for n, c in pending if (n.id, c.key) not in seen]
            if nodes and not pending:
                return True
            if time.monotonic() > deadline:
                names = ", ".join(sorted({n.name for n, _ in pending})) or f"no {kind} node in contact"
                log.warning("challenge records not seen on %s after %.0f s; answering anyway", names, self.timeout)
                return False
            time.sleep(0.05)

    @staticmethod
    def _answers(address: str, challenge: Challenge) -> bool:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        try:
            if challenge.kind == "dns":
                return challenge.value in _txt(host, int(port), challenge.key)
            resp = httpx.get(f"http://{address}/.well-known/acme-challenge/{challenge.key}",
                             headers={"Host": challenge.name}, timeout=2.0)
            return resp.status_code == 200 and resp.text.strip() == challenge.value
        except (OSError, ValueError, httpx.HTTPError, Exception):  # noqa: BLE001 - a node not answering yet
            return False


def _txt(host: str, port: int, name: str) -> set[str]:
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(name, dns.rdatatype.TXT)
    response = dns.query.udp(query, host, port=port, timeout=1.0)
    return {b"".join(r.strings).decode() for rrset in response.answer for r in rrset
            if rrset.rdtype == dns.rdatatype.TXT}
