"""A certificate authority of this machine, for HTTPS in `owncdn up`.

Rules:
1. The CA lives in one directory: `ca.pem` (the certificate, to trust: `curl
   --cacert`, a browser's authorities) and `ca.key` (mode 0600, never printed). It is
   made once and reused, so a user who trusted it keeps trusting it across runs.
2. `issue(names)` signs a leaf for the names (DNS names, or IP addresses; a fresh ECDSA
   P-256 key, valid 30 days, server authentication only); the chain returned is the
   leaf, then the CA.
3. The CA may sign only names below its own constraint list when one is given
   (X.509 name constraints), so trusting it does not let it vouch for real sites.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["LocalCA"]

CA_DAYS = 3650
LEAF_DAYS = 30


class LocalCA:
    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, directory: Path) -> None:
        self.cert, self.key, self.directory = cert, key, directory

    def __repr__(self) -> str:
        return f"<LocalCA {self.cert.subject.rfc4514_string()} in {self.directory}>"

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.pem"

    @classmethod
    def load_or_create(cls, directory: Path, permitted: list[str]) -> "LocalCA":
        """Rule 1 (and Rule 3: ``permitted`` DNS name suffixes, for a new CA)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "ca.pem", directory / "ca.key"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            return cls(cert, key, directory)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "owncdn up local CA"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "owncdn")])
        now = dt.datetime.now(dt.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=CA_DAYS))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if permitted:
            builder = builder.add_extension(x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(p) for p in permitted], excluded_subtrees=None), critical=True)
        cert = builder.sign(key, hashes.SHA256())
        _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert, key, directory)

    def issue(self, names: list[str]) -> tuple[str, str]:
        """Rule 2: (chain PEM, key PEM) for ``names``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
                .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return chain.decode(), key_pem.decode()


def _san(name: str) -> x509.GeneralName:
    """Rule 2: an IP address as such (a control plane reached as https://127.0.0.1:8400), else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
