"""Redirect rules of a pushed site: ``from`` -> ``to`` with a status.

Rules:
1. ``from`` is a decoded absolute path, matched exactly, or a prefix ending in
   ``/*`` (a splat): ``/blog/*`` matches ``/blog``, ``/blog/`` and every path below,
   and the part after ``/blog/`` is the splat.
2. ``to`` is an absolute path or an ``http(s)://`` URL (characters a URL may not
   hold, such as non-ASCII letters, are percent-encoded); ``:splat`` in it is replaced
   by the splat (percent-encoded as a path). Only a splat rule may use ``:splat``.
3. Rules are tried in the order written; the first match wins. They are checked
   before the release's files, so a rule can move a page that still exists.
4. The request's query string is appended when ``to`` has none of its own.
5. The status is 301, 302, 303, 307 or 308.
"""

from __future__ import annotations

from dataclasses import dataclass

from urllib.parse import quote

from .paths import location

__all__ = ["STATUSES", "RedirectRule", "find_redirect", "redirect_rule"]

STATUSES = (301, 302, 303, 307, 308)
_URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"  # characters a URL may hold as they are; others get %-encoded


@dataclass(frozen=True, slots=True)
class RedirectRule:
    source: str
    target: str
    status: int = 301

    @property
    def prefix(self) -> str | None:
        """``/blog`` for ``/blog/*``; None for an exact rule."""
        return self.source[:-2] if self.source.endswith("/*") else None


def redirect_rule(source: str, target: str, status: int = 301) -> RedirectRule:
    """A checked rule; ``ValueError`` saying what is wrong (Rules 1, 2, 5)."""
    if not source.startswith("/"):
        raise ValueError(f"'from' must be a path starting with '/', got {source!r}")
    if "*" in source[:-1] or (source.endswith("*") and not source.endswith("/*")):
        raise ValueError(f"'from' may only end in '/*' (a splat), got {source!r}")
    if any(c in source for c in "?#"):
        raise ValueError(f"'from' is a path without a query or fragment, got {source!r}")
    if not target.startswith(("/", "http://", "https://")):
        raise ValueError(f"'to' must be a path starting with '/' or an http(s):// URL, got {target!r}")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in target):
        raise ValueError("'to' must not contain spaces or control characters (percent-encode them)")
    if ":splat" in target and not source.endswith("/*"):
        raise ValueError("':splat' in 'to' needs a 'from' ending in '/*'")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(map(str, STATUSES))}, got {status}")
    return RedirectRule(source, quote(target, safe=_URL_SAFE), status)


def find_redirect(rules: tuple[RedirectRule, ...], path: str, query: str) -> tuple[int, str] | None:
    """(status, Location) of the first rule matching the decoded ``path`` (Rules 3, 4)."""
    for rule in rules:
        prefix = rule.prefix
        if prefix is None:
            if path != rule.source:
                continue
            splat = ""
        elif path == prefix or path.startswith(prefix + "/"):
            splat = path[len(prefix) + 1:]
        else:
            continue
        target = rule.target.replace(":splat", location(splat)) if ":splat" in rule.target else rule.target
        if query and "?" not in target:
            target += query
        return rule.status, target
    return None
