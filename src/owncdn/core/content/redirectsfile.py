"""A ``_redirects`` file at the top of a pushed site: redirect rules that travel with its files.

Netlify and Cloudflare Pages read this file from the site's build output, so many sites
have one; pushed to owncdn, its rules apply too, with the release that holds it (a
rollback brings back the rules of that release as well as its files).

    /old-page        /new-page              301
    /blog/*          /posts/:splat
    /news/:year/:id  /archive/:year/:id     308
    /app/*           /app/index.html        200

Rules:
1. One rule a line: ``from``, ``to`` and an optional status, separated by spaces or
   tabs; blank lines and lines beginning with ``#`` are skipped. The status defaults to
   302, as on Cloudflare Pages, whose redirects, like these, apply whether or not a file
   of the release matches (Netlify defaults to 301 but skips a rule whose path is a
   file unless it is forced with ``!``; a 302 is not kept for good by browsers, so a
   mistaken rule is not either). A ``!`` after the status is accepted and changes
   nothing.
2. Each rule is checked as a ``site.redirects`` rule of ``cdn.yaml`` is
   (``redirects.redirect_rule``: splats, ``:name`` placeholders, 200 and 404 rewrites).
   What Netlify's format has beyond that (conditions such as ``id=:id``,
   ``Country=``, ``Role=``; a rewrite to another site's URL, which would be a proxy) is
   refused, naming the line: a rule that silently did less than written would send
   visitors to the wrong place.
3. ``parse_redirects_file(text)`` raises ``ValueError`` listing every bad line (at most
   ``MAX_PROBLEMS``) as ``_redirects:LINE: problem``; `owncdn push` refuses a site whose
   file it cannot read so, before anything is uploaded. ``redirects_file_rules(text)``
   (the edge) keeps the good lines and returns the problems beside them.
4. At most ``MAX_RULES`` rules and ``MAX_BYTES`` bytes (UTF-8).
5. The rules of the file come before those of ``cdn.yaml`` (``site`` Rule 1), as
   Netlify tries its ``_redirects`` file before its ``netlify.toml``. The file itself
   is not served (``FILE`` answers 404), as on both of them.
6. ``redirects`` (with ``re`` and ``dataclasses``) is imported when a file is read:
   `owncdn push` looks for ``FILE`` in every push and starts without them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing (Rule 6)
if TYPE_CHECKING:
    from .redirects import RedirectRule

__all__ = ["FILE", "MAX_BYTES", "MAX_PROBLEMS", "MAX_RULES", "parse_redirects_file", "redirects_file_rules", "refuse"]

FILE = "_redirects"
MAX_RULES = 2000
MAX_BYTES = 256 << 10
MAX_PROBLEMS = 20


def parse_redirects_file(text: str) -> list[RedirectRule]:
    """Rule 3: every rule, or ``ValueError`` naming every bad line."""
    rules, problems = redirects_file_rules(text)
    refuse(problems)
    return rules


def refuse(problems: list[str]) -> None:
    """Rule 3 (and ``headersfile``'s): ``ValueError`` listing the first ``MAX_PROBLEMS`` problems, if any."""
    if problems:
        more = f"\n(and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else ""
        raise ValueError("\n".join(problems[:MAX_PROBLEMS]) + more)


def redirects_file_rules(text: str) -> tuple[list[RedirectRule], list[str]]:
    """Rules 1-4: the rules of the good lines, and a problem for each bad one."""
    rules: list[RedirectRule] = []
    problems: list[str] = []
    if len(text.encode()) > MAX_BYTES:
        return [], [f"{FILE}: larger than {MAX_BYTES // 1024} KiB"]
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):  # a BOM (Windows' editors) is no text
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        try:
            rules.append(_rule(words))
        except ValueError as exc:
            problems.append(f"{FILE}:{number}: {exc}")
            continue
        if len(rules) > MAX_RULES:
            problems.append(f"{FILE}:{number}: more than {MAX_RULES} rules")
            rules.pop()
            break
    return rules, problems


def _rule(words: list[str]) -> RedirectRule:
    """Rules 1 and 2, for the words of one line."""
    from .redirects import redirect_rule  # Rule 6

    conditions = [w for w in words if "=" in w and not w.startswith("/") and "://" not in w]
    if conditions:
        raise ValueError(f"conditions such as {conditions[0]!r} (query parameters, Country=, Language=, "
                         "Role=) are not supported; write one rule per path")
    if len(words) < 2:
        raise ValueError(f"expected '<from> <to> [status]', got {' '.join(words)!r}")
    source, target, *rest = words
    if len(rest) > 1:
        raise ValueError(f"expected '<from> <to> [status]', got {len(words)} words")
    status = 302
    if rest:
        code = rest[0].removesuffix("!")
        if not (code.isdigit() and len(code) == 3):
            raise ValueError(f"expected a status such as 301, 302 or 200 after 'to', got {rest[0]!r}")
        status = int(code)
    return redirect_rule(source, target, status)
