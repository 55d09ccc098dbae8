"""What a push leaves out of the directory it reads: hidden names and ``--exclude`` patterns.

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
4. ``LeaveOut(hidden, patterns).why(path, is_dir)`` is why a path is left out (``"hidden"``
   or the pattern as given) or None. ``check(patterns)`` raises ``ValueError`` naming
   a pattern that is empty or climbs (``..``). Pure: the walk asks, it reads the files.
"""

from __future__ import annotations

__all__ = ["HIDDEN", "WELL_KNOWN", "LeaveOut", "check", "is_hidden"]

WELL_KNOWN = ".well-known"
HIDDEN = "hidden"


def is_hidden(name: str) -> bool:
    """Rule 1, for one name (not a path)."""
    return name[:1] == "." and name != WELL_KNOWN


def check(patterns) -> list[str]:
    """Rule 4: the patterns, as a list; ``ValueError`` for one that cannot be used."""
    out = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip("/"):
            raise ValueError(f"--exclude {pattern!r}: an empty pattern would leave out everything")
        if ".." in pattern.split("/"):
            raise ValueError(f"--exclude {pattern!r}: a pattern cannot climb with '..'; "
                             "paths are matched inside the pushed directory")
        out.append(pattern)
    return out


class LeaveOut:
    """Rules 1-4: ``why(path, is_dir)`` for release paths written ``/a/b``."""

    __slots__ = ("hidden", "patterns", "_files", "_dirs")

    def __init__(self, hidden: bool = False, patterns=()) -> None:
        self.hidden = hidden
        self.patterns = check(patterns)
        files, dirs = [], []
        if self.patterns:
            from .globs import compile_glob  # `owncdn push` imports ``re`` only when patterns are given

            for pattern in self.patterns:
                body = pattern.rstrip("/")
                regex = compile_glob(body if body.startswith("/") else "/**/" + body)
                dirs.append((pattern, regex))
                if not pattern.endswith("/"):
                    files.append((pattern, regex))
        self._files, self._dirs = files, dirs

    def __repr__(self) -> str:
        return f"LeaveOut(hidden={self.hidden!r}, patterns={self.patterns!r})"

    @property
    def nothing(self) -> bool:
        """Whether nothing is ever left out (hidden names pushed, no pattern)."""
        return self.hidden and not self.patterns

    def why(self, path: str, is_dir: bool) -> str | None:
        """Rules 1-3: why ``path`` (``/a/b``) is left out, or None. Its parent
        directories were asked before (the walk does not enter one left out)."""
        if not self.hidden and is_hidden(path[path.rfind("/") + 1:]):
            return HIDDEN
        for pattern, regex in self._dirs if is_dir else self._files:
            if regex.fullmatch(path):
                return pattern
        return None
