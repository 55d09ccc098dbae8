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
4. ``changes_between`` compares entries by identity first: a manifest parsed against
   the one before (``parse_manifest``'s ``known``) shares its unchanged entries.
5. Pure: manifests and dicts in, a ``Manifest`` (or dict) out.
"""

from __future__ import annotations

from bisect import bisect_left

from .digest import sha256_hex
from .manifest import MAX_PROBLEMS, FileEntry, Manifest, ManifestError, _check_entry, _field, check_path

__all__ = ["apply_changes", "changes_between", "encoded_as"]


def changes_between(old: Manifest, new: Manifest) -> dict[str, dict | None]:
    """Rules 1 and 4: what turns ``old`` into ``new``."""
    before, after = old.files, new.files
    out: dict[str, dict | None] = {}
    for path, entry in after.items():
        was = before.get(path)
        if was is not entry and was != entry:
            out[path] = {_field(entry.sha256): entry.sha256, "size": entry.size}
    out.update((path, None) for path in sorted(before.keys() - after.keys()))
    return out


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
    return Manifest(files) if added else Manifest.in_order(files)


def encoded_as(manifest: Manifest, expected_id: str) -> bytes:
    """Rule 3: the canonical encoding of ``manifest``, whose SHA-256 must be ``expected_id``
    (it is then the manifest's id, not computed again)."""
    encoded = manifest.canonical()
    made = sha256_hex(encoded)
    if made != expected_id:
        raise ManifestError([f"the changes give manifest {made[:12]}, not {str(expected_id)[:12]} as announced "
                             "(applied to another release than the one they were made from?)"])
    manifest._id = made
    return encoded


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
