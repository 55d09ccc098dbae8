"""Redirect rules of a pushed site: ``from`` -> ``to`` with a status.

Rules:
1. ``from`` is a decoded absolute path, matched exactly, or a prefix ending in
   ``/*`` (a splat): ``/blog/*`` matches ``/blog``, ``/blog/`` and every path below,
   and the part after ``/blog/`` is the splat. A segment ``:name`` (a letter or ``_``,
   then letters, digits or ``_``) is a placeholder: it matches any one segment that is
   not empty (``/news/:year/:slug`` matches ``/news/2024/hello``, not ``/news/2024/``
   nor ``/news/2024/a/b``). As Netlify's and Cloudflare Pages' ``_redirects`` write them.
2. ``to`` is an absolute path or an ``http(s)://`` URL (characters a URL may not
   hold, such as non-ASCII letters, are percent-encoded); ``:splat`` in it is replaced
   by the splat, and ``:name`` by what that placeholder matched (percent-encoded as a
   path). Only a splat rule may use ``:splat``, and a ``:name`` after the URL's host
   must be a placeholder of ``from`` (write a colon that is not one as ``%3A``).
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
7. ``from`` and the path asked for are compared in Unicode's composed form (NFC): a
   rule written as ``/café`` matches a browser's ``/caf%C3%A9`` and a decomposed
   ``/cafe%CC%81`` (file names pushed from a Mac are decomposed, and so may be the
   rules written next to them); a placeholder or splat gives what it matched composed.
   ASCII paths are not looked at twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from unicodedata import normalize
from urllib.parse import quote

from .paths import location

__all__ = ["REWRITES", "STATUSES", "RedirectRule", "find_redirect", "find_rewrites", "location_of", "matching",
           "redirect_rule", "rewritten"]

STATUSES = (301, 302, 303, 307, 308)  # redirects
REWRITES = (200, 404)  # Rule 6
_URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"  # characters a URL may hold as they are; others get %-encoded
_NAME = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")  # a placeholder in ``to`` (Rule 2)
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a placeholder's name in ``from`` (Rule 1)


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
    def placeholders(self) -> bool:
        """Whether ``from`` has ``:name`` segments (Rule 1)."""
        return "/:" in self.source

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
    if not source.isascii():  # Rule 7
        source = normalize("NFC", source)
    names = _names(source)
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
    for name in _NAME.findall(_after_host(target)):
        if name != "splat" and name not in names:
            raise ValueError(f"':{name}' in 'to' is not a placeholder of 'from' {source!r} "
                             "(a colon that is not one is written %3A)")
    if rewrite:
        return RedirectRule(source, target, status)  # a decoded path: looked up, never sent (Rule 6)
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(map(str, STATUSES + REWRITES))}, got {status}")
    return RedirectRule(source, quote(target, safe=_URL_SAFE), status)


def _names(source: str) -> list[str]:
    """The placeholders of ``from`` (Rule 1); ``ValueError`` for a bad or repeated one."""
    names: list[str] = []
    for segment in source.split("/"):
        if segment[:1] != ":":
            continue
        name = segment[1:]
        if not _SEGMENT.fullmatch(name) or name == "splat":
            raise ValueError(f"'from' placeholder {segment!r}: expected ':' and a name of letters, digits "
                             "and '_' (not ':splat', which is what '*' matched)")
        if name in names:
            raise ValueError(f"'from' names the placeholder {segment!r} twice")
        names.append(name)
    return names


def _after_host(target: str) -> str:
    """``target`` from its path on (a URL's ``scheme://host:port`` holds no placeholder)."""
    if target.startswith(("http://", "https://")):
        at = target.find("/", target.find("//") + 2)
        return target[at:] if at >= 0 else ""
    return target


def _match(rule: RedirectRule, path: str) -> dict[str, str] | None:
    """What the placeholders and the ``*`` (as ``splat``) of ``rule`` matched in the
    decoded ``path``, or None when it does not match (Rule 1)."""
    prefix = rule.prefix
    if not rule.placeholders:
        if prefix is None:
            return {} if path == rule.source else None
        if path == prefix or path.startswith(prefix + "/"):
            return {"splat": path[len(prefix) + 1:]}
        return None
    want = (prefix if prefix is not None else rule.source).split("/")
    got = path.split("/", len(want)) if prefix is not None else path.split("/")
    if len(got) < len(want) or prefix is None and len(got) != len(want):
        return None
    found: dict[str, str] = {}
    for pattern, segment in zip(want, got):
        if pattern[:1] == ":":
            if not segment:
                return None
            found[pattern[1:]] = segment
        elif pattern != segment:
            return None
    if prefix is not None:
        found["splat"] = got[len(want)] if len(got) > len(want) else ""
    return found


def _fill(target: str, found: dict[str, str], encode) -> str:
    """``target`` with its ``:name``s replaced by what they matched (Rule 2)."""
    if not found or ":" not in target:
        return target
    head = target[:len(target) - len(_after_host(target))]
    return head + _NAME.sub(lambda m: encode(found[m[1]]) if m[1] in found else m[0], target[len(head):])


def matching(rules: tuple[RedirectRule, ...], path: str, rewrites: bool = False):
    """``(rule, what it matched)`` for each redirect (or, with ``rewrites``, each
    rewrite) rule that matches the decoded ``path``, in order (Rules 1, 3, 6, 7)."""
    if not path.isascii():
        path = normalize("NFC", path)
    for rule in rules:
        if rule.rewrite is rewrites:
            found = _match(rule, path)
            if found is not None:
                yield rule, found


def location_of(rule: RedirectRule, found: dict[str, str], query: str) -> str:
    """The Location a redirect ``rule`` sends, given what it matched (Rules 2, 4)."""
    target = _fill(rule.target, found, location)
    return target + query if query and "?" not in target else target


def rewritten(rule: RedirectRule, found: dict[str, str]) -> str:
    """The decoded path of the release a rewrite ``rule`` answers with (Rule 6)."""
    return _fill(rule.target, found, str)


def find_redirect(rules: tuple[RedirectRule, ...], path: str, query: str) -> tuple[int, str] | None:
    """(status, Location) of the first redirect rule matching the decoded ``path``
    (Rules 3, 4); rewrites are passed over."""
    for rule, found in matching(rules, path):
        return rule.status, location_of(rule, found, query)
    return None


def find_rewrites(rules: tuple[RedirectRule, ...], path: str) -> list[tuple[int, str]]:
    """(status, decoded path of the release) of every rewrite matching the decoded
    ``path``, in order (Rule 6); redirects are passed over."""
    return [(rule.status, rewritten(rule, found)) for rule, found in matching(rules, path, rewrites=True)]
