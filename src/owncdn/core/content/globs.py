"""Path patterns of a pushed site's header rules.

Rules:
1. A pattern is an absolute path; ``*`` matches any run of characters within one
   segment (no ``/``), ``**`` any run including ``/``, ``?`` one character other
   than ``/``; everything else matches itself. ``/**/`` also matches a single ``/``. ``/assets/**`` matches every path
   below ``/assets/``; ``/**/*.css`` every stylesheet below the root, ``/*.css`` only
   the ones at the root.
2. A pattern matches the whole decoded request path.
3. A header rule sets its fields on every response whose path matches; rules apply
   in the order written, so a later rule replaces a field an earlier one set. A field
   whose value is None is taken off (a ``_headers`` file's ``! Name``, ``headersfile``).
4. Header rules are matched by RE2 (``google-re2``, ``linear``), in time linear in the
   path: the path is the visitor's (a 404 page or a rewrite answers any path), and
   Python's ``re`` backtracks: ``/**/a/**/a/**/b`` took 15 s against a path of 4,000 characters,
   ``/**a**a**b`` 2 s, ``/**/a/**/b`` 25 ms (the same in microseconds with RE2; a plain
   match takes about 4 us instead of 0.1, once per answer a release memoizes).
   ``compile_glob`` (Python's ``re``) stays for paths of the pusher's own files
   (``leftout``: 100,000 files against a few patterns), which no visitor chooses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HeaderRule", "compile_glob", "glob_source", "header_rule", "headers_for", "linear"]


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A pattern compiled by Python's ``re`` (Rule 4: for the pusher's own paths);
    ``ValueError`` if it is not one (Rule 1)."""
    return re.compile(glob_source(pattern))


def linear(source: str):
    """``source`` (a regular expression) compiled by RE2 (Rule 4)."""
    import re2  # (only where header rules are made: not `owncdn push`'s leaving out)

    return re2.compile(source)


def glob_source(pattern: str) -> str:
    """The regular expression of a pattern (Rule 1); ``ValueError`` if it is not one."""
    if not pattern.startswith("/"):
        raise ValueError(f"a path pattern starts with '/', got {pattern!r}")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i) and pattern[i - 1] == "/":
            out.append("(?:.*/)?")  # "/a/**/b" also matches "/a/b"
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class HeaderRule:
    pattern: str
    fields: tuple[tuple[str, str | None], ...]  # None: taken off (Rule 3)
    regex: object  # an RE2 pattern (Rule 4)


def header_rule(pattern: str, fields: dict[str, str]) -> HeaderRule:
    """A compiled rule; field names are lowercased."""
    return HeaderRule(pattern, tuple((k.lower(), v) for k, v in fields.items()), linear(glob_source(pattern)))


def headers_for(rules: tuple[HeaderRule, ...], path: str) -> dict[str, str | None]:
    """The fields every matching rule sets (None: takes off), later rules winning (Rules 2, 3)."""
    out: dict[str, str | None] = {}
    for rule in rules:
        if rule.regex.fullmatch(path):
            out.update(rule.fields)
    return out
