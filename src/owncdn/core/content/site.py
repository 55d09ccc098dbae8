"""What a pushed site answers for a request: a file, a redirect, or a plain error.

The edge (``owncdn.edge.static``) turns the answer into bytes on the wire, with the
conditional-request and range rules of ``owncdn.core.http``.

Rules:
1. In order: decode the target (``paths``; a bad one is 400), the redirect rules
   (``redirects``; those of the release's ``_redirects`` file first, ``with_file_rules``
   and ``redirectsfile``), the release's files (but not that file itself, nor its
   ``_headers`` file) with pretty URLs (``paths.resolve``), the
   rewrite rules (``redirects`` Rule 6: the first whose target is a file of the
   release, ``paths.file_for``, answers with it and the rule's status), then the
   not-found page with status 404 if the release has it, else a plain 404. A
   ``not_found`` that is a file name alone (``404.html``, the default) is looked for
   from the path's own directory up to the top, as Cloudflare Pages does: a miss
   under ``/docs/`` gets ``docs/404.html`` when there is one; one with a directory
   (``errors/404.html``) is that file only.
2. A file with precompressed siblings (``app.js.br``, ``app.js.gz``) is sent in the
   coding Accept-Encoding prefers (``negotiate``); every response for such a file says
   ``Vary: Accept-Encoding``, and a sibling goes out with ``Content-Encoding``. The
   Content-Type is the one of the file asked for, not of its sibling. A file without
   siblings that ``compress`` compresses (text, when ``SiteRules.compress``) is sent the
   same way in the edge's own ``br`` or ``gzip`` form (``FileAnswer.compress`` names
   the coding; ``compressed(answer, coding, size)`` is that form's answer, made once the
   edge has the bytes: ``edge/variants.py``), also with ``Vary: Accept-Encoding``.
   That form's ETag is weak (``W/`` and the file's tag, as nginx's gzip makes it): its
   bytes depend on the compressor's version, which may differ from edge to edge, and
   a weak tag promises only the same content.
3. Fields: Content-Type, ETag (strong: the first 32 hex digits of the blob name of the
   bytes sent, so each representation has its own), Last-Modified (the release's
   time), Cache-Control (``DEFAULT_CACHE_CONTROL``: browsers keep a copy and revalidate
   it, which an ETag turns into a 304), Accept-Ranges; then the header rules for the
   request path (``globs``), which replace fields of the same name (those of the
   release's ``_headers`` file after those of ``cdn.yaml``, ``headersfile``; a field
   it takes off goes): the path asked for, also when a rewrite or the not-found page
   answers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from owncdn.core.http.headers import format_http_date

from .globs import HeaderRule, header_rule, headers_for
from .mediatypes import content_type
from .compress import CODINGS as MADE, compressible
from .negotiate import CODINGS, IDENTITY, choose_coding, sibling
from .paths import BAD, Redirect, Serve, decode_target, file_for, resolve
from .redirects import RedirectRule, location_of, matching, redirect_rule, rewritten
from .headersfile import FILE as HEADERS_FILE
from .redirectsfile import FILE as REDIRECTS_FILE

__all__ = ["DEFAULT_CACHE_CONTROL", "FileAnswer", "PlainAnswer", "RedirectAnswer", "SiteRules", "answer", "compressed",
           "etag", "siblings", "site_rules", "with_file_rules"]

DEFAULT_CACHE_CONTROL = "public, max-age=0, must-revalidate"


class Entry(Protocol):
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class SiteRules:
    """A push service's ``site`` settings, compiled."""

    pretty_urls: bool = True
    index: str = "index.html"
    not_found: str | None = "404.html"
    redirects: tuple[RedirectRule, ...] = ()  # with the rewrites among them, in the order written
    headers: tuple[HeaderRule, ...] = ()
    compress: bool = True  # Rule 2: text files without siblings sent in the edge's compressed forms


@dataclass(frozen=True, slots=True)
class FileAnswer:
    status: int  # 200, or 404 for the not-found page
    file: str  # manifest path of the bytes to send
    sha256: str
    size: int
    fields: tuple[tuple[str, str], ...]  # lowercase names, without Content-Length and Date
    compress: str | None = None  # Rule 2: the coding of the edge's form to send instead, when it has it
    rule: RedirectRule | None = None  # the rewrite that answered (Rule 1), for `owncdn explain`


@dataclass(frozen=True, slots=True)
class RedirectAnswer:
    status: int
    location: str
    rule: RedirectRule | None = None  # the redirect rule; None: a pretty URL's other spelling


@dataclass(frozen=True, slots=True)
class PlainAnswer:
    status: int  # 400 or 404
    reason: str


def site_rules(settings) -> SiteRules:
    """Compile a service's ``site`` settings (``owncdn.core.config.site.SiteSettings``)."""
    return SiteRules(
        pretty_urls=settings.pretty_urls,
        index=settings.index,
        not_found=settings.not_found,
        redirects=tuple(redirect_rule(r.from_, r.to, r.status) for r in settings.redirects),
        headers=tuple(header_rule(h.path, {str(k): _reveal(v) for k, v in h.set.items()}) for h in settings.headers),
        compress=settings.compress,
    )


_UNSERVED = frozenset({REDIRECTS_FILE, HEADERS_FILE})  # Rule 1: a release's files of rules


def with_file_rules(rules: SiteRules, redirects=(), headers=()) -> SiteRules:
    """``rules`` with the rules of a release's ``_redirects`` file before its own and
    those of its ``_headers`` file after them (Rules 1, 3)."""
    if not redirects and not headers:
        return rules
    return replace(rules, redirects=(*redirects, *rules.redirects), headers=(*rules.headers, *headers))


def _reveal(value) -> str:
    get = getattr(value, "get_secret_value", None)
    return get() if get is not None else str(value)


def etag(sha256: str) -> str:
    return f'"{sha256[:32]}"'


def answer(rules: SiteRules, files: Mapping[str, Entry], target: str, accept_encoding: str | None,
           released_at: float) -> FileAnswer | RedirectAnswer | PlainAnswer:
    """Rule 1."""
    decoded = decode_target(target)
    if decoded is None:
        return PlainAnswer(400, "the request path is not a valid path")
    path, query = decoded
    if rules.redirects:
        for rule, matched in matching(rules.redirects, path):
            return RedirectAnswer(rule.status, location_of(rule, matched, query), rule)
    found = resolve(path, query, files, pretty=rules.pretty_urls, index=rules.index)
    if type(found) is Redirect:
        return RedirectAnswer(found.status, found.location)
    if type(found) is Serve and found.file not in _UNSERVED:
        return _file(rules, files, found.file, 200, path, accept_encoding, released_at)
    if found is BAD:  # pragma: no cover - resolve never answers BAD for a decoded path
        return PlainAnswer(400, "the request path is not a valid path")
    if rules.redirects:
        for rule, matched in matching(rules.redirects, path, rewrites=True):
            file = file_for(rewritten(rule, matched), files, pretty=rules.pretty_urls, index=rules.index)
            if file is not None and file not in _UNSERVED:
                return _file(rules, files, file, rule.status, path, accept_encoding, released_at, rule)
    page = _not_found_page(rules.not_found, path, files)
    if page is not None:
        return _file(rules, files, page, 404, path, accept_encoding, released_at)
    return PlainAnswer(404, f"{path} is not part of this site's current release")


def _not_found_page(name: str | None, path: str, files: Mapping[str, Entry]) -> str | None:
    """Rule 1: the not-found page for ``path``, the nearest one for a bare file name."""
    if name is None or "/" in name:
        return name if name is not None and name in files else None
    directory = path[1:path.rfind("/") + 1]  # "docs/guide/" for /docs/guide/x
    while directory:
        if directory + name in files:
            return directory + name
        directory = directory[:directory.rstrip("/").rfind("/") + 1]
    return name if name in files else None


def siblings(files: Mapping[str, Entry], name: str) -> list[str]:
    """Rule 2: the codings of the precompressed siblings of file ``name`` (``app.js.br``)."""
    return [coding for coding, suffix in CODINGS.items() if name + suffix in files]


def _file(rules: SiteRules, files: Mapping[str, Entry], name: str, status: int, path: str,
          accept_encoding: str | None, released_at: float, rule: RedirectRule | None = None) -> FileAnswer:
    """Rules 2 and 3."""
    present = siblings(files, name)
    coding = choose_coding(accept_encoding, present) if present else IDENTITY
    sent = sibling(name, coding)
    entry = files[sent]
    made = not present and rules.compress and compressible(name, entry.size)
    fields = {
        "content-type": content_type(name),
        "etag": etag(entry.sha256),
        "last-modified": format_http_date(released_at),
        "cache-control": DEFAULT_CACHE_CONTROL,
        "accept-ranges": "bytes",
    }
    if present or made:
        fields["vary"] = "Accept-Encoding"
    if coding != IDENTITY:
        fields["content-encoding"] = coding
    if rules.headers:
        for name, value in headers_for(rules.headers, path).items():
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
    compress = None
    if made:
        compress = choose_coding(accept_encoding, MADE)
        compress = None if compress == IDENTITY else compress
    return FileAnswer(status, sent, entry.sha256, entry.size, tuple(fields.items()), compress, rule)


def compressed(ans: FileAnswer, coding: str, size: int) -> FileAnswer:
    """Rule 2: the answer that sends the edge's ``coding`` form (``size`` bytes) of ``ans``'s file."""
    fields = dict(ans.fields)
    fields["etag"] = "W/" + etag(ans.sha256)
    fields["content-encoding"] = coding
    return FileAnswer(ans.status, ans.file, ans.sha256, size, tuple(fields.items()))
