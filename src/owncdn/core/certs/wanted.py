"""The certificates a config asks the CA for.

Rule 1: one certificate per service whose ``tls.acme`` is true (or null with
``acme.all_services``), covering every hostname of the service: one order per
service for the whole fleet, however many edges serve it.
Rule 2: its id is ``<service>@<env>``, so two environments with the same service
name never share (or overwrite) a certificate.
Rule 3: the challenge is the service's ``tls.challenge``, else ``acme.challenge``;
a service with a wildcard hostname always uses ``dns-01`` (the only challenge a
CA accepts for wildcards).
"""

from __future__ import annotations

from dataclasses import dataclass

from owncdn.core.config.acme import directory_url

__all__ = ["WantedCert", "wanted_certs", "cert_id"]


@dataclass(frozen=True)
class WantedCert:
    id: str
    env: str
    service: str
    names: tuple[str, ...]
    challenge: str  # "dns-01" | "http-01"
    directory: str  # the directory URL
    email: str | None
    orders_per_week: int
    expiry_warning: float


def cert_id(service: str, env: str) -> str:
    return f"{service}@{env}"


def wanted_certs(config, env: str) -> list[WantedCert]:
    """Rules 1-3 for ``config`` (a ``Config``) of environment ``env``."""
    acme = config.acme
    out = []
    for svc in config.services:
        enabled = svc.tls.acme if svc.tls.acme is not None else acme.all_services
        if not enabled:
            continue
        wildcard = any(h.startswith("*.") for h in svc.hostnames)
        challenge = "dns-01" if wildcard else (svc.tls.challenge or acme.challenge)
        out.append(WantedCert(cert_id(svc.name, env), env, svc.name, tuple(sorted(svc.hostnames)), challenge,
                              directory_url(acme.directory), acme.email, acme.orders_per_week,
                              acme.expiry_warning))
    return out
