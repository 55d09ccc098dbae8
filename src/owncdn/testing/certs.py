"""Test certificates made with `cryptography`: a private CA and leaf certificates.

    ca = TestCA()
    leaf = ca.issue(["example.test", "*.example.test"])
    leaf.cert_pem, leaf.key_pem          # chain (leaf, then the CA) and key, PEM text
    ca.client_context()                  # an ssl.SSLContext that trusts only this CA
    leaf.write(tmp_path)                 # -> (cert file, key file)

Keys are ECDSA P-256 unless `rsa=True`; nothing here is fit for anything but tests.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa as rsa_keys
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Leaf", "TestCA"]


def _key(use_rsa: bool):
    if use_rsa:
        return rsa_keys.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Leaf:
    names: tuple[str, ...]
    cert: x509.Certificate
    cert_pem: str  # the leaf, then the CA certificate
    key_pem: str

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    def write(self, directory: Path, stem: str = "leaf") -> tuple[Path, Path]:
        cert, key = Path(directory) / f"{stem}.pem", Path(directory) / f"{stem}.key"
        cert.write_text(self.cert_pem)
        key.write_text(self.key_pem)
        key.chmod(0o600)
        return cert, key


class TestCA:
    """A self-signed CA that issues server certificates for DNS names."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "owncdn test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = _pem_cert(self.cert)

    def __repr__(self) -> str:
        return f"<TestCA {self.cert.subject.rfc4514_string()}>"

    def issue(self, names: list[str], *, days: int = 90, rsa: bool = False) -> Leaf:
        key = _key(rsa)
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return Leaf(tuple(names), cert, _pem_cert(cert) + self.cert_pem, _pem_key(key))

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        """A client context trusting only this CA (hostnames are checked)."""
        ctx = ssl.create_default_context(cadata=self.cert_pem)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def write(self, directory: Path) -> Path:
        path = Path(directory) / "ca.pem"
        path.write_text(self.cert_pem)
        return path
