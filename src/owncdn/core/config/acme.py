"""Certificates in ``cdn.yaml``: a service's ``tls`` block and the top-level ``acme`` block.

Rule 1: a service gets a certificate from the CA when its ``tls.acme`` is true, or
when it says nothing and ``acme.all_services`` is true. ``tls`` holds the ACME side
only; how the edge serves HTTPS (redirects, HSTS) lives under the service's ``https``.

Rule 2: a wildcard hostname can only be proven through DNS-01 (RFC 8555 section
7.1.3): ``challenge: http-01`` with a ``*.`` hostname is an error at that hostname.

Rule 3: ``acme.directory`` names a CA: ``letsencrypt``, ``letsencrypt-staging`` or
any ACME directory URL. The control plane keeps one account per directory URL.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AcmeSettings", "TlsSettings", "DIRECTORIES", "directory_url"]

DIRECTORIES = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
"""CAs known by name; any other ``https://`` (or ``http://``) URL is used as given."""

Challenge = Literal["dns-01", "http-01"]


def directory_url(name: str) -> str:
    """The directory URL of a CA named in ``acme.directory``."""
    return DIRECTORIES.get(name, name)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class TlsSettings(_Model):
    """Where a service's certificate comes from."""

    acme: bool | None = Field(None, description="Get (and renew) a certificate for every hostname of this service from the ACME CA in `acme.directory`. null: follow `acme.all_services`.")
    challenge: Challenge | None = Field(None, description="How the CA's challenge is answered: `dns-01` (owncdn's DNS serves the TXT records; needed for wildcards) or `http-01` (every edge answers `/.well-known/acme-challenge/`). null: `acme.challenge`.")


class AcmeSettings(_Model):
    """The ACME CA the control plane orders certificates from (it is the only client)."""

    directory: str = Field("letsencrypt", description="`letsencrypt`, `letsencrypt-staging`, or an ACME directory URL (e.g. a Pebble test CA).")
    email: str | None = Field(None, description="Contact address of the account (the CA's expiry mails go there).")
    challenge: Challenge = Field("dns-01", description="Default challenge for services that name none.")
    all_services: bool = Field(False, description="Get certificates for every service whose `tls.acme` is not false.")
    orders_per_week: int = Field(50, ge=1, description="Most orders per registered domain in 7 days (Let's Encrypt: 50 certificates per registered domain per week); an order beyond it is refused with a message.")
    expiry_warning: float = Field(7 * 86400, gt=0, description="Seconds before expiry at which a certificate that is not renewed yet is reported (webhook `expiring`).")

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str) -> str:
        if value in DIRECTORIES or value.startswith(("https://", "http://")):
            return value
        raise ValueError(f"expected {', '.join(DIRECTORIES)} or a directory URL, got {value!r}")
