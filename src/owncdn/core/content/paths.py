"""From a request target to a file of a release: decoding and pretty URLs.

Rules:
1. The target's path is percent-decoded as UTF-8 and its dot segments are removed
   (RFC 3986 §5.2.4). A path that does not decode, holds a control character or a
   backslash, or whose ``..`` segments climb above the root is refused (``BAD``).
   Files are looked up by their manifest path, never on a file system, so no request
   can name anything outside the release.
2. Without pretty URLs: ``/x`` serves file ``x``; ``/d/`` serves ``d/<index>``;
   ``/d`` redirects to ``/d/`` when ``d/<index>`` exists.
3. With pretty URLs (the default) each page has one canonical URL, and the other
   spellings redirect to it with 308, as Cloudflare Pages does:
   file ``about.html`` is ``/about``; file ``about/index.html`` is ``/about/``.
   - ``/about``: file ``about`` if there is one; else ``about.html`` (served);
     else ``about/index.html`` (redirect to ``/about/``).
   - ``/about/``: ``about/index.html`` (served); else ``about.html`` (redirect to
     ``/about``).
   - ``/about.html``: redirect to ``/about`` when ``/about`` serves ``about.html``;
     otherwise served as it is.
   - ``/about/index.html``: redirect to ``/about/``.
4. A redirect keeps the query string, and its target always serves a file: there
   are no chains and no loops.
5. Nothing found is ``NOT_FOUND``.
6. A path with characters beyond ASCII that finds nothing as it is written is looked
   for again in Unicode's other normal forms, composed (NFC) then decomposed (NFD),
   each whole: macOS hands file names out decomposed (``cafe\u0301.html``: what git's
   ``core.precomposeunicode`` is for), while a link typed on a keyboard and the URL a
   browser sends for it are composed (``caf\u00e9.html``), so a site pushed from a Mac
   would otherwise answer 404 to its own links. A file whose name matches as written
   always comes first.
7. ``file_for`` is the file a path of the release names in any of its spellings,
   without redirects (a rewrite's target, ``redirects`` Rule 6): ``/x`` is file ``x``,
   then with pretty URLs ``x.html``, then ``x/<index>``; ``/d/`` and ``/`` are
   ``d/<index>`` and ``<index>``, then with pretty URLs ``d.html``. None when the
   release has none of them.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from unicodedata import normalize
from urllib.parse import quote, unquote

__all__ = ["BAD", "NOT_FOUND", "PRETTY_STATUS", "Redirect", "Serve", "decode_target", "file_for", "location", "resolve"]

PRETTY_STATUS = 308
_SAFE = "/!$&'()*+,;=:@-._~"


@dataclass(frozen=True, slots=True)
class Serve:
    file: str
    """The manifest path of the file that answers."""


@dataclass(frozen=True, slots=True)
class Redirect:
    location: str
    status: int = PRETTY_STATUS


class _Outcome:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


BAD = _Outcome("BAD")
NOT_FOUND = _Outcome("NOT_FOUND")


def decode_target(target: str) -> tuple[str, str] | None:
    """(decoded path starting with "/", query with its "?" or "") or None (Rule 1)."""
    raw, mark, query = target.partition("?")
    raw = raw.partition("#")[0]
    if not raw.startswith("/"):
        return None
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\\" in path or not path.isprintable() and any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return None  # (a printable path holds no control character: checked at C speed first)
    if "/." in path:  # else no segment is "." or "..": nothing to remove
        path = _remove_dots(path)
    return (path, mark + query) if path is not None else None


def _remove_dots(path: str) -> str | None:
    """RFC 3986 §5.2.4 for an absolute path; None when ``..`` climbs above the root."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if not out or out == [""]:
                return None
            out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def location(path: str, query: str = "") -> str:
    """A decoded path (and query) as a Location value: percent-encoded where needed."""
    return quote(path, safe=_SAFE) + query


def resolve(path: str, query: str, files: Container[str], *, pretty: bool = True,
            index: str = "index.html") -> Serve | Redirect | _Outcome:
    """The file for a decoded path, a redirect to its canonical form, or NOT_FOUND."""
    found = _resolve(path, query, files, pretty, index)
    if found is NOT_FOUND and not path.isascii():  # Rule 6
        for form in ("NFC", "NFD"):
            other = normalize(form, path)
            if other != path:
                found = _resolve(other, query, files, pretty, index)
                if found is not NOT_FOUND:
                    break
    return found


def file_for(path: str, files: Container[str], *, pretty: bool = True, index: str = "index.html") -> str | None:
    """Rule 7."""
    name = path[1:]
    if name == "" or name.endswith("/"):
        spellings = (name + index, name[:-1] + ".html") if pretty and name else (name + index,)
    else:
        spellings = (name, name + ".html", f"{name}/{index}") if pretty else (name, f"{name}/{index}")
    return next((s for s in spellings if s in files), None)


def _resolve(path: str, query: str, files: Container[str], pretty: bool, index: str) -> Serve | Redirect | _Outcome:
    """Rules 2-5 for ``path`` as it is written."""
    name = path[1:]
    if "//" in path:
        return NOT_FOUND  # an empty segment names no file of a release
    if name == "" or name.endswith("/"):
        if name + index in files:
            return Serve(name + index)
        if pretty and name and name[:-1] + ".html" in files:
            return Redirect(location("/" + name[:-1], query))
        return NOT_FOUND
    if pretty:
        return _pretty(name, query, files, index)
    if name in files:
        return Serve(name)
    if f"{name}/{index}" in files:
        return Redirect(location(f"/{name}/", query))
    return NOT_FOUND


def _pretty(name: str, query: str, files: Container[str], index: str) -> Serve | Redirect | _Outcome:
    base, slash, leaf = name.rpartition("/")
    if leaf == index and name in files:
        return Redirect(location("/" + base + slash, query))
    if name.endswith(".html") and name in files:
        stem = name[:-5]
        if stem and not stem.endswith("/") and stem not in files:
            return Redirect(location("/" + stem, query))
        return Serve(name)
    if name in files:
        return Serve(name)
    if name + ".html" in files:
        return Serve(name + ".html")
    if f"{name}/{index}" in files:
        return Redirect(location(f"/{name}/", query))
    return NOT_FOUND
