"""The ACME protocol side (RFC 8555), through the ``acme`` library (certbot's).

``AcmeConnection`` is blocking (the library uses ``requests``); the manager runs it in
a worker thread. One connection per CA directory, with the account of that directory.

Rules:
1. One account per directory URL. Its key (ECDSA P-256, ES256) is made on first use,
   sealed and kept in the store with the account URL; a replica that saved one first
   wins, and everyone uses that one.
2. An order yields one ``Challenge`` per authorization that is not valid yet, of the
   type asked for (``dns-01`` or ``http-01``); a wildcard's authorization only offers
   ``dns-01``.
3. Authorizations are polled every ``POLL_SECONDS`` until valid or invalid; an
   invalid one raises ``ValidationFailed`` with the CA's problem detail per name.
4. ``renewal_info`` asks the CA's ARI (RFC 9773) when its directory has ``renewalInfo``.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass

import josepy as jose
from acme import challenges, client, errors, messages
from cryptography.hazmat.primitives import serialization

from .pem import new_key_pem

__all__ = ["AcmeConnection", "AcmeFailure", "Challenge", "ValidationFailed"]

POLL_SECONDS = 0.2
REGISTER_ATTEMPTS = 3
USER_AGENT = "owncdn (acme-python)"


class AcmeFailure(Exception):
    """The CA refused or failed; the message is the CA's problem detail."""


class ValidationFailed(AcmeFailure):
    pass


@dataclass(frozen=True)
class Challenge:
    """What must be published for one name: a TXT record or an HTTP resource."""

    name: str  # the identifier (without "*.")
    kind: str  # "dns" | "http"
    key: str  # "_acme-challenge.<name>" | the token
    value: str  # the TXT value | the key authorization
    body: object  # the library's ChallengeBody
    response: object  # the library's ChallengeResponse


class AcmeConnection:
    def __init__(self, directory_url: str, account_key_pem: str, account_uri: str = "",
                 ca_bundle: str | None = None, timeout: float = 30.0) -> None:
        key = serialization.load_pem_private_key(account_key_pem.encode(), password=None)
        self.key = jose.JWKEC(key=key)
        verify = ca_bundle if ca_bundle else True
        self.net = client.ClientNetwork(self.key, alg=jose.ES256, verify_ssl=verify, user_agent=USER_AGENT,
                                        timeout=int(timeout))
        self.directory_url = directory_url
        try:
            directory = client.ClientV2.get_directory(directory_url, self.net)
        except Exception as exc:  # noqa: BLE001 - requests, JSON, TLS: one cause for the operator
            raise AcmeFailure(f"cannot read the ACME directory {directory_url}: {exc}") from None
        self.acme = client.ClientV2(directory, self.net)
        self.account_uri = account_uri
        if account_uri:
            self.net.account = messages.RegistrationResource(body=messages.Registration(), uri=account_uri)

    def __repr__(self) -> str:
        return f"<AcmeConnection {self.directory_url} account={self.account_uri or '-'}>"

    @staticmethod
    def new_account_key() -> str:
        return new_key_pem()

    def register(self, email: str | None) -> str:
        """Rule 1: create (or find) the account of this key; returns its URL. Threads
        and replicas register one key at once; a CA may then fail all but one (Pebble
        answers ``serverInternal``), and asking again finds the account just made."""
        reg = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                uri = self.acme.new_account(reg).uri
                break
            except errors.ConflictError as exc:  # the key has an account already
                uri = exc.location
                self.net.account = messages.RegistrationResource(body=messages.Registration(), uri=uri)
                break
            except messages.Error as exc:
                if exc.code != "serverInternal" or attempt == REGISTER_ATTEMPTS - 1:
                    raise AcmeFailure(f"the CA refused the account: {exc}") from None
                time.sleep(POLL_SECONDS)
        self.account_uri = uri
        return uri

    def new_order(self, csr_pem: bytes):
        try:
            return self.acme.new_order(csr_pem)
        except messages.Error as exc:
            raise AcmeFailure(f"the CA refused the order: {exc}") from None

    def challenges(self, order, kind: str) -> list[Challenge]:
        """Rule 2."""
        wanted = challenges.DNS01 if kind == "dns-01" else challenges.HTTP01
        out = []
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            name = authz.body.identifier.value
            found = [c for c in authz.body.challenges if isinstance(c.chall, wanted)]
            if not found:
                offered = ", ".join(sorted(c.chall.typ for c in authz.body.challenges))
                raise AcmeFailure(f"the CA offers no {kind} challenge for {name} (offered: {offered})")
            body = found[0]
            response, validation = body.response_and_validation(self.key)
            if kind == "dns-01":
                out.append(Challenge(name, "dns", body.chall.validation_domain_name(name), validation, body, response))
            else:
                out.append(Challenge(name, "http", body.chall.encode("token"), validation, body, response))
        return out

    def answer(self, challenge: Challenge) -> None:
        try:
            self.acme.answer_challenge(challenge.body, challenge.response)
        except messages.Error as exc:
            raise AcmeFailure(f"the CA refused the answer for {challenge.name}: {exc}") from None

    def wait_valid(self, order, deadline: float):
        """Rule 3: the order with every authorization valid."""
        done = []
        for authz in order.authorizations:
            while authz.body.status == messages.STATUS_PENDING:
                if time.monotonic() > deadline:
                    raise AcmeFailure(f"the CA did not validate {authz.body.identifier.value} in time")
                time.sleep(POLL_SECONDS)
                authz, _ = self.acme.poll(authz)
            if authz.body.status != messages.STATUS_VALID:
                details = [f"{c.chall.typ}: {c.error.detail or c.error.typ}" for c in authz.body.challenges
                           if c.error is not None]
                raise ValidationFailed(f"the CA could not validate {authz.body.identifier.value}: "
                                       + ("; ".join(details) or authz.body.status.name))
            done.append(authz)
        return order.update(authorizations=done)

    def finalize(self, order, deadline: float) -> str:
        """The full chain PEM of the finalized order."""
        until = datetime.datetime.now() + datetime.timedelta(seconds=max(1.0, deadline - time.monotonic()))
        try:
            order = self.acme.finalize_order(order, until)
        except (messages.Error, errors.Error) as exc:
            raise AcmeFailure(f"finalizing the order failed: {exc}") from None
        return order.fullchain_pem

    def renewal_info(self, cert_pem: str) -> tuple[float | None, float]:
        """Rule 4: (start of the CA's suggested renewal time or None, when to ask again)."""
        try:
            when, retry = self.acme.renewal_time(cert_pem.encode())
        except errors.ARIError as exc:
            return None, _timestamp(exc.retry_after)
        return (None if when is None else _timestamp(when)), _timestamp(retry)


def _timestamp(value: datetime.datetime) -> float:
    if value.tzinfo is None:  # the library mixes naive local times and aware UTC ones
        return value.timestamp()
    return value.astimezone(datetime.timezone.utc).timestamp()
