"""Choosing a precompressed sibling by Accept-Encoding (RFC 9110 §12.5.3, §12.4.2).

A release may hold ``app.js`` with ``app.js.br`` and ``app.js.gz`` next to it; the
edge answers a request for ``app.js`` with whichever the client accepts best.

Rules:
1. The field is a list of ``coding[;q=weight]``; codings are case-insensitive and
   ``x-gzip`` is ``gzip`` (RFC 9110 §8.4.1.3). A member whose weight is not a valid
   qvalue (``0`` to ``1``, at most three decimals) is ignored; a later member for the
   same coding replaces an earlier one.
2. A coding's weight is its own member's, else that of ``*``, else 0 — except
   ``identity``, which is acceptable unless ``identity;q=0``, or ``*;q=0`` without an
   ``identity`` member, excludes it (§12.5.3). Named by neither, it ranks below
   every coding the client named.
3. Without the field the client stated no preference: the plain file is sent. An
   empty field value accepts ``identity`` only.
4. The acceptable coding with the highest weight wins; ties go to the server's
   order, smallest first: ``br``, ``zstd``, ``gzip``, ``identity``.
5. When nothing is acceptable the plain file is sent anyway (the server disregards
   the field rather than answering 406, as §12.5.3 and §12.1 allow).
"""

from __future__ import annotations

import re
from collections.abc import Container

__all__ = ["CODINGS", "IDENTITY", "choose_coding", "parse_accept_encoding", "sibling"]

IDENTITY = "identity"
# coding -> the suffix of its precompressed sibling, in the server's order (Rule 4)
CODINGS: dict[str, str] = {"br": ".br", "zstd": ".zst", "gzip": ".gz"}
_ALIASES = {"x-gzip": "gzip"}
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_UNNAMED_IDENTITY = 0.0005  # below any weight a client can write (0.001)


def parse_accept_encoding(value: str) -> dict[str, float]:
    """Coding (lowercase; ``*`` included) -> weight (Rule 1)."""
    weights: dict[str, float] = {}
    for member in value.split(","):
        coding, *params = member.split(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        weight = 1.0
        for param in params:
            key, eq, val = param.strip().partition("=")
            if key.strip().lower() == "q":
                val = val.strip()
                weight = float(val) if eq and _QVALUE.fullmatch(val) else -1.0
        if weight >= 0:
            weights[_ALIASES.get(coding, coding)] = weight
    return weights


def _identity_weight(weights: dict[str, float]) -> float:
    if IDENTITY in weights:
        return weights[IDENTITY]
    return weights.get("*", _UNNAMED_IDENTITY)


def choose_coding(accept: str | None, available: Container[str]) -> str:
    """The coding to send: one of ``available`` (codings of existing siblings) or
    ``identity`` (Rules 2-5)."""
    if accept is None:
        return IDENTITY
    weights = parse_accept_encoding(accept)
    best, best_weight = IDENTITY, _identity_weight(weights)
    if best_weight == 0:
        best_weight = -1.0  # excluded, but still the answer when nothing else is acceptable
    for coding in CODINGS:
        if coding in available:
            weight = weights.get(coding, weights.get("*", 0.0))
            if weight > 0 and weight > best_weight:
                best, best_weight = coding, weight
            elif weight > 0 and weight == best_weight and best == IDENTITY:
                best = coding
    return best


def sibling(file: str, coding: str) -> str:
    """The manifest path of ``file``'s sibling in ``coding`` (``identity``: itself)."""
    return file if coding == IDENTITY else file + CODINGS[coding]
