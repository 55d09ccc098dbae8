"""Certificate selection by server name (SNI), as pure lookups.

Rules:
1. Names are compared lowercased, without a trailing dot. A wildcard is a single
   leading `*.` and stands for exactly one label (RFC 6125 §6.4.3): `*.example.com`
   matches `a.example.com`, neither `example.com` nor `a.b.example.com`.
2. Lookup tries the exact name first, then the wildcard one label up, then the
   default certificate; `None` when there is none (the handshake then fails with
   `unrecognized_name`). Both steps are dict lookups, so thousands of names cost the
   same as one.
3. A name held by several certificates goes to the one installed last; removing it
   hands the name back to the previous holder that is still installed.
4. A certificate may claim only names its own subjectAltNames cover (`covers`).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CertNames", "covers", "normalize_name"]


def normalize_name(name: str) -> str:
    """Lowercase, no trailing dot (Rule 1)."""
    name = name.strip().lower()
    return name[:-1] if name.endswith(".") else name


def _parent(name: str) -> str | None:
    head, dot, rest = name.partition(".")
    return rest if dot and head and rest else None


def covers(sans: Iterable[str], name: str) -> bool:
    """True if a certificate for `sans` is valid for `name` (a hostname, or a
    `*.parent` wildcard that the certificate must then hold as such)."""
    names = {normalize_name(s) for s in sans}
    name = normalize_name(name)
    if name in names:
        return True
    parent = _parent(name)
    return not name.startswith("*.") and parent is not None and f"*.{parent}" in names


class CertNames:
    """Server name -> certificate id, with holders kept per name (Rules 2, 3)."""

    def __init__(self) -> None:
        self._exact: dict[str, str] = {}
        self._wildcard: dict[str, str] = {}  # "example.com" for "*.example.com"
        self._holders: dict[str, list[str]] = {}  # name as written -> ids, last wins
        self._names: dict[str, tuple[str, ...]] = {}  # id -> its names
        self.default: str | None = None

    def __repr__(self) -> str:
        return f"<CertNames certs={len(self._names)} names={len(self._holders)} default={self.default}>"

    def __len__(self) -> int:
        return len(self._names)

    def names(self, cert_id: str) -> tuple[str, ...]:
        return self._names.get(cert_id, ())

    def add(self, cert_id: str, names: Iterable[str]) -> None:
        """Install or replace `cert_id` with `names`."""
        if cert_id in self._names:
            self.remove(cert_id, keep_default=True)
        clean = tuple(dict.fromkeys(normalize_name(n) for n in names))
        self._names[cert_id] = clean
        for name in clean:
            holders = self._holders.setdefault(name, [])
            holders.append(cert_id)
            self._point(name, cert_id)

    def remove(self, cert_id: str, keep_default: bool = False) -> None:
        for name in self._names.pop(cert_id, ()):
            holders = self._holders.get(name, [])
            if cert_id in holders:
                holders.remove(cert_id)
            if holders:
                self._point(name, holders[-1])
            else:
                self._holders.pop(name, None)
                self._point(name, None)
        if self.default == cert_id and not keep_default:
            self.default = None

    def _point(self, name: str, cert_id: str | None) -> None:
        table, key = (self._wildcard, name[2:]) if name.startswith("*.") else (self._exact, name)
        if cert_id is None:
            table.pop(key, None)
        else:
            table[key] = cert_id

    def lookup(self, server_name: str | None) -> str | None:
        """The certificate id for a ClientHello's server name (None: no SNI sent)."""
        if server_name:
            name = server_name.lower()
            if name[-1:] == ".":
                name = name[:-1]
            found = self._exact.get(name)
            if found is not None:
                return found
            parent = _parent(name)
            if parent is not None:
                found = self._wildcard.get(parent)
                if found is not None:
                    return found
        return self.default
