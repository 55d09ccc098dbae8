"""Secondary cache keys from Vary (RFC 9111 §4.1).

Rules of this module:

Rule 1: a stored response records, for each field its Vary names, the normalised value
        the request had (None when the request lacked the field). Names are lowercased,
        deduplicated and sorted, so "Vary: A, B" and "Vary: b, a" build the same key.
Rule 2: normalisation is what §4.1 allows: combining field lines, removing whitespace
        where the syntax allows it (around commas, runs collapsed to one space), and
        lowercasing values known to be case-insensitive (Accept-Encoding).
Rule 3: "Vary: *" always fails to match (key None); an absent field only matches an
        absent field (None never equals a string, even "").
"""

from __future__ import annotations

import re

from .headers import Headers

__all__ = ["VaryKey", "normalize_field", "vary_key", "vary_matches"]

VaryKey = tuple[tuple[str, str | None], ...]

_CASE_INSENSITIVE = frozenset({"accept-encoding"})
_AROUND_COMMA = re.compile(r"[ \t]*,[ \t]*")
_WHITESPACE = re.compile(r"[ \t]+")


def normalize_field(name: str, req_headers: Headers) -> str | None:
    """The request's value of ``name`` combined over lines and normalised (Rule 2)."""
    values = req_headers.get_all(name)
    if not values:
        return None
    value = ",".join(v.strip() for v in values)
    if "," in value:
        value = _AROUND_COMMA.sub(",", value)
    value = _WHITESPACE.sub(" ", value)
    return value.lower() if name in _CASE_INSENSITIVE else value


def vary_key(resp_headers: Headers, req_headers: Headers) -> VaryKey | None:
    """The secondary key a response's Vary asks for; None for Vary: *."""
    names = sorted({n.lower() for n in resp_headers.get_list("vary")})
    if "*" in names:
        return None
    return tuple((name, normalize_field(name, req_headers)) for name in names)


def vary_matches(stored_vary: VaryKey | None, req_headers: Headers) -> bool:
    """Whether a request selects a stored response with this secondary key."""
    if stored_vary is None:
        return False
    for name, value in stored_vary:
        if normalize_field(name, req_headers) != value:
            return False
    return True
