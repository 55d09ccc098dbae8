"""A manifest sent as its changes from another one (a release's event to edges that
serve the release before it).

    changes = changes_between(old, new)   # {"a.html": {"blob": ..., "size": ...}, "gone.css": None}
    new = apply_changes(old, changes)     # the same Manifest
    text = encoded_as(new, announced_id)  # its canonical encoding, which hashes to that id

Rules:
1. ``changes`` is ``{path: entry | None}`` in the manifest's JSON form
   (``manifest.py`` Rule 2): an entry adds the path or replaces its entry, ``None``
   removes it. Paths not named keep their entries.
2. ``apply_changes`` checks every named path and entry as ``parse_manifest`` does
   (Rules 1-2 there), a removal of a path the base lacks, and Rule 3 there (no path
   both a file and a directory) for the paths added (a removal or a replaced entry
   makes no new conflict); ``ManifestError`` lists every problem. The paths not named
   were valid in the base and are not checked again: a one-file change to 100,000
   files checks one entry.
3. ``encoded_as`` gives the canonical encoding of the result, which must hash to the
   id the sender announced, or ``ManifestError``: a base that is not the one the
   changes were made from, or changes altered on the way, never pass for the release.
   The encoding is made once: the caller keeps it (an edge's release file holds it).
   Given the base and its canonical encoding, it is made by editing that encoding at
   the changed paths (``spliced``, Rule 6) instead of encoding every entry again.
4. ``changes_between`` compares entries by identity first: a manifest parsed against
   the one before (``parse_manifest``'s ``known``) shares its unchanged entries. Given
   the paths that changes named (a manifest made by ``apply_changes``, whose other
   entries are the base's), it compares only those: the control plane passes on a
   client's changes that way without comparing 100,000 entries (about 25 ms).
5. Pure: manifests and dicts in, a ``Manifest`` (or dict) out.
6. ``spliced``: the canonical encoding (``manifest.py`` Rule 4) is ``{"files":{``, the
   entries ``"<path>":{...}`` in path order joined by commas, and ``}}``. An entry's
   key is found by searching for ``,"<path>":{`` (``{"files":{"<path>":{`` for the
   first): a quote inside a key is escaped (``\\"``), so ``,"`` only opens a key, and
   inside an entry ``":`` is followed by a quote or a digit, never ``{``; the entry
   ends at its first ``}``. The changed paths are visited in order, each search going
   on from the last, so the base's encoding is read once whatever the number of
   changes; the entries of the changed paths are encoded from the new manifest, every
   other byte is the base's. A base encoding not of that shape gives None (the whole
   manifest is encoded then), and either way the result must still hash to the
   announced id (Rule 3). At 100,000 files: a few milliseconds instead of about 60.
7. ``path_changes(old, new)`` sorts the paths ``changes_between`` names into changed,
   added and removed (`owncdn push --dry-run`); with no ``old``, every path is added.
"""

from __future__ import annotations

from bisect import bisect_left

from .digest import sha256_hex
from .manifest import (MAX_PROBLEMS, FileEntry, Manifest, ManifestError, _check_entry, _field, _quote, check_path,
                       entry_text)

__all__ = ["apply_changes", "changes_between", "encoded_as", "path_changes", "spliced"]

TYPE_CHECKING = False  # not from typing: `owncdn push` starts without importing it
if TYPE_CHECKING:
    from collections.abc import Iterable

_HEAD, _TAIL = b'{"files":{', b"}}"


def changes_between(old: Manifest, new: Manifest, named: Iterable[str] | None = None) -> dict[str, dict | None]:
    """Rules 1 and 4: what turns ``old`` into ``new``; given ``named``, the only paths
    whose entries may differ (changes ``new`` was made with from ``old``), only those
    are compared."""
    before, after = old.files, new.files
    if named is not None:
        return {path: None if entry is None else _json_of(entry)
                for path in sorted(named)
                if (entry := after.get(path)) is not (was := before.get(path)) and entry != was}
    out: dict[str, dict | None] = {}
    for path, entry in after.items():
        was = before.get(path)
        if was is not entry and was != entry:
            out[path] = _json_of(entry)
    out.update((path, None) for path in sorted(before.keys() - after.keys()))
    return out


def path_changes(old: Manifest | None, new: Manifest) -> tuple[list[str], list[str], list[str]]:
    """Rule 7: ``(changed, added, removed)``, each in path order."""
    if old is None:
        return [], sorted(new.files), []
    changed: list[str] = []
    added: list[str] = []
    removed: list[str] = []
    for path, entry in changes_between(old, new).items():
        (removed if entry is None else changed if path in old.files else added).append(path)
    return sorted(changed), sorted(added), sorted(removed)


def _json_of(entry: FileEntry) -> dict:
    """An entry in the manifest's JSON form (``Manifest.to_json``'s)."""
    return {_field(entry.sha256): entry.sha256, "size": entry.size}


def apply_changes(base: Manifest, changes: object) -> Manifest:
    """Rules 1-2: ``base`` with ``changes`` applied."""
    if not isinstance(changes, dict):
        raise ManifestError(['changes are {"<path>": {"blob": "<name>", "size": <int>} or null}'])
    files = dict(base.files)
    problems: list[str] = []
    added: list[str] = []
    for path, entry in changes.items():
        problem = check_path(path)
        if problem is None and entry is None:
            if path not in files:
                problem = f"{path!r}: removed, but the base release has no such file"
            else:
                del files[path]
        elif problem is None:
            problem = _check_entry(path, entry)
            if problem is None:
                if path not in files:
                    added.append(path)
                files[path] = FileEntry(entry.get("blob") or entry["sha256"], entry["size"])
        if problem is not None:
            problems.append(problem)
            if len(problems) >= MAX_PROBLEMS:
                break
    if not problems and added:
        problems = _file_and_directory(files, added)
    if problems:
        raise ManifestError(problems[:MAX_PROBLEMS])
    if added:  # in path order again: the added paths come last here
        files = {path: files[path] for path in sorted(files)}
    return Manifest.in_order(files)


def encoded_as(manifest: Manifest, expected_id: str, base: Manifest | None = None,
               changed: Iterable[str] = (), base_text: bytes | None = None) -> bytes:
    """Rule 3: the canonical encoding of ``manifest``, whose SHA-256 must be ``expected_id``
    (it is then the manifest's id, not computed again); made from ``base``'s (``base_text``,
    else the one ``base`` holds) when ``manifest`` is ``base`` with the paths ``changed``
    changed (Rule 6)."""
    encoded = spliced(base, manifest, changed, base_text) if base is not None else None
    made = sha256_hex(encoded) if encoded is not None else None
    if made != expected_id:  # not spliced, or not as the sender encodes it: the whole manifest
        encoded = manifest._encode()
        made = sha256_hex(encoded)
    if made != expected_id:
        raise ManifestError([f"the changes give manifest {made[:12]}, not {str(expected_id)[:12]} as announced "
                             "(applied to another release than the one they were made from?)"])
    manifest._id, manifest._text = made, encoded
    return encoded


def spliced(base: Manifest, manifest: Manifest, changed: Iterable[str], text: bytes | None = None) -> bytes | None:
    """Rule 6: the canonical encoding of ``manifest`` made from ``text``, ``base``'s
    (by default the one it holds), given every path whose entry differs between them;
    None when there is no such text or it is not of the canonical shape."""
    text = text if text is not None else base._text
    if text is None or _quote is None or not text.startswith(_HEAD) or not text.endswith(_TAIL):
        return None
    end = len(text) - len(_TAIL)
    old, new = base.files, manifest.files
    order: list[str] | None = None  # the base's paths, for the places of added ones
    runs: list = []  # pieces of the result between ``_HEAD`` and ``_TAIL``, joined by commas
    view, at = memoryview(text), len(_HEAD)  # the base's bytes before ``at`` are used up
    for path in sorted(changed):
        held = path in old
        if held:
            start, value = _key_at(text, path, at)
        else:
            if order is None:
                order = list(old)
            after = bisect_left(order, path)
            start, value = (end, end) if after == len(order) else _key_at(text, order[after], at)
        if start < 0:
            return None
        _run(runs, view, at, start)
        entry = new.get(path)
        if entry is not None:
            runs.append(entry_text(path, entry.sha256, entry.size).encode())
        if held:
            close = text.find(b"}", value)  # the entry's end: its key may hold a "}", its value none
            if close < 0 or close >= end:
                return None
            at = close + 1
        else:
            at = start
    _run(runs, view, at, end)
    pieces = [_HEAD]
    for run in runs:
        pieces += (run, b",")
    pieces[-1 if runs else len(pieces):] = [_TAIL]
    return b"".join(pieces)  # one copy of the base's bytes


def _key_at(text: bytes, path: str, at: int) -> tuple[int, int]:
    """Where the entry of ``path`` begins in the encoding ``text`` and where its value
    does, searched from ``at`` on (Rule 6); -1s when it is not there."""
    key = _quoted(path) + b":"
    if at == len(_HEAD) and text.startswith(key + b"{", at):
        return at, at + len(key)
    found = text.find(b"," + key + b"{", at - 1)
    return (found + 1, found + 1 + len(key)) if found >= 0 else (-1, -1)


def _run(runs: list, view: memoryview, start: int, stop: int) -> None:
    """Add the base's entries between ``start`` and ``stop`` without the commas at either end."""
    while start < stop and view[start] == 44:  # ","
        start += 1
    while stop > start and view[stop - 1] == 44:
        stop -= 1
    if start < stop:
        runs.append(view[start:stop])


def _quoted(path: str) -> bytes:
    return _quote(path).encode()  # as ``manifest.py`` Rule 6 encodes it


def _file_and_directory(files: dict[str, FileEntry], added: list[str]) -> list[str]:
    """``manifest.py`` Rule 3 for the paths added: none of their directories is a file,
    and none is a directory of another file (a removal makes no new conflict)."""
    problems = []
    ordered = sorted(files)
    for path in added:
        cut = path.find("/")
        while cut != -1:
            if path[:cut] in files:
                problems.append(f"{path[:cut]!r}: is a file and also a directory of other files")
            cut = path.find("/", cut + 1)
        below = path + "/"
        at = bisect_left(ordered, below)
        if at < len(ordered) and ordered[at].startswith(below):
            problems.append(f"{path!r}: is a file and also a directory of other files")
    return problems
