"""Certificates and keys as PEM: parse, check, fingerprint; new keys and CSRs.

Rules:
1. A chain is one or more PEM certificates, leaf first. Its fingerprint is the
   SHA-256 of the leaf's DER, hex: the edge's ``CertStore.ids()`` reports the same.
2. An upload is accepted only when the key parses, the chain parses, and the key's
   public key is the leaf's public key.
3. New certificate keys are ECDSA P-256 (every CA and client accepts them); ACME
   account keys too (ES256).
4. Error messages never include key material.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

__all__ = ["CertInfo", "PemError", "check_pair", "new_key_pem", "new_csr_pem", "parse_chain"]


class PemError(ValueError):
    pass


@dataclass(frozen=True)
class CertInfo:
    names: tuple[str, ...]
    issuer: str
    not_before: float
    not_after: float
    fingerprint: str
    serial: int


def parse_chain(chain_pem: str) -> CertInfo:
    """What the leaf of ``chain_pem`` says (Rule 1); PemError if it does not parse."""
    try:
        certs = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError as exc:
        raise PemError(f"the certificate chain does not parse as PEM: {exc}") from None
    leaf = certs[0]
    try:
        sans = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = tuple(sorted(n.lower() for n in sans.get_values_for_type(x509.DNSName)))
    except x509.ExtensionNotFound:
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        names = (str(cn[0].value).lower(),) if cn else ()
    return CertInfo(names=names, issuer=leaf.issuer.rfc4514_string(),
                    not_before=leaf.not_valid_before_utc.timestamp(), not_after=leaf.not_valid_after_utc.timestamp(),
                    fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
                    serial=leaf.serial_number)


def check_pair(chain_pem: str, key_pem: str) -> CertInfo:
    """Rule 2: the chain's info if ``key_pem`` is the leaf's key, else PemError."""
    info = parse_chain(chain_pem)
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise PemError("the private key does not parse (PEM, unencrypted)") from None
    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise PemError("the private key does not belong to the certificate (public keys differ)")
    return info


def new_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def new_csr_pem(key_pem: str, names: list[str]) -> bytes:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)
