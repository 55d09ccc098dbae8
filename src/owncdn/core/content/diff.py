"""What changes from one release to the next: paths and blobs.

Rules:
1. Paths are compared by their entry: a path in ``new`` only is *added*, in ``old``
   only *removed*, in both with another hash or size *changed*; the rest unchanged.
2. ``blobs_needed`` are the blobs of ``new`` that ``old`` does not hold (by hash, not
   by path: a renamed or copied file needs no new blob), with their sizes; this is
   what an edge holding ``old`` must fetch. ``None`` as ``old`` means an empty release.
3. Pure: two manifests in, a ``ManifestDiff`` out.
"""

from __future__ import annotations

from .manifest import Manifest

__all__ = ["ManifestDiff", "diff"]


class ManifestDiff:
    """Rule 1-2's answer (a value; a plain class so importing this package stays cheap)."""

    __slots__ = ("added", "changed", "removed", "blobs_needed")

    def __init__(self, added: tuple[str, ...], changed: tuple[str, ...], removed: tuple[str, ...],
                 blobs_needed: dict[str, int]) -> None:
        self.added, self.changed, self.removed, self.blobs_needed = added, changed, removed, blobs_needed

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not ManifestDiff:
            return NotImplemented
        return (self.added, self.changed, self.removed, self.blobs_needed) == (
            other.added, other.changed, other.removed, other.blobs_needed)

    __hash__ = None  # holds a dict, as the dataclass it replaces

    def __repr__(self) -> str:
        return (f"<ManifestDiff +{len(self.added)} ~{len(self.changed)} -{len(self.removed)} "
                f"blobs={len(self.blobs_needed)} bytes={self.bytes_needed}>")

    @property
    def bytes_needed(self) -> int:
        return sum(self.blobs_needed.values())

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.removed)


def diff(old: Manifest | None, new: Manifest) -> ManifestDiff:
    """Rules 1-2."""
    before = old.files if old is not None else {}
    after = new.files
    added = tuple(p for p in after if p not in before)
    removed = tuple(p for p in before if p not in after)
    changed = tuple(p for p in after if p in before and before[p] != after[p])
    held = {entry.sha256 for entry in before.values()}
    needed = {sha: size for sha, size in new.blobs.items() if sha not in held}
    return ManifestDiff(added, changed, removed, needed)
