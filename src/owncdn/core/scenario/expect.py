"""Matching what the edge answered against a step's ``expect``.

Rule 1: each check is one row of ``_CHECKS``; it returns ``None`` when the
response matches, else one readable sentence: ``expected X-Cache HIT, got MISS``.

Rule 2: header names match case-insensitively and values exactly; an
expected ``null`` means the header must be absent.

Rule 3: bodies are compared as UTF-8 text; long bodies are cut in messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .model import Expect

__all__ = ["Observed", "check_expect", "step_failure"]


@dataclass(frozen=True)
class Observed:
    """What a step saw: the edge's response and the origin's requests so far."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)   # names lowercased
    body: bytes = b""
    origin_requests: int = 0
    origin_headers: Mapping[str, str] | None = None           # of the last origin request; names lowercased

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def check_expect(expect: Expect, seen: Observed) -> list[str]:
    """Every way ``seen`` differs from ``expect``, as sentences; ``[]`` when it matches."""
    return [message for check in _CHECKS if (message := check(expect, seen)) is not None]


def step_failure(number: int, messages: list[str]) -> str:
    """``step 3: expected X-Cache HIT, got MISS; expected header age "0", got "61"``."""
    return f"step {number}: " + "; ".join(messages)


def _status(expect: Expect, seen: Observed) -> str | None:
    if expect.status is not None and expect.status != seen.status:
        return f"expected status {expect.status}, got {seen.status}"
    return None


def _x_cache(expect: Expect, seen: Observed) -> str | None:
    got = seen.headers.get("x-cache")
    if expect.x_cache is not None and expect.x_cache != got:
        return f"expected X-Cache {expect.x_cache}, got {got or 'no X-Cache header'}"
    return None


def _headers(expect: Expect, seen: Observed) -> str | None:
    return _compare_headers(expect.headers, seen.headers, "header")


def _origin_headers(expect: Expect, seen: Observed) -> str | None:
    if not expect.origin_headers:
        return None
    if seen.origin_headers is None:
        return "expected origin request headers, but the origin received no request"
    return _compare_headers(expect.origin_headers, seen.origin_headers, "origin request header")


def _compare_headers(expected: Mapping[str, str | None], got: Mapping[str, str], what: str) -> str | None:
    problems = []
    for name, value in expected.items():
        actual = got.get(name.lower())
        if value is None and actual is not None:
            problems.append(f"expected no {what} {name}, got {_quote(actual)}")
        elif value is not None and actual is None:
            problems.append(f"expected {what} {name}: {_quote(value)}, got none")
        elif value is not None and actual != value:
            problems.append(f"expected {what} {name}: {_quote(value)}, got {_quote(actual)}")
    return "; ".join(problems) or None


def _body(expect: Expect, seen: Observed) -> str | None:
    if expect.body is not None and expect.body != seen.text:
        return f"expected body {_quote(expect.body)}, got {_quote(seen.text)}"
    return None


def _body_contains(expect: Expect, seen: Observed) -> str | None:
    if expect.body_contains is not None and expect.body_contains not in seen.text:
        return f"expected the body to contain {_quote(expect.body_contains)}, got {_quote(seen.text)}"
    return None


def _origin_requests(expect: Expect, seen: Observed) -> str | None:
    wanted = expect.origin_requests
    if wanted is not None and wanted != seen.origin_requests:
        return f"expected {wanted} origin request{'s' if wanted != 1 else ''} so far, got {seen.origin_requests}"
    return None


def _quote(text: str, limit: int = 60) -> str:
    short = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(short, ensure_ascii=False)


_CHECKS: tuple[Callable[[Expect, Observed], str | None], ...] = (
    _status, _x_cache, _headers, _body, _body_contains, _origin_requests, _origin_headers,
)
