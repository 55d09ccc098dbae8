"""Request targets: splitting, host normalisation and resolving references.

Rules of this module:

Rule 1: a request target is kept byte for byte except that the absolute form
        ("http://host/p?q") is reduced to its path and query, a fragment is dropped and
        an empty path becomes "/" (RFC 9112 §3.2, RFC 9110 §4.2.3).
Rule 2: a host is compared lowercased, without port and without a trailing dot.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

__all__ = ["normalize_host", "origin_form", "resolve_same_host", "split_target"]


def normalize_host(host: str) -> str:
    """"Example.COM:8080" -> "example.com"; "[::1]:80" -> "[::1]"."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[:end + 1] if end != -1 else host
    host = host.partition(":")[0]
    return host[:-1] if host.endswith(".") else host


def origin_form(target: str) -> str:
    """The path-and-query form of a request target (Rule 1)."""
    target = target.partition("#")[0]
    if not target.startswith("/") and "://" in target:
        parts = urlsplit(target)
        target = parts.path + ("?" + parts.query if parts.query else "")
    if target == "*" or target.startswith("/"):
        return target
    return "/" + target


def split_target(target: str) -> tuple[str, str | None]:
    """(path, query or None) of a request target."""
    path, q, query = origin_form(target).partition("?")
    return path, (query if q else None)


def resolve_same_host(reference: str, base_target: str, host: str) -> str | None:
    """The origin-form target ``reference`` points to, if it stays on ``host``."""
    base = f"http://{normalize_host(host) or 'localhost'}{origin_form(base_target)}"
    resolved = urlsplit(urljoin(base, reference.strip()))
    if resolved.scheme not in ("http", "https"):
        return None
    if normalize_host(resolved.netloc.rpartition("@")[2]) != normalize_host(host):
        return None
    return (resolved.path or "/") + ("?" + resolved.query if resolved.query else "")
