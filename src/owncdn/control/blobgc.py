"""Blob garbage collection on the control plane: delete the blobs no retained release needs.

What to keep is decided by ``owncdn.core.content.retention``; this module reads the
store and the blob store, and deletes.

Rules:
1. One pass: list the stored blobs with their ages, then read the releases (numbers,
   current pointers, what nodes serve) and the manifests of the retained ones, plan
   (retention Rules 1-3), and delete each planned blob with ``delete_older`` (blobs
   Rule 4), which looks at its age again as it deletes: a push or an activation
   that claimed it since the listing keeps it.
2. A release created during the pass names blobs that were either just uploaded or
   claimed by its creation (young), or that the pass deleted first; then creation
   answers 409 ``missing_blobs`` and the push uploads them again. So no stored
   release names a deleted blob unless it is outside the retention.
3. ``dry_run`` plans and reports without deleting. Every pass logs what it freed
   (blobs and bytes) at INFO, and a failure at WARNING; a pass never raises out of
   the periodic task (``run_periodically``), so the control plane keeps serving.
4. Passes in one process never overlap (a lock); replicas sharing a blob store may
   both run one, which is safe by Rule 1 (the second finds the blobs gone).
5. A pass also drops the manifests of the releases outside the retention that still
   have one (``releasestore`` Rule 10; a dry run counts them): those releases stay
   listed, pruned, and can no longer be activated, as when their blobs are gone.
   Which they are is read with the rest (Rule 1), before any blob is deleted.
6. A pass also removes the partial uploads of a directory store (``dirblobs`` Rule 9)
   untouched for ``PARTIAL_KEEP`` seconds (a day: a push that broke can be run again
   meanwhile and send only the rest); a dry run counts them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from owncdn.control.blobs import BlobStore
from owncdn.core.content.retention import (
    Retention, manifest_blobs, plan_collection, retained_releases,
)

__all__ = ["GcReport", "GcSettings", "collect_blobs", "referenced_blobs", "run_periodically"]

log = logging.getLogger("owncdn.control.blobgc")
DEFAULT_INTERVAL = 6 * 3600.0
PARTIAL_KEEP = 24 * 3600.0  # Rule 6
_lock = threading.Lock()


@dataclass(frozen=True)
class GcSettings:
    """The control plane's retention and how often it collects (``interval`` 0: only
    on request, ``POST /v1/blobs/gc``)."""

    retention: Retention = field(default_factory=Retention)
    interval: float = DEFAULT_INTERVAL


@dataclass(frozen=True)
class GcReport:
    dry_run: bool
    stored: int  # blobs in the store when listed
    referenced: int  # of those, named by a retained release
    young: int  # unreferenced, within the grace period
    deleted: int  # deleted (dry run: would be)
    freed_bytes: int
    retained_releases: int
    keep: int
    grace: float
    pruned_releases: int = 0  # releases whose manifests were dropped (dry run: would be) (Rule 5)
    partials_dropped: int = 0  # partial uploads removed (dry run: would be) (Rule 6)
    partial_bytes: int = 0


def referenced_blobs(store, retention: Retention) -> tuple[set[str], int, dict[tuple[str, str], list[int]]]:
    """The blobs retained releases name, how many releases are retained, and the others
    per (env, service) (Rules 1, 5)."""
    current, serving = store.release_pointers()
    numbers = store.release_numbers()
    kept = retained_releases(numbers, current, serving, retention.keep)
    others = {key: [n for n in found if n not in kept.get(key, ())] for key, found in numbers.items()}
    referenced: set[str] = set()
    by_id: dict[str, set[str]] = {}
    count = 0
    for (env, service), numbers in kept.items():
        for number in numbers:
            release = store.get_release(env, service, number)
            if release is None:
                continue
            count += 1
            if release.id not in by_id:
                by_id[release.id] = manifest_blobs(release.manifest or {})
            referenced |= by_id[release.id]
    return referenced, count, {key: found for key, found in others.items() if found}


def collect_blobs(store, blobs: BlobStore, retention: Retention, *, dry_run: bool = False,
                  now: float | None = None) -> GcReport:
    """One pass (Rules 1-4); blocking, run it in a thread from async code."""
    with _lock:
        now = time.time() if now is None else now
        stored = dict(blobs.stored())  # before the releases are read (Rule 1)
        referenced, count, others = referenced_blobs(store, retention)
        plan = plan_collection(stored, referenced, now, retention.grace)
        deleted, freed = len(plan.delete), plan.delete_bytes
        pruned = store.prune_manifests(others, dry_run=dry_run) if others else 0  # Rule 5
        if not dry_run:
            deleted = freed = 0
            cutoff = now - retention.grace
            for sha in plan.delete:
                size = blobs.delete_older(sha, cutoff)
                if size is not None:
                    deleted += 1
                    freed += size
            compact = getattr(blobs, "compact", None)  # a directory store's packs (dirblobs Rule 5)
            if compact is not None:
                compact()
        partials = getattr(blobs, "partials", None)  # Rule 6
        dropped = partials.drop_older(now - PARTIAL_KEEP, dry_run=dry_run) if partials is not None else (0, 0)
        report = GcReport(dry_run=dry_run, stored=len(stored), referenced=plan.referenced, young=plan.young,
                          deleted=deleted, freed_bytes=freed, retained_releases=count, keep=retention.keep,
                          grace=retention.grace, pruned_releases=pruned, partials_dropped=dropped[0],
                          partial_bytes=dropped[1])
    log.info("blob gc%s: %d of %d blobs %s, %d bytes; %d kept for %d retained releases, %d younger than %g s; "
             "%d releases' manifests %s; %d partial uploads %s, %d bytes", " (dry run)" if dry_run else "", deleted,
             len(stored), "unneeded" if dry_run else "deleted", freed, plan.referenced, count, plan.young,
             retention.grace, pruned, "to drop" if dry_run else "dropped", dropped[0],
             "to remove" if dry_run else "removed", dropped[1])
    return report


async def run_periodically(store, blobs: BlobStore, retention: Retention, interval: float = DEFAULT_INTERVAL,
                           first_delay: float | None = None) -> None:
    """A pass every ``interval`` seconds (the first after ``first_delay``, default one
    interval) until cancelled (Rule 3)."""
    await asyncio.sleep(interval if first_delay is None else first_delay)
    while True:
        try:
            await asyncio.to_thread(collect_blobs, store, blobs, retention)
        except Exception as exc:  # noqa: BLE001 - the control plane keeps serving
            log.warning("blob gc failed: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(interval)
