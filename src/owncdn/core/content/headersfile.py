"""A ``_headers`` file at the top of a pushed site: header rules that travel with its files.

Netlify's and Cloudflare Pages' format: a path pattern on a line of its own, then the
fields for it, each on an indented line below.

    /*
      X-Frame-Options: DENY
    /assets/*
      Cache-Control: public, max-age=31536000, immutable
    /embed/:id
      ! X-Frame-Options

Rules:
1. A line that begins without a space or tab is a pattern: an absolute path, where
   ``*`` matches any run of characters, ``/`` included (``/assets/*``: everything below
   ``/assets/``; ``/*.js``: every script), and a segment ``:name`` one segment that is
   not empty; everything else matches itself, against the whole decoded request path.
   Blank lines and lines beginning with ``#`` are skipped.
2. An indented line below a pattern is ``Name: value`` (the field set on the responses
   for matching paths; a name given twice in one block is sent once, its values joined
   with ", ", as both do) or ``! Name`` (Cloudflare's: the field taken off, as an
   earlier rule or the edge set it). Names are tokens and values hold no CR, LF or NUL
   (``fieldnames``); the fields the edge derives from the file (``SITE_MANAGED``:
   Content-Length, ETag, Content-Encoding ...) cannot be set or taken off. Netlify's
   ``Basic-Auth: user:password`` (its password protection) is refused: here it would be
   an ordinary field, and every visitor would be sent the password.
3. ``parse_headers_file(text)`` raises ``ValueError`` listing every bad line (at most
   ``redirectsfile.MAX_PROBLEMS``) as ``_headers:LINE: problem``; `owncdn push` refuses the site then.
   ``headers_file_rules(text)`` (the edge) keeps the good lines and returns the problems.
   A pattern with no field is no rule. At most ``MAX_RULES`` rules and ``MAX_BYTES`` bytes.
4. The file's rules apply after those of ``cdn.yaml`` (``site`` Rule 3), so for the same
   field the file's wins, as the rules of ``_redirects`` come first. The file itself is
   not served (``FILE`` answers 404).
5. ``re`` is imported when a file is read (`owncdn push` looks for ``FILE`` in every push).
"""

from __future__ import annotations

from .redirectsfile import refuse

__all__ = ["FILE", "MAX_BYTES", "MAX_RULES", "headers_file_rules", "parse_headers_file"]

FILE = "_headers"
MAX_RULES = 2000
MAX_BYTES = 256 << 10

TYPE_CHECKING = False  # not from typing (Rule 5)
if TYPE_CHECKING:
    from .globs import HeaderRule


def parse_headers_file(text: str) -> list[HeaderRule]:
    """Rule 3: every rule, or ``ValueError`` naming every bad line."""
    rules, problems = headers_file_rules(text)
    refuse(problems)
    return rules


def headers_file_rules(text: str) -> tuple[list[HeaderRule], list[str]]:
    """Rules 1-3: the rules of the good lines, and a problem for each bad one."""
    if len(text.encode()) > MAX_BYTES:
        return [], [f"{FILE}: larger than {MAX_BYTES // 1024} KiB"]
    blocks: list[tuple[str, dict[str, str | None]]] = []
    problems: list[str] = []
    block: dict[str, str | None] | None = None
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):  # a BOM (Windows' editors) is no text
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            if line[0] not in " \t":
                pattern = _pattern(stripped)
                block = {}
                blocks.append((pattern, block))
            elif block is None:
                raise ValueError("a field comes before any path pattern")
            else:
                _field(stripped, block)
        except ValueError as exc:
            problems.append(f"{FILE}:{number}: {exc}")
            if line[0] not in " \t":
                block = {}  # the fields below a bad pattern go nowhere, unremarked
    rules = [_rule(pattern, fields) for pattern, fields in blocks if fields]
    if len(rules) > MAX_RULES:
        problems.append(f"{FILE}: more than {MAX_RULES} rules")
        rules = rules[:MAX_RULES]
    return rules, problems


def _pattern(pattern: str) -> str:
    if not pattern.startswith("/"):
        raise ValueError(f"expected a path pattern starting with '/' (a full URL is not one), got {pattern[:80]!r}")
    if any(c in pattern for c in " \t?#"):
        raise ValueError(f"a path pattern has no space, query or fragment, got {pattern[:80]!r}")
    return pattern


def _field(line: str, block: dict[str, str | None]) -> None:
    """Rule 2, for one indented line."""
    from owncdn.core.fieldnames import SITE_MANAGED, check_header_name, check_header_value  # Rule 5

    if line.startswith("!"):
        name, value = line[1:].strip(), None
    else:
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"expected 'Name: value' or '! Name', got {line[:80]!r}")
        name, value = name.strip(), check_header_value(value.strip())
    check_header_name(name)
    key = name.lower()
    if key == "basic-auth":
        raise ValueError("'Basic-Auth' (Netlify's password protection) is not supported: sent as a field, it would "
                         "show every visitor the password; remove the line")
    if key in SITE_MANAGED:
        raise ValueError(f"{name!r} is derived from the file by the edge and cannot be set or taken off")
    old = block.get(key)
    block[key] = f"{old}, {value}" if old is not None and value is not None else value


def _rule(pattern: str, fields: dict[str, str | None]) -> HeaderRule:
    """Rule 1: the pattern as a regular expression, matched by RE2 (``globs`` Rule 4)."""
    import re

    from .globs import HeaderRule, linear

    parts = []
    for segment in pattern.split("/"):
        if segment[:1] == ":" and len(segment) > 1:
            parts.append("[^/]+")
        else:
            parts.append(".*".join(re.escape(piece) for piece in segment.split("*")))
    return HeaderRule(pattern, tuple(fields.items()), linear("/".join(parts)))
