"""What a push leaves out of the directory it reads: hidden names, ``--exclude`` patterns
and the patterns of the directory's ``.owncdnignore``.

Rules:
1. A hidden name (a file or directory whose name begins with ``.``: ``.git``, ``.env``,
   ``.DS_Store``, editors' swap files) is left out with everything under it, unless
   hidden names are asked for (``hidden``). ``.well-known`` (RFC 8615: ``security.txt``,
   app links, ACME) is never hidden. Netlify's CLI, Firebase Hosting and Cloudflare's
   asset uploads leave the same names out by default: a push of a project's root
   would otherwise publish its repository and its secrets on every edge.
2. An exclude pattern is a header rule's path pattern (``globs`` Rule 1) when it
   begins with ``/``: ``/drafts/**``, ``/*.psd``. One without a leading ``/`` matches
   at any depth, as if ``/**/`` came first (as in ``.gitignore``): ``*.map``,
   ``node_modules``, ``src/*.ts``. A trailing ``/`` makes it match directories only.
3. A pattern that matches a directory's path (``/drafts``) leaves the directory out
   with everything under it; one that matches a file's path leaves that file out.
   Paths are release paths with a leading ``/``, matched whole, case-sensitive.
4. ``LeaveOut(hidden, patterns, ignored).why(path, is_dir)`` is why a path is left out
   (``"hidden"``, an ``--exclude`` pattern as given, or ``".owncdnignore:LINE:PATTERN"``
   as ``git check-ignore -v`` names its sources) or None. ``check(patterns)`` raises
   ``ValueError`` naming a pattern that is empty or climbs (``..``). Pure: the walk
   asks, it reads the files.
5. ``.owncdnignore`` at the top of the pushed directory holds patterns that directory
   always leaves out, so that every push of it does without repeating ``--exclude``
   (as ``.vercelignore`` and ``.surgeignore`` do): one pattern a line, as Rule 2;
   blank lines and lines beginning with ``#`` are skipped, spaces around a pattern
   dropped. ``parse_ignore(text)`` gives ``(line, pattern)``; a line it cannot use is
   a ``ValueError`` naming it, and so is one beginning with ``!``: ``.gitignore``
   re-includes with it, which is not done here, and read as a name it would leave
   out something else than meant. The file itself is never pushed (``ignore_file``):
   it describes the push, not the site.
"""

from __future__ import annotations

__all__ = ["HIDDEN", "IGNORE_FILE", "WELL_KNOWN", "LeaveOut", "check", "is_hidden", "parse_ignore"]

WELL_KNOWN = ".well-known"
HIDDEN = "hidden"
IGNORE_FILE = ".owncdnignore"


def is_hidden(name: str) -> bool:
    """Rule 1, for one name (not a path)."""
    return name[:1] == "." and name != WELL_KNOWN


def _problem(pattern) -> str | None:
    """Why ``pattern`` cannot be used (Rule 4), or None."""
    if not isinstance(pattern, str) or not pattern.strip("/"):
        return "an empty pattern would leave out everything"
    if ".." in pattern.split("/"):
        return "a pattern cannot climb with '..'; paths are matched inside the pushed directory"
    return None


def check(patterns) -> list[str]:
    """Rule 4: the patterns, as a list; ``ValueError`` for one that cannot be used."""
    out = []
    for pattern in patterns:
        problem = _problem(pattern)
        if problem is not None:
            raise ValueError(f"--exclude {pattern!r}: {problem}")
        out.append(pattern)
    return out


def parse_ignore(text: str) -> list[tuple[int, str]]:
    """Rule 5: ``(line number, pattern)`` for each pattern of an ignore file's text."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        pattern = line.strip()
        if not pattern or pattern[0] == "#":
            continue
        where = f"{IGNORE_FILE}:{number}: {pattern!r}"
        if pattern[0] == "!":
            raise ValueError(f"{where}: '!' (putting back what an earlier line left out) is not supported; "
                             "write the patterns so that they match only what is to be left out")
        problem = _problem(pattern)
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
        out.append((number, pattern))
    return out


class LeaveOut:
    """Rules 1-5: ``why(path, is_dir)`` for release paths written ``/a/b``; ``ignored``
    is ``parse_ignore``'s answer, ``ignore_file`` whether the directory has that file."""

    __slots__ = ("hidden", "patterns", "ignored", "ignore_file", "_files", "_dirs")

    def __init__(self, hidden: bool = False, patterns=(), ignored=(), ignore_file: bool = False) -> None:
        self.hidden = hidden
        self.patterns = check(patterns)
        self.ignored = list(ignored)
        self.ignore_file = ignore_file or bool(self.ignored)
        files, dirs = [], []
        named = [(pattern, pattern) for pattern in self.patterns]
        named += [(f"{IGNORE_FILE}:{number}:{pattern}", pattern) for number, pattern in self.ignored]
        if named:
            from .globs import compile_glob  # `owncdn push` imports ``re`` only when patterns are given

            for why, pattern in named:
                body = pattern.rstrip("/")
                regex = compile_glob(body if body.startswith("/") else "/**/" + body)
                dirs.append((why, regex))
                if not pattern.endswith("/"):
                    files.append((why, regex))
        self._files, self._dirs = files, dirs

    def __repr__(self) -> str:
        return (f"LeaveOut(hidden={self.hidden!r}, patterns={self.patterns!r}, ignored={self.ignored!r}, "
                f"ignore_file={self.ignore_file!r})")

    @property
    def nothing(self) -> bool:
        """Whether nothing is ever left out (hidden names pushed, no pattern, no ignore file)."""
        return self.hidden and not self._dirs and not self.ignore_file

    @property
    def matching(self) -> bool:
        """Whether any pattern is to be matched: else only names beginning with "." are left out."""
        return bool(self._dirs)

    def why(self, path: str, is_dir: bool) -> str | None:
        """Rules 1-3 and 5: why ``path`` (``/a/b``) is left out, or None. Its parent
        directories were asked before (the walk does not enter one left out)."""
        if self.ignore_file and not is_dir and path == "/" + IGNORE_FILE:
            return IGNORE_FILE
        if not self.hidden and is_hidden(path[path.rfind("/") + 1:]):
            return HIDDEN
        for why, regex in self._dirs if is_dir else self._files:
            if regex.fullmatch(path):
                return why
        return None
