"""Redirect rules of a pushed site: ``from`` -> ``to`` with a status.

Rules:
1. ``from`` is a decoded absolute path, matched exactly, or a prefix ending in
   ``/*`` (a splat): ``/blog/*`` matches ``/blog``, ``/blog/`` and every path below,
   and the part after ``/blog/`` is the splat.
2. ``to`` is an absolute path or an ``http(s)://`` URL (characters a URL may not
   hold, such as non-ASCII letters, are percent-encoded); ``:splat`` in it is replaced
   by the splat (percent-encoded as a path). Only a splat rule may use ``:splat``.
3. Redirects are tried in the order written; the first match wins. They are checked
   before the release's files, so a rule can move a page that still exists.
4. The request's query string is appended when ``to`` has none of its own.
5. The status is 301, 302, 303, 307 or 308 for a redirect, or 200 or 404 for a
   rewrite (Rule 6).
6. A rewrite answers in place, without a redirect: the visitor gets the release file
   ``to`` names with the rule's status, at the URL they asked for. Its ``to`` is a
   path of the release, without a query or fragment (``:splat`` is the splat as it
   was decoded). Rewrites are tried only for a path no file of the release answers,
   after the files and before the not-found page, in the order written; one whose
   ``to`` finds no file is passed over (``find_rewrites`` gives every match, in
   order). So ``/* -> /index.html`` (200) is a single-page app's fallback that never
   hides ``/app.js``, and ``/docs/* -> /docs/404.html`` (404) a section's own
   not-found page. ``find_redirect`` never answers with a rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass

from urllib.parse import quote

from .paths import location

__all__ = ["REWRITES", "STATUSES", "RedirectRule", "find_redirect", "find_rewrites", "redirect_rule"]

STATUSES = (301, 302, 303, 307, 308)  # redirects
REWRITES = (200, 404)  # Rule 6
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

    @property
    def rewrite(self) -> bool:
        """Rule 6: answered in place, not redirected."""
        return self.status in REWRITES


def redirect_rule(source: str, target: str, status: int = 301) -> RedirectRule:
    """A checked rule; ``ValueError`` saying what is wrong (Rules 1, 2, 5, 6)."""
    if not source.startswith("/"):
        raise ValueError(f"'from' must be a path starting with '/', got {source!r}")
    if "*" in source[:-1] or (source.endswith("*") and not source.endswith("/*")):
        raise ValueError(f"'from' may only end in '/*' (a splat), got {source!r}")
    if any(c in source for c in "?#"):
        raise ValueError(f"'from' is a path without a query or fragment, got {source!r}")
    rewrite = status in REWRITES
    if rewrite and (not target.startswith("/") or any(c in target for c in "?#\\")):
        raise ValueError(f"'to' of a status {status} rule (a rewrite) must be a path of the release starting "
                         f"with '/', without a query, fragment or backslash, got {target!r}")
    if not target.startswith(("/", "http://", "https://")):
        raise ValueError(f"'to' must be a path starting with '/' or an http(s):// URL, got {target!r}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == " " and not rewrite for c in target):
        raise ValueError("'to' must not contain spaces or control characters (percent-encode them)"
                         if not rewrite else "'to' must not contain control characters")
    if ":splat" in target and not source.endswith("/*"):
        raise ValueError("':splat' in 'to' needs a 'from' ending in '/*'")
    if rewrite:
        return RedirectRule(source, target, status)  # a decoded path: looked up, never sent (Rule 6)
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(map(str, STATUSES + REWRITES))}, got {status}")
    return RedirectRule(source, quote(target, safe=_URL_SAFE), status)


def _splat(rule: RedirectRule, path: str) -> str | None:
    """What the ``*`` of ``rule`` matched in ``path`` ("" for an exact rule), or None
    when the rule does not match (Rule 1)."""
    prefix = rule.prefix
    if prefix is None:
        return "" if path == rule.source else None
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix) + 1:]
    return None


def find_redirect(rules: tuple[RedirectRule, ...], path: str, query: str) -> tuple[int, str] | None:
    """(status, Location) of the first redirect rule matching the decoded ``path``
    (Rules 3, 4); rewrites are passed over."""
    for rule in rules:
        if rule.rewrite:
            continue
        splat = _splat(rule, path)
        if splat is None:
            continue
        target = rule.target.replace(":splat", location(splat)) if ":splat" in rule.target else rule.target
        if query and "?" not in target:
            target += query
        return rule.status, target
    return None


def find_rewrites(rules: tuple[RedirectRule, ...], path: str) -> list[tuple[int, str]]:
    """(status, decoded path of the release) of every rewrite matching the decoded
    ``path``, in order (Rule 6); redirects are passed over."""
    found = []
    for rule in rules:
        if not rule.rewrite:
            continue
        splat = _splat(rule, path)
        if splat is not None:
            found.append((rule.status, rule.target.replace(":splat", splat)))
    return found
