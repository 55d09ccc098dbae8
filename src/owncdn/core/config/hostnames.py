"""Service hostnames: validation, normalisation and lookup by ``Host``.

Rule 1: a hostname is a DNS name of letters, digits and hyphens (labels of
1-63 characters, not starting or ending with a hyphen, 253 characters in
all), stored lowercased without a trailing dot. Internationalised names are
written in their ``xn--`` form.

Rule 2: a wildcard is a single leading ``*.``: ``*.cdn.example.com``. It
matches exactly one label in its place: ``a.cdn.example.com`` but neither
``cdn.example.com`` nor ``a.b.cdn.example.com`` (the rule TLS certificates
follow, RFC 6125 section 6.4.3).

Rule 3: lookup tries the exact name first, then the wildcard one label up.
With one-label wildcards at most one wildcard can match, so "the most
specific match" is always that one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Generic, TypeVar

__all__ = ["HostIndex", "normalize_hostname", "host_without_port"]

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

T = TypeVar("T")


def normalize_hostname(value: str) -> str:
    """``value`` lowercased without a trailing dot; ``ValueError`` if not a hostname."""
    name = value.strip().lower()
    name = name[:-1] if name.endswith(".") else name
    rest = name[2:] if name.startswith("*.") else name
    if not rest:
        raise ValueError(f"expected a hostname like blog.example.com or *.example.com, got {value!r}")
    if "*" in rest:
        raise ValueError(f"a wildcard is only allowed as a single leading '*.', got {value!r}")
    if not rest.isascii():
        raise ValueError(f"write internationalised names in their xn-- form, got {value!r}")
    if len(name) > 253:
        raise ValueError(f"a hostname has at most 253 characters, got {len(name)}")
    for label in rest.split("."):
        if not _LABEL.fullmatch(label):
            raise ValueError(
                f"{value!r} is not a valid hostname (label {label!r}: letters, digits and"
                " inner hyphens, 1-63 characters)"
            )
    return name


def host_without_port(host: str) -> str:
    """The name part of a ``Host`` header value, lowercased, without a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        host = name
    return host[:-1] if host.endswith(".") else host


class HostIndex(Generic[T]):
    """Maps normalised hostnames and wildcards to values (services)."""

    def __init__(self, entries: Iterable[tuple[str, T]] = ()) -> None:
        self._exact: dict[str, T] = {}
        self._wildcard: dict[str, T] = {}  # "example.com" for "*.example.com"
        for name, value in entries:
            if name.startswith("*."):
                self._wildcard[name[2:]] = value
            else:
                self._exact[name] = value

    def lookup(self, host: str) -> T | None:
        """The value for a ``Host`` header value (port and case ignored), or ``None``."""
        name = host_without_port(host)
        found = self._exact.get(name)
        if found is not None:
            return found
        _, dot, parent = name.partition(".")
        return self._wildcard.get(parent) if dot else None

    def __repr__(self) -> str:
        return f"HostIndex(exact={len(self._exact)}, wildcard={len(self._wildcard)})"
