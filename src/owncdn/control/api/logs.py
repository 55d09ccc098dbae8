"""Logs and analytics: ``POST /v1/logs`` from edges, the stats API, tail and query.

Rule 1: ``POST /v1/logs`` takes a batch of JSON lines (``Content-Encoding: zstd``,
``gzip`` or none, at most ``MAX_BATCH`` bytes unpacked) from a registered node's token
(or admin) and answers only once the lines are stored: ``{"accepted", "duplicates",
"invalid"}``. ``X-Log-Segment`` names the batch (an edge's spool segment): a batch
sent again under the same name by the same token's node is all duplicates
(``owncdn.control.analytics`` Rule 3).
Lines already stored (same ``request_id``) are duplicates, not errors; lines that do
not follow the schema are counted as invalid and named in ``problems``, the others
are kept. When the writer is behind, it answers 429 with ``Retry-After`` (edges back
off and keep the lines in their spools).

Rule 2: ``GET /v1/stats``, ``/v1/stats/top`` and ``/v1/logs/tail`` need ``read``;
``POST /v1/logs/query`` needs ``admin`` (``owncdn.control.analytics`` Rule 5).

Rule 3: without an analytics store (``create_app(..., analytics=None)``) these answer 503.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from typing import Annotated

import zstandard

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from owncdn.control.analytics import MAX_GROUP, Analytics, QueryRefused
from owncdn.control.store import Token
from owncdn.core.logs.window import bucket_seconds, window

from .auth import require
from .errors import ApiProblem, error_responses

__all__ = ["router"]

router = APIRouter(tags=["logs"])
MAX_BATCH = 256 << 20
MAX_QUEUED = MAX_GROUP  # batches waiting for the writer before POST /v1/logs says 429: one commit's worth


async def analytics_store(request: Request) -> Analytics:  # async: no I/O, so no hop to a worker thread
    store = getattr(request.app.state, "analytics", None)
    if store is None:
        raise ApiProblem(503, "no_analytics", "this control plane keeps no analytics store; start it with `owncdn control`")
    return store


Store = Annotated[Analytics, Depends(analytics_store)]


async def log_sender(request: Request, token: Annotated[Token, Depends(require("node"))]) -> Token:
    if "admin" in token.scopes or token.node_id is not None:
        return token
    raise ApiProblem(403, "forbidden", f"token '{token.name}' is a bootstrap token: log batches need a registered node's token")


class Ingested(BaseModel):
    accepted: int = Field(description="Lines stored now.")
    duplicates: int = Field(description="Lines whose request_id was already stored (or repeated in the batch).")
    invalid: int = Field(description="Lines that do not follow the schema (docs/logs.md); not stored.")
    problems: list[str] = Field(default_factory=list, description="Why, for the first few invalid lines.")


def _unpack(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding == "zstd":
        try:
            size = zstandard.frame_content_size(body)
            if 0 <= size <= MAX_BATCH:  # the frame says its size (edges' frames do): one buffer of that size
                return zstandard.ZstdDecompressor().decompress(body)
            data = zstandard.ZstdDecompressor().stream_reader(body).read(MAX_BATCH + 1)
        except zstandard.ZstdError as exc:
            raise ApiProblem(400, "bad_zstd", f"the body is not valid zstd: {exc}") from None
        if len(data) > MAX_BATCH:
            raise ApiProblem(413, "batch_too_large", f"a batch may unpack to at most {MAX_BATCH} bytes")
        return data
    if encoding not in ("gzip", "x-gzip"):
        raise ApiProblem(415, "unsupported_encoding", f"Content-Encoding {encoding!r}: send zstd, gzip or none")
    try:
        out = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = out.decompress(body, MAX_BATCH)
        if out.unconsumed_tail:
            raise ApiProblem(413, "batch_too_large", f"a batch may unpack to at most {MAX_BATCH} bytes")
        return data
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise ApiProblem(400, "bad_gzip", f"the body is not valid gzip: {exc}") from None


@router.post("/v1/logs", response_model=Ingested, summary="A batch of access-log lines from an edge",
             responses=error_responses(400, 401, 403, 413, 415, 429, 503))
async def post_logs(request: Request, store: Store, token: Annotated[Token, Depends(log_sender)]):
    if store._jobs.qsize() >= MAX_QUEUED:
        return JSONResponse({"error": {"status": 429, "code": "busy", "message": "the analytics writer is behind; retry"}},
                            status_code=429, headers={"Retry-After": "1"})
    body = await request.body()
    data = await run_in_threadpool(_unpack, body, request.headers.get("content-encoding", "").strip().lower())
    segment = request.headers.get("x-log-segment")  # Rule 1: names the batch (the sender's spool segment)
    batch = f"{token.node_id or token.name}/{segment}" if segment else None
    accepted, duplicates, invalid, problems = await asyncio.wrap_future(store.ingest_lines(data, batch))
    return Ingested(accepted=accepted, duplicates=duplicates, invalid=invalid, problems=problems)


def _window(since: str | None, start: str | None, end: str | None) -> tuple[float, float]:
    try:
        return window(time.time(), since, start, end)
    except ValueError as exc:
        raise ApiProblem(422, "invalid_time", str(exc)) from None


Since = Annotated[str | None, Query(description="A duration before now (15m, 1h, 7d); the default is 1h.")]
From = Annotated[str | None, Query(alias="from", description="Start: epoch seconds, RFC 3339 or a duration before now.")]
To = Annotated[str | None, Query(description="End (default now), as `from`.")]


@router.get("/v1/stats", summary="Traffic per time bucket", responses=error_responses(401, 403, 422, 503))
def stats(store: Store, _: Annotated[Token, Depends(require("read"))],
          service: str | None = None, location: str | None = None, edge: str | None = None,
          since: Since = None, start: From = None, to: To = None,
          bucket: Annotated[str, Query(description="1m, 1h or 1d.")] = "1m") -> dict:
    """Requests, bytes served, bytes fetched from origins (and the offload), hit ratio,
    status classes and TTFB p50/p95/p99 per bucket, plus the totals."""
    lo, hi = _window(since, start, to)
    try:
        bucket_seconds(bucket)
    except ValueError as exc:
        raise ApiProblem(422, "invalid_bucket", str(exc)) from None
    buckets = store.stats(lo, hi, bucket, service, location, edge)
    return {"from": _iso(lo), "to": _iso(hi), "bucket": bucket, "buckets": buckets, "total": _sum(buckets)}


def _sum(buckets: list[dict]) -> dict:
    requests = sum(b["requests"] for b in buckets)
    sent = sum(b["bytes"] for b in buckets)
    origin = sum(b["origin_bytes"] for b in buckets)
    cached = sum(b["cached"] for b in buckets)
    return {"requests": requests, "bytes": sent, "origin_bytes": origin, "cached": cached,
            "hit_ratio": round(cached / requests, 4) if requests else None,
            "origin_offload": round(1 - origin / sent, 4) if sent else None,
            "status": {k: sum(b["status"][k] for b in buckets) for k in ("1xx", "2xx", "3xx", "4xx", "5xx")}}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@router.get("/v1/stats/top", summary="Top URLs, referrers, countries, ...", responses=error_responses(401, 403, 422, 503))
def top(store: Store, _: Annotated[Token, Depends(require("read"))],
        by: Annotated[str, Query(description="url, path, referrer, country, service, location, edge, status, client or user_agent.")] = "url",
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
        service: str | None = None, location: str | None = None,
        since: Since = None, start: From = None, to: To = None) -> dict:
    lo, hi = _window(since, start, to)
    try:
        rows = store.top(by, lo, hi, limit, service, location)
    except ValueError as exc:
        raise ApiProblem(422, "invalid_by", str(exc)) from None
    return {"by": by, "from": _iso(lo), "to": _iso(hi), "top": rows}


class QueryIn(BaseModel):
    sql: str = Field(description="One SELECT (or WITH ... SELECT) over the view `logs`.", max_length=100_000)
    limit: int = Field(1000, ge=1, le=10_000, description="Most rows returned.")
    timeout: float = Field(10.0, gt=0, le=60, description="Seconds before the query is stopped.")


@router.post("/v1/logs/query", summary="Read-only SQL over the logs (admin)", responses=error_responses(400, 401, 403, 503))
def query(body: QueryIn, store: Store, _: Annotated[Token, Depends(require("admin"))]) -> dict:
    try:
        return store.query(body.sql, body.limit, body.timeout)
    except QueryRefused as exc:
        raise ApiProblem(400, "query_refused", str(exc)) from None


@router.get("/v1/logs/tail", summary="The newest lines (long-poll)", responses=error_responses(401, 403, 503))
async def tail(store: Store, _: Annotated[Token, Depends(require("read"))],
               after: Annotated[int, Query(ge=0, description="Lines after this `next` of an earlier answer; 0: the newest `limit`.")] = 0,
               service: str | None = None,
               wait: Annotated[float, Query(ge=0, le=30, description="Seconds to wait for a line when there is none yet.")] = 0,
               limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> dict:
    """``{"lines": [...], "next": seq}``: call again with ``after=next`` to follow."""
    deadline = time.monotonic() + wait
    while True:
        seen = store.seq
        lines, last = await run_in_threadpool(store.tail, after, service, limit)
        if lines or time.monotonic() >= deadline:
            return {"lines": lines, "next": last if lines else max(after, seen)}
        while store.seq == seen and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if after == 0:
            after = seen
