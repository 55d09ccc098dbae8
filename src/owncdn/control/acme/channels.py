"""The state channels of certificates and challenges (``owncdn.control.api.channels``).

- ``cert``: key = certificate id, revision = fingerprint, data = ``names``,
  ``cert_pem`` (the chain) and ``key_pem`` (opened from its seal). Only a node's own
  event stream carries it, and a node stream needs that node's token. An edge gets
  the certificates of its environment and those of no environment (uploads).
- ``acme_dns``: key = ``_acme-challenge.<name>``, data = ``values`` (TXT strings).
  DNS nodes only.
- ``acme_http``: key = token, data = ``key_authorization``. Edges only.

Rule 2 of channels holds: each ``read`` is one store query.
"""

from __future__ import annotations

import logging

from .sealing import SealError, Sealer

__all__ = ["AcmeDnsChannel", "AcmeHttpChannel", "CertChannel", "acme_channels"]

log = logging.getLogger("owncdn.control.acme")


class CertChannel:
    name = "cert"

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self._opened: dict[str, str] = {}  # sealed text -> key: each key is unsealed once, not per read

    def __repr__(self) -> str:
        return f"<CertChannel opened={len(self._opened)}>"

    def _open(self, sealed: str) -> str:
        key = self._opened.get(sealed)
        if key is None:
            if len(self._opened) > 10_000:
                self._opened.clear()
            key = self._opened[sealed] = self.sealer.open(sealed)
        return key

    def read(self, ctx, node) -> dict:
        if node.kind != "edge":
            return {}
        out = {}
        for cert in ctx.store.list_certs(env=node.env, with_key=True, issued_only=True):
            try:
                key_pem = self._open(cert.key_pem)
            except SealError as exc:
                log.warning("certificate %s is not sent: %s", cert.id, exc)
                continue
            out[cert.id] = (cert.fingerprint, {"names": list(cert.names), "cert_pem": cert.cert_pem,
                                               "key_pem": key_pem})
        return out


class AcmeDnsChannel:
    name = "acme_dns"

    def read(self, ctx, node) -> dict:
        if node.kind != "dns":
            return {}
        return {key: (tuple(values), {"values": values}) for key, values in ctx.store.challenges("dns").items()}


class AcmeHttpChannel:
    name = "acme_http"

    def read(self, ctx, node) -> dict:
        if node.kind != "edge":
            return {}
        return {token: (values[0], {"key_authorization": values[0]})
                for token, values in ctx.store.challenges("http").items()}


def acme_channels(sealer: Sealer | None = None) -> list:
    return [CertChannel(sealer or Sealer.from_env()), AcmeDnsChannel(), AcmeHttpChannel()]
