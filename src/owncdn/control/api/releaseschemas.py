"""Request and response bodies of the blob and release endpoints (the rules of
``schemas``: strict requests, documented fields, UTC times)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BlobStored", "BundleStored", "FetchIn", "MissingIn", "MissingOut", "NodeReleaseIn", "NodeReleaseOut", "ReleaseCreate",
           "ReleaseCreated", "ReleaseFailure", "ReleaseNode", "ReleaseOut", "ReleaseStatus", "ReleaseUpcoming"]

MAX_HASHES = 200_000
MAX_FETCH = 10_000


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


MAX_COMMENT = 1000  # releases Rule 16
COMMENT_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # one line, no control characters


class ReleaseComment(_Request):
    comment: str = Field(max_length=MAX_COMMENT, pattern=COMMENT_PATTERN,
                         description="The release's comment (releases Rule 16); empty removes it.")


class MissingIn(_Request):
    hashes: list[str] = Field(max_length=MAX_HASHES, description="Names of blobs the caller has: BLAKE3 in 64 lowercase hex digits and -b3, or SHA-256 in 64 lowercase hex digits.")


class MissingOut(BaseModel):
    missing: list[str] = Field(description="Those the control plane does not hold yet, in the order asked (repeats dropped).")
    partial: dict[str, int] = Field(default_factory=dict, description="Of the missing ones, those whose upload broke "
                                    "and whose first bytes the control plane kept: how many. A PUT with "
                                    "`Content-Range: bytes N-(T-1)/T` sends the rest.")


class BlobStored(BaseModel):
    sha256: str = Field(description="The blob's name (the field keeps its old name whatever hash the name says).")
    size: int = Field(description="Bytes stored.")


class BundleStored(BaseModel):
    stored: list[BlobStored] = Field(description="The blobs of the bundle, in order.")
    bytes: int = Field(description="Their bytes in all.")


MAX_FETCH_WAIT = 60.0


class FetchIn(_Request):
    hashes: list[str] = Field(max_length=MAX_FETCH, description="The blobs to download, 64 lowercase hex digits each.")
    wait: float = Field(default=0.0, ge=0.0, le=MAX_FETCH_WAIT, description="0 (default): every blob must exist, else 404 before anything is sent. More: the blobs present are sent, then those still being uploaded as they land, for up to this many seconds; the body ends early with those that did not (an edge prefetching an upcoming release).")


class ReleaseCreate(_Request):
    manifest: dict[str, Any] = Field(description='`{"files": {"<relative path>": {"blob": "<BLAKE3 hex>-b3", "size": <int>}}}` (an entry of a release pushed before BLAKE3: `{"sha256": "<SHA-256 hex>", "size": <int>}`); every blob must be uploaded first.')


class ReleaseCreated(BaseModel):
    service: str
    env: str
    number: int = Field(description="The release number (1, 2, 3... per service); now current.")
    id: str = Field(description="The manifest id: SHA-256 of its canonical encoding.")
    files: int
    bytes: int


class ReleaseUpcoming(BaseModel):
    service: str
    env: str
    id: str = Field(description="The manifest id: SHA-256 of its canonical encoding.")
    expires_in: float = Field(description="Seconds the edges are told about it, unless the release is created first.")


class ReleaseNode(BaseModel):
    node_id: str
    name: str
    location: str


class ReleaseOut(BaseModel):
    number: int
    id: str
    files: int
    bytes: int
    author: str
    comment: str = Field("", description="Why it was pushed (`owncdn push -m`), as given.")
    created: datetime | None
    current: bool = Field(description="The release edges serve (or are switching to) now.")
    nodes: list[ReleaseNode] = Field(description="Nodes that reported serving this release.")
    retained: bool = Field(True, description="Its blobs are kept by blob GC (one of the newest releases, the current one, or served by a node), so it can be activated; otherwise blob GC may delete them once they are older than the grace period.")
    pruned: bool = Field(False, description="Blob GC dropped its manifest (it was outside the retention): listed, but it can no longer be activated.")


class NodeReleaseIn(_Request):
    service: str = Field(min_length=1, max_length=200)
    number: int = Field(ge=1, description="The release reported on.")
    status: Literal["serving", "failed", "retrying"] = Field(description="`serving`: switched to it; `failed`: could not (the previous release keeps serving); `retrying`: still fetching it after an error, which `reason` names (a full disk, the control plane unreachable), and trying again.")
    reason: str = Field("", max_length=2000, description="Why it failed, or what it is retrying after.")


class NodeReleaseOut(BaseModel):
    node_id: str
    service: str
    number: int
    status: str
    serving: int | None = Field(description="The release the node serves now.")


class ReleasePending(ReleaseNode):
    reason: str = Field("", description="What the edge said keeps it from serving the release yet, if it said (`retrying` reports: a full disk, the control plane unreachable); it goes on trying.")


class ReleaseFailure(ReleaseNode):
    reason: str = Field(description="Why the node could not switch to the release (it serves its previous one).")


class ReleaseStatus(BaseModel):
    number: int
    current: bool = Field(description="Whether this is the service's current release.")
    serving: list[ReleaseNode] = Field(description="Edges that serve this release.")
    failed: list[ReleaseFailure] = Field(description="Edges that could not switch to it.")
    pending: list[ReleasePending] = Field(description="Edges in contact that do not serve it yet (with what they are retrying after, if they said).")
    complete: bool = Field(description="No edge in contact is left to report.")
    disconnected: list[ReleaseNode] = Field(default_factory=list, description="Edges not waited for (in neither `pending` nor `serving`): their event stream ended over 5 s ago and they were not heard from since (stopped, killed, cut off); they catch up when they reconnect.")
