"""Blob retention on the control plane: which releases keep their blobs, which blobs go.

The control plane's blob store (``owncdn.control.blobs``) would otherwise keep every
blob ever pushed. ``owncdn.control.blobgc`` reads the store and the releases and
asks these functions what to delete; nothing here reads a file or a clock.

Rules:
1. Per (env, service), a release is *retained* when it is one of the newest
   ``keep`` releases (by number), the current one, or one some node reports it
   serves. Only retained releases are rollback targets the control plane promises
   to keep whole; the others stay listed (marked not retained) and may lose blobs.
2. A blob is kept when a retained release of any service or environment names it.
3. Any other blob is deleted only if it is older than ``grace`` seconds (its upload,
   or the last time a push or an activation claimed it, ``now`` minus its mtime).
   A push asks which blobs are missing, uploads those, then creates the release; the
   grace period covers that window, for the blobs it uploaded and (directory store:
   asking refreshes them) those it found present.
4. ``keep`` is at least 1 and ``grace`` at least ``MIN_GRACE`` seconds, so neither
   the current release nor a push in flight can be configured away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_GRACE", "DEFAULT_KEEP", "MIN_GRACE", "BlobInfo", "Collection", "Retention", "manifest_blobs",
           "plan_collection", "retained_numbers", "retained_releases"]

DEFAULT_KEEP = 10
DEFAULT_GRACE = 3600.0
MIN_GRACE = 300.0


@dataclass(frozen=True)
class Retention:
    """How many releases per (env, service) keep their blobs, and how old an
    unreferenced blob must be before it is deleted (Rules 1, 3, 4)."""

    keep: int = DEFAULT_KEEP
    grace: float = DEFAULT_GRACE

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise ValueError(f"blob retention: keep {self.keep}: expected at least 1 release per service")
        if self.grace < MIN_GRACE:
            raise ValueError(f"blob retention: grace {self.grace:g} s: expected at least {MIN_GRACE:g} s "
                             "(a push in flight relies on it)")


@dataclass(frozen=True)
class BlobInfo:
    """One stored blob: its size in bytes and its mtime (seconds since the epoch)."""

    size: int
    mtime: float


@dataclass(frozen=True)
class Collection:
    """What to do with the stored blobs: ``delete`` (hashes, sorted) and the counts."""

    delete: tuple[str, ...]
    delete_bytes: int
    referenced: int  # stored blobs a retained release names (Rule 2)
    young: int  # unreferenced but within the grace period (Rule 3)
    sizes: Mapping[str, int] = field(default_factory=dict, repr=False)


def retained_numbers(numbers: Iterable[int], current: int | None, serving: Iterable[int | None],
                     keep: int) -> set[int]:
    """The releases of one (env, service) that keep their blobs (Rule 1)."""
    existing = set(numbers)
    kept = set(sorted(existing, reverse=True)[:keep])
    kept.update(n for n in (current, *serving) if n is not None and n in existing)
    return kept


def retained_releases(numbers: Mapping[tuple[str, str], Iterable[int]], current: Mapping[tuple[str, str], int],
                      serving: Mapping[tuple[str, str], Iterable[int]], keep: int) -> dict[tuple[str, str], set[int]]:
    """``retained_numbers`` for every (env, service) that has releases (Rule 1)."""
    return {key: retained_numbers(nums, current.get(key), serving.get(key, ()), keep) for key, nums in numbers.items()}


def manifest_blobs(manifest: Mapping) -> set[str]:
    """The blob names a stored manifest (``{"files": {path: {"blob" or "sha256", "size"}}}``) holds."""
    return {entry.get("blob") or entry["sha256"] for entry in (manifest.get("files") or {}).values()}


def plan_collection(stored: Mapping[str, BlobInfo], referenced: set[str] | frozenset[str], now: float,
                    grace: float) -> Collection:
    """Which stored blobs to delete (Rules 2, 3): unreferenced and older than ``grace``."""
    cutoff = now - grace
    delete: list[str] = []
    sizes: dict[str, int] = {}
    held = young = 0
    for sha, info in stored.items():
        if sha in referenced:
            held += 1
        elif info.mtime >= cutoff:
            young += 1
        else:
            delete.append(sha)
            sizes[sha] = info.size
    delete.sort()
    return Collection(delete=tuple(delete), delete_bytes=sum(sizes.values()), referenced=held, young=young,
                      sizes=sizes)
