"""What a push leaves out of the directory it reads: hidden names, ``--exclude`` patterns
and the patterns of its ``.owncdnignore`` files.

Rules:
1. A hidden name (a file or directory whose name begins with ``.``: ``.git``, ``.env``,
   ``.DS_Store``, editors' swap files) is left out with everything under it, unless
   hidden names are asked for (``hidden``). ``.well-known`` (RFC 8615: ``security.txt``,
   app links, ACME) is never hidden. Netlify's CLI, Firebase Hosting and Cloudflare's
   asset uploads leave the same names out by default: a push of a project's root
   would otherwise publish its repository and its secrets on every edge.
2. A pattern is a header rule's path pattern (``globs`` Rule 1), relative to the
   directory of its ignore file (the pushed directory for ``--exclude``). As in
   ``.gitignore``, one with a ``/`` at its start or in its middle is anchored there:
   ``/drafts/**``, ``/*.psd``, ``src/*.ts`` (``/src/a.ts``, not ``/lib/src/a.ts``). Any
   other matches at any depth, as if ``/**/`` came first: ``*.map``, ``node_modules``;
   ``**/src/*.ts`` finds ``src/*.ts`` at any depth. A trailing ``/`` makes a pattern
   match directories only and does not anchor it (``build/``: any directory ``build``).
   ``**`` is special only as a whole segment (``a/**/b``, ``**/x``, ``x/**``); inside a
   name it is a plain ``*``, as in git (``a**b`` is ``a*b``: it stays within one name).
3. A pattern that matches a directory's path (``/drafts``) leaves the directory out
   with everything under it; one that matches a file's path leaves that file out.
   Paths are release paths with a leading ``/``, matched whole, case-sensitive.
4. ``LeaveOut(hidden, patterns).why(path, is_dir)`` is why a path is left out
   (``"hidden"``, an ``--exclude`` pattern as given, or ``"[DIR/].owncdnignore:LINE:PATTERN"``
   as ``git check-ignore -v`` names its sources) or None. ``check(patterns)`` raises
   ``ValueError`` naming a pattern that is empty or climbs (``..``). Pure: the walk
   asks, it reads the files.
5. A ``.owncdnignore`` file holds patterns its directory always leaves out, so that
   every push of it does without repeating ``--exclude`` (as ``.vercelignore`` and
   ``.surgeignore`` do): one pattern a line, as Rule 2; blank lines and lines
   beginning with ``#`` are skipped, spaces around a pattern dropped; ``\\#`` and
   ``\\!`` begin a pattern with that character. ``parse_ignore(text)`` gives
   ``(line, pattern)``; a line it cannot use is a ``ValueError`` naming it. Such a file
   is never pushed itself (the file describes the push, not the site), wherever it is.
6. As in ``.gitignore``, a file in a directory below the top (``docs/.owncdnignore``)
   applies below that directory: its patterns match paths relative to it (``/draft.md``
   there is ``/docs/draft.md``; ``*.map`` any map below ``/docs``). ``extended(where,
   ignored)`` is the ``LeaveOut`` of that directory.
7. A pattern beginning with ``!`` puts back what an earlier one left out. The last
   pattern that matches decides: the top file's in their order, then those of the
   files below it, deeper ones later, then ``--exclude`` (which no file can put back);
   with none matching, a hidden name is left out (Rule 1), so ``!.nojekyll`` pushes
   that hidden file. As with ``git``, nothing under a directory left out comes back:
   the walk does not go into it (``build/*`` with ``!build/keep.txt`` keeps one file of
   ``build``; ``build/`` with it keeps none).
8. Patterns and paths are compared in Unicode's composed form (NFC): a pattern typed
   as ``/café/**`` leaves out a directory whose name a Mac wrote decomposed. ASCII ones
   are not looked at twice (and ``unicodedata`` is imported only for others).
"""

from __future__ import annotations

__all__ = ["HIDDEN", "IGNORE_FILE", "WELL_KNOWN", "LeaveOut", "check", "from_ignore_file", "is_hidden",
           "parse_ignore"]

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
    """Rule 5: ``(line number, pattern)`` for each pattern of an ignore file's text, as
    written (a ``!`` kept, Rule 7)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        pattern = line.strip()
        if not pattern or pattern[0] == "#":
            continue
        back, body = _split(pattern)
        problem = "'!' puts back what the pattern after it matches, and none follows" if back and not body.strip("/") \
            else _problem(body)
        if problem is not None:
            raise ValueError(f"{IGNORE_FILE}:{number}: {pattern!r}: {problem}")
        out.append((number, pattern))
    return out


def _split(pattern: str) -> tuple[bool, str]:
    """Rules 5 and 7: whether an ignore file's pattern puts back, and what it matches."""
    if pattern[:1] == "!":
        return True, pattern[1:]
    if pattern[:2] in ("\\!", "\\#"):
        return False, pattern[1:]
    return False, pattern


def from_ignore_file(why: str) -> bool:
    """Whether ``why`` names an ignore file or one of its lines (Rule 4), not ``--exclude``."""
    at = why.find(IGNORE_FILE)
    return (at == 0 or (at > 0 and why[at - 1] == "/")) and why[at + len(IGNORE_FILE):][:1] in ("", ":")


class LeaveOut:
    """Rules 1-7: ``why(path, is_dir)`` for release paths written ``/a/b``."""

    __slots__ = ("hidden", "patterns", "ignored", "_files", "_dirs", "_tail_files", "_tail_dirs")

    def __init__(self, hidden: bool = False, patterns=(), ignored=()) -> None:
        self.hidden = hidden
        self.patterns = check(patterns)
        self.ignored: list[tuple[str, int, str]] = []  # (directory, line, pattern), in the order asked
        self._files: list[tuple[str, object, bool]] = []  # (why, regex, puts back), the files' patterns
        self._dirs: list[tuple[str, object, bool]] = []
        self._tail_files: list[tuple[str, object, bool]] = []  # --exclude's, asked last (Rule 7)
        self._tail_dirs: list[tuple[str, object, bool]] = []
        for pattern in self.patterns:
            _add(self._tail_files, self._tail_dirs, pattern, "", False, pattern)
        if ignored:
            self._read("", ignored)

    def extended(self, where: str, ignored) -> LeaveOut:
        """Rule 6: the ``LeaveOut`` below the directory ``where`` (``docs/``, "" for the
        top), whose ignore file holds ``ignored`` (``parse_ignore``'s answer)."""
        out = LeaveOut.__new__(LeaveOut)
        out.hidden, out.patterns, out.ignored = self.hidden, self.patterns, list(self.ignored)
        out._files, out._dirs = list(self._files), list(self._dirs)
        out._tail_files, out._tail_dirs = self._tail_files, self._tail_dirs
        out._read(where, ignored)
        return out

    def _read(self, where: str, ignored) -> None:
        base = "/" + where.rstrip("/") if where else ""
        for number, pattern in ignored:
            back, body = _split(pattern)
            self.ignored.append((where, number, pattern))
            _add(self._files, self._dirs, body, base, back, f"{where}{IGNORE_FILE}:{number}:{pattern}")

    def __repr__(self) -> str:
        return f"LeaveOut(hidden={self.hidden!r}, patterns={self.patterns!r}, ignored={self.ignored!r})"

    @property
    def nothing(self) -> bool:
        """Whether nothing is left out (hidden names pushed, no pattern): the walk then
        only looks for ignore files."""
        return self.hidden and not self._dirs and not self._tail_dirs

    @property
    def matching(self) -> bool:
        """Whether any pattern is to be matched: else only names beginning with "." are left out."""
        return bool(self._dirs or self._tail_dirs)

    def why(self, path: str, is_dir: bool) -> str | None:
        """Rules 1-7: why ``path`` (``/a/b``) is left out, or None. Its parent
        directories were asked before (the walk does not enter one left out)."""
        name = path[path.rfind("/") + 1:]
        if name == IGNORE_FILE and not is_dir:
            return IGNORE_FILE
        if not path.isascii():  # Rule 8
            path = _composed(path)
        for rules in (self._tail_dirs, self._dirs) if is_dir else (self._tail_files, self._files):
            for why, regex, back in reversed(rules):
                if regex.fullmatch(path):
                    return None if back else why
        if not self.hidden and is_hidden(name):
            return HIDDEN
        return None


def _composed(text: str) -> str:
    """Rule 8."""
    from unicodedata import normalize

    return normalize("NFC", text)


def _plain_stars(segment: str) -> str:
    """Rule 2: a segment other than ``**`` with ``*`` in a row, as one ``*``."""
    if segment == "**" or "**" not in segment:
        return segment
    while "**" in segment:
        segment = segment.replace("**", "*")
    return segment


def _add(files: list, dirs: list, body: str, base: str, back: bool, why: str) -> None:
    """Rule 2 for one pattern of a directory (``base``, "" for the top): its regex added to
    those asked about directories and, unless it ends in "/", about files. A "/" left after
    the trailing ones are stripped anchors the pattern to ``base``."""
    from .globs import compile_glob  # `owncdn push` imports ``re`` only when patterns are given

    stem = "/".join(_plain_stars(segment) for segment in body.rstrip("/").split("/"))
    full = base + stem if stem.startswith("/") else base + ("/" if "/" in stem else "/**/") + stem
    regex = compile_glob(full if full.isascii() else _composed(full))  # Rule 8: the directory's name too
    dirs.append((why, regex, back))
    if not body.endswith("/"):
        files.append((why, regex, back))
