"""Blob garbage collection through the API: ``POST /v1/blobs/gc[?dry_run=true]``.

Rule 1: it needs an ``admin`` token (it deletes blobs for every service and
environment), and a blob store (503 without one).

Rule 2: the pass is ``owncdn.control.blobgc.collect_blobs`` with the control plane's
retention (``app.state.blob_retention``; ``owncdn control --keep-releases N
--blob-grace S``); the answer says how many blobs and bytes it freed (with
``dry_run``: would free), how many it kept and why, and how many releases outside the
retention had their manifests dropped (``blobgc`` Rule 5).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from owncdn.control.blobgc import collect_blobs
from owncdn.control.store import Token
from owncdn.core.content.retention import Retention

from .auth import Ctx, require
from .blobs import Blobs
from .errors import error_responses

__all__ = ["blob_retention", "router"]

router = APIRouter(tags=["push"])


class GcOut(BaseModel):
    dry_run: bool
    stored: int = Field(description="Blobs in the store when the pass listed them.")
    referenced: int = Field(description="Of those, blobs a retained release names (kept).")
    young: int = Field(description="Unreferenced blobs younger than the grace period (kept: a push may be about to name them).")
    deleted: int = Field(description="Blobs deleted (dry run: that would be).")
    freed_bytes: int
    retained_releases: int = Field(description="Releases whose blobs are kept: the newest `keep` per service and environment, the current ones and those nodes serve.")
    keep: int
    grace: float = Field(description="Seconds an unreferenced blob is kept after its upload or last claim.")
    pruned_releases: int = Field(0, description="Releases outside the retention whose manifests were dropped (dry run: would be); they stay listed, pruned, and can no longer be activated.")
    partials_dropped: int = Field(0, description="Partial uploads (of PUTs that broke) untouched for a day, removed (dry run: would be).")
    partial_bytes: int = Field(0, description="Their bytes.")


def blob_retention(request: Request) -> Retention:
    """The control plane's retention (the defaults when none was set)."""
    return getattr(request.app.state, "blob_retention", None) or Retention()


@router.post("/v1/blobs/gc", response_model=GcOut, summary="Delete blobs no retained release needs",
             responses=error_responses(401, 403, 503))
async def collect(ctx: Ctx, blobs: Blobs, retention: Annotated[Retention, Depends(blob_retention)],
                  _: Annotated[Token, Depends(require("admin"))],
                  dry_run: Annotated[bool, Query(description="Only report what would be deleted.")] = False) -> GcOut:
    """Rules 1 and 2."""
    report = await run_in_threadpool(collect_blobs, ctx.store, blobs, retention, dry_run=dry_run)
    return GcOut(**report.__dict__)
