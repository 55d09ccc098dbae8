"""Private keys at rest: sealed with Fernet when ``OWNCDN_SECRET_KEY`` is set.

Rules:
1. With ``OWNCDN_SECRET_KEY`` set, every private key (certificate keys, ACME account
   keys) is stored as ``fernet:<token>``. The variable holds a Fernet key (44 base64
   characters, ``Fernet.generate_key()``) or any passphrase, from which one is derived
   with SHA-256.
2. Without it, keys are stored as ``plain:<pem>`` and the SQLite database file is made
   owner-only (0600, see ``protect_database``); a PostgreSQL store should then be
   reachable only by the control plane.
3. A sealed key that cannot be opened (a changed secret key) is an error naming the
   variable, never a crash that prints the key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["Sealer", "SealError", "protect_database"]

ENV = "OWNCDN_SECRET_KEY"


class SealError(Exception):
    pass


class Sealer:
    def __init__(self, secret: str | None) -> None:
        self._fernet = Fernet(_fernet_key(secret)) if secret else None

    @classmethod
    def from_env(cls, environ=os.environ) -> "Sealer":
        return cls(environ.get(ENV) or None)

    def __repr__(self) -> str:
        return f"<Sealer {'fernet' if self._fernet else 'plain'}>"

    def seal(self, pem: str) -> str:
        if self._fernet is None:
            return "plain:" + pem
        return "fernet:" + self._fernet.encrypt(pem.encode()).decode()

    def open(self, sealed: str) -> str:
        kind, _, body = sealed.partition(":")
        if kind == "plain":
            return body
        if kind != "fernet":
            raise SealError("a stored key is in an unknown format")
        if self._fernet is None:
            raise SealError(f"a stored key is encrypted: set {ENV} to the key it was sealed with")
        try:
            return self._fernet.decrypt(body.encode()).decode()
        except InvalidToken:
            raise SealError(f"a stored key does not open with this {ENV}") from None


def _fernet_key(secret: str) -> bytes:
    raw = secret.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def protect_database(url: str) -> None:
    """Rule 2: an SQLite store file (and its WAL files) readable by its owner only."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url[len("sqlite:///"):])
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if candidate.exists():
            os.chmod(candidate, 0o600)
