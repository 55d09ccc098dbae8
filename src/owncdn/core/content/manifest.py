"""Release manifests: which file of a pushed site has which content.

A manifest is ``{"files": {"<path>": {"blob": "<name>", "size": <int>}}}``: every file
of a release by its relative path, with the name of its blob in the content-addressed
store (a digest of its bytes, ``digest.py``) and its size. An entry whose blob has a
SHA-256 name (pushed before BLAKE3) is ``{"sha256": "<hex>", "size": <int>}``, as it
was then, so manifests stored before BLAKE3 keep their encoding and their ids.

Rules:
1. A path is relative and POSIX: segments joined by ``/``, none empty, none ``.`` or
   ``..``, no backslash, no NUL or other control character, no leading ``/``, at most
   ``MAX_PATH`` bytes in UTF-8. A path that could step outside the release directory
   is refused, never normalised.
2. An entry has a size, an integer >= 0, and one blob name (``digest.py`` rule 1):
   under ``blob`` a BLAKE3 one (64 lowercase hex digits and ``-b3``), under ``sha256``
   a SHA-256 one (64 lowercase hex digits). The field follows from the name, so an
   entry has one encoding (Rule 4); one manifest may hold both kinds.
3. No path is both a file and a directory (``a`` and ``a/b`` cannot both be files).
4. The canonical encoding is compact JSON with sorted keys, UTF-8; the manifest id is
   the SHA-256 of it. Two manifests with the same files have the same id, whatever
   order they were built in.
5. ``parse_manifest`` checks everything and raises ``ManifestError`` listing every
   problem (up to ``MAX_PROBLEMS``); a ``Manifest`` is valid once built. Given a
   ``known`` manifest (valid: the release before), an entry it holds unchanged (same
   path, hash and size) is taken from it without checking it again, and Rule 3 is
   checked only when the paths differ from its paths: a push that changed one file
   of 1,065 checks one entry (about 0.5 ms instead of 1.9 ms here).
6. ``canonical`` encodes with orjson (``OPT_SORT_KEYS``) when the process has imported
   it already (the control plane and the edges: 0.05 ms instead of 0.8 ms for 1,065
   files), else by joining one string per entry, its path and name escaped by
   ``_json.encode_basestring`` (the C function ``json.dumps(ensure_ascii=False)``
   escapes strings with), else with the standard ``json``: `owncdn push` imports
   neither orjson (about 10 ms of start-up) nor ``json`` (with ``re``, about 5 ms).
   All give the same bytes for every valid manifest: keys sort by code point
   (UTF-8 keeps that order), non-ASCII is written as UTF-8, and Rules 1-2 leave
   ``"`` as the only character any of them escapes (``\\"``); a size beyond 64 bits,
   which orjson refuses, is encoded by the others. It is made once per manifest (a
   manifest does not change once built): ``changes.py`` edits the encoding of the
   release before instead of encoding a large manifest again.
7. No ``re`` and no ``hashlib`` at import (`owncdn push` starts without them): paths
   are checked with string methods, and ids hashed by ``digest.sha256_hex``.
"""

from __future__ import annotations

import sys

from .digest import algorithm as digest_algorithm
from .digest import all_blake3_names, sha256_hex

try:
    from _json import encode_basestring as _quote  # Rule 6: json.dumps's own escaping, without json
except ImportError:  # pragma: no cover - CPython has it
    _quote = None

TYPE_CHECKING = False  # not from typing: `owncdn push` starts without importing it
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = [
    "MAX_PATH", "FileEntry", "Manifest", "ManifestError", "check_path", "entry_text", "parse_manifest",
]

MAX_PATH = 1024
MAX_PROBLEMS = 20


class ManifestError(ValueError):
    """A manifest that is not valid; ``problems`` names each thing wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"invalid manifest: {problems[0]}{more}")


class FileEntry:
    """One file of a manifest: its blob and size (a value; treated as immutable). A
    plain class, not a dataclass: `owncdn push` starts faster without importing
    ``dataclasses`` (and ``inspect`` with it)."""

    __slots__ = ("sha256", "size")

    def __init__(self, sha256: str, size: int) -> None:
        self.sha256 = sha256
        self.size = size

    def __repr__(self) -> str:
        return f"FileEntry(sha256={self.sha256!r}, size={self.size!r})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not FileEntry:
            return NotImplemented
        return self.sha256 == other.sha256 and self.size == other.size

    def __hash__(self) -> int:
        return hash((self.sha256, self.size))


def check_path(path: object) -> str | None:
    """Why ``path`` is not a valid release path (Rule 1), or None if it is."""
    if (isinstance(path, str) and path.isprintable() and "\\" not in path  # no control character (Rule 7)
            and (len(path) * 4 <= MAX_PATH or len(path.encode("utf-8", "surrogatepass")) <= MAX_PATH)):
        padded = f"/{path}/"  # the common case, valid: empty, leading and trailing segments make "//"
        if "//" not in padded and "/./" not in padded and "/../" not in padded:
            return None
    return _why_not(path)  # the reason, or None for a valid path with a character isprintable refuses


def _why_not(path: object) -> str | None:
    if not isinstance(path, str):
        return f"{path!r}: a path must be a string"
    if not path:
        return "'': a path must not be empty"
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        return f"{path[:40]!r}...: longer than {MAX_PATH} bytes"
    if "\\" in path:
        return f"{path!r}: backslashes are not allowed (use '/')"
    if any(c < " " or c == "\x7f" for c in path):
        return f"{path!r}: control characters are not allowed"
    if path.startswith("/"):
        return f"{path!r}: must be relative (no leading '/')"
    for segment in path.split("/"):
        if segment == "":
            return f"{path!r}: empty segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"{path!r}: '{segment}' segments are not allowed"
    return None


class Manifest:
    """The files of one release (Rule 5: valid once built)."""

    __slots__ = ("files", "_id", "_blobs", "_text")

    def __init__(self, files: Mapping[str, FileEntry]) -> None:
        self.files: dict[str, FileEntry] = dict(sorted(files.items()))
        self._id: str | None = None
        self._blobs: dict[str, int] | None = None
        self._text: bytes | None = None  # the canonical encoding, once made or checked (Rule 6)

    def __repr__(self) -> str:
        return f"<Manifest {self.id[:12]} files={len(self.files)} bytes={self.total_bytes}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and other.files == self.files

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def in_order(cls, files: dict[str, FileEntry]) -> Manifest:
        """A manifest of ``files``, valid and already in path order, taken as it is (not
        copied or sorted again: ``changes.py`` keeps a base's order)."""
        manifest = cls({})
        manifest.files = files
        return manifest

    @classmethod
    def build(cls, entries: Iterable[tuple[str, str, int]]) -> Manifest:
        """A manifest from ``(path, sha256, size)`` rows, checked like a parsed one."""
        files = {path: {_field(sha): sha, "size": size} for path, sha, size in entries}
        return parse_manifest({"files": files})

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files.values())

    @property
    def blobs(self) -> dict[str, int]:
        """Every distinct blob: sha256 -> size (made once, as the id is: a manifest does
        not change once built; the caller does not change it either)."""
        if self._blobs is None:
            self._blobs = {entry.sha256: entry.size for entry in self.files.values()}
        return self._blobs

    def to_json(self) -> dict[str, Any]:
        return {"files": {p: {_field(e.sha256): e.sha256, "size": e.size} for p, e in self.files.items()}}

    def canonical(self) -> bytes:
        """Rule 4's encoding (Rule 6: with orjson where it is loaded; made once)."""
        if self._text is None:
            self._text = self._encode()
        return self._text

    def _encode(self) -> bytes:
        orjson = sys.modules.get("orjson")
        if orjson is not None:
            try:
                return orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)
            except TypeError:  # a size beyond 64 bits: the standard encoder's bytes
                pass
        if _quote is not None:
            joined = _joined(self.files)
            if joined is not None:
                return joined
        import json

        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = sha256_hex(self.canonical())  # Rule 7
        return self._id


def _joined(files: dict[str, FileEntry]) -> bytes | None:
    """Rule 6: ``json.dumps(to_json(), sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` for files already sorted by path, as the ``Manifest``
    keeps them; None for an entry whose types json would write otherwise. When every
    blob name is a BLAKE3 one (``all_blake3_names``: hex and ``-b3``, nothing to
    escape) the entries are joined in one list comprehension (100,000 files: 50 ->
    30 ms here): ``entry_text``'s form for such a name, written inline because calling
    it for each entry cost 17 of those ms; the tables of ``test_content_manifest`` hold
    the two to json's bytes."""
    if all_blake3_names([entry.sha256 for entry in files.values()]):
        try:
            out = [f'{_quote(path)}:{{"blob":"{entry.sha256}","size":{entry.size}}}'
                   for path, entry in files.items() if entry.size.__class__ is int]
        except TypeError:  # a path that is not a string
            return None
        return ('{"files":{' + ",".join(out) + "}}").encode() if len(out) == len(files) else None
    out = []
    for path, entry in files.items():
        sha, size = entry.sha256, entry.size
        if path.__class__ is not str or sha.__class__ is not str or size.__class__ is not int:
            return None
        out.append(entry_text(path, sha, size))
    return ('{"files":{' + ",".join(out) + "}}").encode()


def entry_text(path: str, sha: str, size: int) -> str:
    """One entry of the canonical encoding, ``"<path>":{"blob":"<name>","size":<n>}``, as
    Rule 6 encodes it without orjson (``_quote`` is ``_json``'s, present in CPython)."""
    return f'{_quote(path)}:{{"{_field(sha)}":{_quote(sha)},"size":{size}}}'


def parse_manifest(data: object, known: Manifest | None = None) -> Manifest:
    """A ``Manifest`` from its JSON form; ``ManifestError`` with every problem. Entries
    ``known`` holds unchanged are not checked again (Rule 5)."""
    if not isinstance(data, dict) or set(data) != {"files"} or not isinstance(data["files"], dict):
        raise ManifestError(['a manifest is {"files": {"<path>": {"blob": "<name>", "size": <int>}}}'])
    problems: list[str] = []
    files: dict[str, FileEntry] = {}
    old = known.files if known is not None else {}
    for path, entry in data["files"].items():
        was = old.get(path) if type(path) is str else None
        if (was is not None and type(entry) is dict and len(entry) == 2 and entry.get(_field(was.sha256)) == was.sha256
                and type(entry.get("size")) is int and entry["size"] == was.size):
            files[path] = was  # valid in ``known``: the same here
            continue
        problem = check_path(path) or _check_entry(path, entry)
        if problem:
            problems.append(problem)
        else:
            files[path] = FileEntry(entry.get("blob") or entry["sha256"], entry["size"])
        if len(problems) >= MAX_PROBLEMS:
            break
    if not (old and len(files) == len(old) and all(path in old for path in files)):  # else Rule 3 holds as in known
        problems += _file_and_directory(files)
    if problems:
        raise ManifestError(problems[:MAX_PROBLEMS])
    return Manifest(files)


def _field(name: str) -> str:
    """The entry field that holds blob name ``name`` (Rule 2)."""
    return "sha256" if len(name) == 64 else "blob"


def _check_entry(path: str, entry: object) -> str | None:
    if (not isinstance(entry, dict) or len(entry) != 2 or "size" not in entry
            or ("blob" in entry) == ("sha256" in entry)):
        return f"{path!r}: an entry is {{\"blob\": \"<name>\", \"size\": <int>}}"
    if "blob" in entry:
        if digest_algorithm(entry["blob"]) != "blake3":
            return f"{path!r}: blob must be a BLAKE3 blob name: 64 lowercase hex digits and -b3"
    elif digest_algorithm(entry["sha256"]) != "sha256":
        return f"{path!r}: sha256 must be 64 lowercase hex digits"
    size = entry["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"{path!r}: size must be an integer >= 0"
    return None


def _file_and_directory(files: Mapping[str, FileEntry]) -> list[str]:
    """Rule 3: no file is also a directory of another file. The files' parent
    directories first (a few dozen for a thousand files), then their ancestors: about
    a third of the time of walking every path's slashes."""
    dirs: set[str] = set()
    for parent in {path.rpartition("/")[0] for path in files}:
        while parent and parent not in dirs:  # once there, its ancestors are too
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return [f"{path!r}: is a file and also a directory of other files" for path in sorted(dirs & files.keys())]
