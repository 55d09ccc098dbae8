"""Blobs: the content-addressed bytes of pushed files (``owncdn.control.blobs``).

Rule 1: ``POST /v1/blobs/missing`` and ``PUT /v1/blobs/{sha256}`` need scope
``deploy``: a push asks which blobs are missing and uploads only those. Asking
claims the present ones (``BlobStore.claim``), so blob GC's grace period covers the
push that is about to name them (``owncdn.control.blobgc``).

Rule 2: a PUT is hashed while it streams in and stored only if the bytes hash to
the name in the path (else 400, nothing stored); a name is ``<hex>-b3`` (BLAKE3) or
``<hex>`` (SHA-256, what clients before BLAKE3 send: still accepted), hashed as it
says (``owncdn.core.content.digest``); putting a blob that exists again
is harmless, so a push that broke can simply run again.

Rule 3: ``GET /v1/blobs/{sha256}`` is for nodes (their own bound token) and tokens
with ``read``. It answers one ``Range: bytes=N-`` (or ``N-M``) with 206, so an edge
resumes a fetch that broke; other range forms are ignored (200, whole blob).

Rule 4: bundles carry many blobs in one body (``owncdn.core.content.bundle``), so
small files do not cost a request each: ``POST /v1/blobs/bundle`` uploads one
(``deploy``; every blob checked as in Rule 2, those before a bad one stay stored),
``POST /v1/blobs/fetch`` with ``{"hashes": [...]}`` downloads one (Rule 3's tokens;
404 listing the missing ones before anything is sent).

Rule 4b: ``POST /v1/blobs/fetch`` with ``"wait": S`` (an edge prefetching an
upcoming release, ``releases`` Rule 8) never answers 404: it sends the blobs
present, then each blob that lands later (every upload that stores blobs adds them,
with their sizes, to this process's ``Landed`` log and notifies ``BLOBS_TOPIC``; a
bundle read raw does so once its blobs are verified and nothing can refuse them,
before its ``syncfs`` rather than after, and they are read from their temp files
until renamed: ``uploadsink`` Rule 3, ``control/dirblobs.py`` Rule 2; and again once
renamed, for a fetch that began in between: its look at the store missed them and
the log had them before its start; on
each notify the blobs the log names are sent as the log says, without asking the
store, which is asked about all those still awaited at least every
``RECHECK_SECONDS``, for uploads to another replica), and ends once every
blob asked was sent or after S seconds (the body is chunked, its length unknown; Rule 6). Every blob
sent is complete and verified (stored, or being flushed to be: a crash of the machine
then may lose this copy, never the edge's right bytes, and no release names a blob
before it is durable here, ``control/dirblobs.py`` Rule 1), so the edge verifies it as any other.

Rule 4c: into a directory store, a bundle upload (``POST /v1/blobs/bundle``, ``POST
.../releases/bundle``) is parsed, hashed and written into one new pack by a
``BundleSink`` (``uploadsink.py``) in a thread: read from the socket in a receiving
thread of its own on a plain HTTP/1.1 connection served by uvicorn (``rawbody.py``),
else through ASGI in 1 MiB batches fed from worker threads (``asgibody.py``: TLS,
HTTP/1.0, a chunked body, an ASGI transport). A ``PUT`` read raw goes to a temp file
made durable with one ``syncfs`` shared with the uploads ending at the same time
(``BlobSink``, ``DirBlobStore.commit_many``), through ASGI to a ``DirWriter`` (fsync,
rename). The answers are the same either way (Rules 2 and 4). A store without packs
(S3) takes a bundle's blobs one by one as they arrive (``_BundleUpload``). The push
benchmark's first push with every upload through ASGI (alternating, 8-10 runs each):
0.475-0.506 s with a temp file per blob, 0.350-0.373 s into packs (read raw: 0.31-0.33 s).

Rule 5: without a blob store (``create_app(..., blobs=None)``) these endpoints
answer 503 and say so.

Rule 6: the event loop never reads a file. From a directory store on a plain TCP
connection served by uvicorn (``sendfile.py``), a bundle download (each round of a
waiting one) and a ``GET`` of more than ``WHOLE_BLOB`` bytes are chunked
(``Transfer-Encoding: chunked``, no ``Content-Length``) and their blob bytes go from
the files to the socket with ``sendfile(2)`` in a sending thread (one chunk per
bundle or round: per blob open, send its record header, sendfile, close; records
lying one after another in a pack go as one span, and a round's records go in the
order they lie in the packs, not in the order asked: ``dirblobs`` Rule 6); with 3
edges fetching the Python docs' first push the control plane took 0.60-0.71
CPU-seconds before, 0.40-0.44 after (state on tmpfs, alternating runs). Otherwise (S3, tests through an
ASGI transport, TLS, more than ``sendfile.SENDERS`` at once) they are read in a worker
thread ``SEND_BATCH`` bytes at a time (many small blobs of a bundle in one step, read
straight into the piece sent, ``read_into``) and handed to the server as an async
stream, a bundle with its ``Content-Length`` where it is known.

Rule 7: a ``PUT`` into a directory store (or an S3 store given a local directory for
them, ``s3blobs`` Rule 2) that is cut off (the client gone, the connection stalled,
the control plane stopping) keeps the bytes it brought when there are at least
``partials.PARTIAL_MIN`` (``control/dirblobs.py`` Rule 9), and the missing
answer (Rule 1) says so: ``"partial": {name: bytes kept}``. A ``PUT`` with
``Content-Range: bytes N-(T-1)/T`` and the blob's last ``T-N`` bytes as its body
resumes it (RFC 9110 §14.5, partial PUT; the header's rules:
``core/content/resume.py``): the kept bytes are read back and hashed in a worker
thread, the body written after them, and the blob checked whole (Rule 2) and stored
as any other, its partial then dropped. Answers: 409 ``partial_gone`` when no kept
partial holds N bytes (nothing read; send it again from what the missing answer
says, or whole); 400 ``bad_content_range`` for any other Content-Range; 400
``no_partial_uploads`` from a store that keeps none (S3 without a local directory for
them, ``s3blobs`` Rule 2; §14.5: "SHOULD respond with a 400"). A ``PUT`` without Content-Range stores the whole blob as before and
drops its partial too. Before it answers, the missing question gives up any upload of
those blobs whose client went quiet (``inflight.py``: nothing received for half a
second), so that its bytes are kept and named: a client that noticed a break first
(its address changed) resumes rather than sending the blob again beside it.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.concurrency import run_in_threadpool

from owncdn.control.blobs import BlobError, BlobMismatch, BlobNotFound, BlobStore, BlobTooLarge
from owncdn.control.partials import PartialGone
from owncdn.core.content.resume import ResumeError, resumed_at
from owncdn.core.content.digest import all_blake3_names, is_blob_name
from owncdn.core.content.bundle import BlobData, BlobEnd, BlobStart, BundleError, BundleReader, header
from owncdn.control.store import Token

from owncdn.control.hub import RECHECK_SECONDS

from .arriving import GrowingResponse, end_growing, growing_blobs, start_growing
from .asgibody import AsgiBody
from .auth import authenticate, require
from .errors import ApiProblem, error_responses
from .inflight import inflight
from .releaseschemas import MAX_FETCH_WAIT, BlobStored, BundleStored, FetchIn, MissingIn, MissingOut
from .rawbody import RawBody
from .sendfile import TRANSPORT, RawSender
from .uploadsink import BlobSink, BundleSink

__all__ = ["blob_store", "receive_bundle", "router"]

router = APIRouter(tags=["push"])
Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{64}(-b3)?$",
                          description="The blob's name: its BLAKE3 in 64 lowercase hex digits and -b3, or its SHA-256 "
                                      "in 64 lowercase hex digits (blobs pushed before BLAKE3).")]
WRITE_BATCH = 1 << 20
_RANGE = re.compile(r"bytes=(\d{1,19})-(\d{0,19})")
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
BUNDLE_TYPE = "application/x-owncdn-bundle"
_BUNDLE = {BUNDLE_TYPE: {"schema": {"type": "string", "format": "binary"}}}
WHOLE_BLOB = 1 << 20  # bundled blobs up to this size are stored in one step
SEND_BATCH = 1 << 20  # bytes read per worker-thread step when streaming (Rule 6)
BLOBS_TOPIC = "blobs/stored"  # notified after an upload stored blobs (Rule 4b)
LANDED_KEEP = 100_000  # blobs remembered as just stored, for the waiting fetches (Rule 4b)


class Landed:
    """The blobs this process stored lately, numbered, with their sizes, so a waiting
    fetch sends those it waits for without looking at the store (Rule 4b); one that
    fell behind the log looks at all again."""

    def __init__(self, keep: int = LANDED_KEEP) -> None:
        self.keep = keep
        self.log: deque[tuple[int, str, int]] = deque()
        self.seq = 0
        self.lock = threading.Lock()

    def add(self, stored: list[tuple[str, int]]) -> None:
        """Blobs just stored, as ``(name, size)``."""
        with self.lock:
            for sha, size in stored:
                self.seq += 1
                self.log.append((self.seq, sha, size))
            while len(self.log) > self.keep:
                self.log.popleft()

    def since(self, seq: int) -> tuple[int, dict[str, int] | None]:
        """``(now, {name: size} of the blobs stored after seq)``, in the order they were
        stored (a bundle's as in its pack, so they go out as one span: ``dirblobs``
        Rule 6); None when some were forgotten already."""
        with self.lock:
            if self.log and self.log[0][0] > seq + 1:
                return self.seq, None
            newest = []
            for n, sha, size in reversed(self.log):
                if n <= seq:
                    break
                newest.append((sha, size))
            return self.seq, dict(reversed(newest))


def blobs_stored(request: Request, stored: list[tuple[str, int]]) -> None:
    """Wake the fetches waiting for blobs to land (Rule 4b): ``(name, size)`` each."""
    landed(request).add(stored)
    ctx = getattr(request.app.state, "owncdn", None)
    if ctx is not None:
        ctx.hub.notify(BLOBS_TOPIC)


_LANDED_MADE = threading.Lock()


def landed(request: Request) -> Landed:
    """The app's ``Landed`` log, made on first use (from the event loop or a receiving
    thread: one log, however many ask at once)."""
    state = request.app.state
    log = getattr(state, "landed_blobs", None)
    if log is None:
        with _LANDED_MADE:
            log = getattr(state, "landed_blobs", None)
            if log is None:
                log = state.landed_blobs = Landed()
    return log


async def blob_store(request: Request) -> BlobStore:
    """The app's blob store; 503 without one (Rule 5). Async: FastAPI runs a plain
    function dependency in a worker thread, a hop per request for an attribute read."""
    blobs = getattr(request.app.state, "blobs", None)
    if blobs is None:
        raise ApiProblem(503, "no_blob_store", "this control plane has no blob store; start it with `owncdn control` (a directory in the state dir by default, or --blob-store s3://bucket/prefix)")
    return blobs


Blobs = Annotated[BlobStore, Depends(blob_store)]


async def blob_reader(request: Request, token: Annotated[Token, Depends(authenticate)]) -> Token:
    """Rule 3: a node's own token, or ``read`` / ``admin``."""
    if token.scopes & {"admin", "read"} or ("node" in token.scopes and token.node_id is not None):
        return token
    raise ApiProblem(403, "forbidden", f"GET {request.url.path} needs a registered node's token or scope read; token '{token.name}' has scopes: {', '.join(sorted(token.scopes)) or 'none'}")


@router.post("/v1/blobs/missing", response_model=MissingOut, summary="Which of these blobs are missing?",
             responses=error_responses(400, 401, 403, 422))
async def missing(body: MissingIn, request: Request, blobs: Blobs,
                  _: Annotated[Token, Depends(require("deploy"))]) -> MissingOut:
    """Rule 1, in one worker-thread step (a coroutine: a plain function endpoint's
    answer is validated in a second one); with the bytes kept of any (Rule 7), an
    upload of one whose client went quiet given up first (``inflight.py``)."""
    lacking = await run_in_threadpool(_claim, blobs, body.hashes)
    partials = getattr(blobs, "partials", None)
    if partials is None or not lacking:
        return MissingOut(missing=lacking, partial={})
    await inflight(request.app).take_over(lacking)
    return MissingOut(missing=lacking, partial=partials.held(lacking))


def _claim(blobs: BlobStore, hashes: list[str]) -> list[str]:
    _check_hashes(hashes)
    return blobs.claim(hashes)


def _check_hashes(hashes: list[str]) -> None:
    if all_blake3_names(hashes):  # all at once (digest Rule 6)
        return
    bad = [h for h in hashes if not is_blob_name(h)]
    if bad:
        raise ApiProblem(422, "invalid_hash", f"{len(bad)} hashes are not blob names (64 lowercase hex digits, "
                         f"then -b3 or nothing), e.g. {bad[0][:80]!r}")


@router.put("/v1/blobs/{sha256}", response_model=BlobStored, summary="Upload a blob (raw body), or the rest "
            "of one whose upload broke (Content-Range)", responses=error_responses(400, 401, 403, 409, 413, 422))
async def put_blob(sha256: Sha, request: Request, blobs: Blobs,
                   _: Annotated[Token, Depends(require("deploy"))]) -> BlobStored:
    """Send the file's bytes as the body; stored only if they hash to ``sha256`` (Rule 2).
    With ``Content-Range: bytes N-(T-1)/T``, the rest of a blob whose first N bytes the
    control plane kept from an upload that broke (Rule 7)."""
    offset, total = _resumed(request, blobs)
    upload = inflight(request.app).begin(sha256, request.scope)  # Rule 7: taken over if its client goes quiet
    try:
        resumed = None
        if offset:  # the kept bytes read back and hashed in a worker thread
            resumed = await (run_in_threadpool(blobs.part, sha256, total, offset) if hasattr(blobs, "part")
                             else run_in_threadpool(blobs.writer, sha256, offset))  # S3 (s3blobs Rule 2)
        return await _put(sha256, request, blobs, total, resumed)
    except BlobMismatch as exc:
        raise ApiProblem(400, "hash_mismatch", str(exc)) from None
    except BlobTooLarge as exc:
        raise ApiProblem(413, "too_large", f"{exc}{TOO_LARGE_HINT}") from None
    except PartialGone as exc:
        raise ApiProblem(409, "partial_gone", str(exc)) from None
    finally:
        inflight(request.app).end(upload)


def _resumed(request: Request, blobs: BlobStore) -> tuple[int, int]:
    """Rule 7: ``(offset, blob size)`` from the request's Content-Range and length."""
    length = request.headers.get("content-length")
    content_range = request.headers.get("content-range")
    if content_range is None:
        return 0, int(length) if length is not None and length.isdigit() else 0
    if getattr(blobs, "partials", None) is None:
        raise ApiProblem(400, "no_partial_uploads", "this control plane's blob store keeps no partial uploads: "
                         "send the whole blob, without Content-Range")
    if length is None or not length.isdigit():
        raise ApiProblem(400, "bad_content_range", "a resumed upload needs a Content-Length")
    try:
        return resumed_at(content_range, int(length))
    except ResumeError as exc:
        raise ApiProblem(400, "bad_content_range", str(exc)) from None


async def _put(sha256: str, request: Request, blobs: BlobStore, total: int, resumed) -> BlobStored:
    raw = RawBody.attach(request) if hasattr(blobs, "part") else None
    if raw is not None:  # Rule 4c
        growing = start_growing(request.app, sha256, total)  # arriving.py Rule 1
        try:
            size = await raw.run(BlobSink(blobs, sha256, total, growing, resumed))
        finally:
            end_growing(request.app, growing)
    else:
        size = await _put_through_asgi(sha256, request, blobs, resumed)
    _stored_whole(request, blobs, sha256, size)
    return BlobStored(sha256=sha256, size=size)


async def _put_through_asgi(sha256: str, request: Request, blobs: BlobStore, writer) -> int:
    if writer is None:
        writer = await run_in_threadpool(blobs.writer, sha256)
    try:
        batch = bytearray()
        async for chunk in request.stream():
            batch += chunk
            if len(batch) >= WRITE_BATCH:
                await run_in_threadpool(writer.write, bytes(batch))
                batch.clear()
        await run_in_threadpool(writer.write, bytes(batch))
        return await run_in_threadpool(writer.commit)
    except (ClientDisconnect, asyncio.CancelledError):  # cut off: kept to resume from, if it can be (Rule 7)
        keep = getattr(writer, "keep", None)
        (keep or writer.abort)()
        raise
    except BaseException:  # refused, or the store failed: keep nothing
        writer.abort()
        raise


def _stored_whole(request: Request, blobs: BlobStore, sha256: str, size: int) -> None:
    blobs_stored(request, [(sha256, size)])
    partials = getattr(blobs, "partials", None)
    if partials is not None:
        partials.drop(sha256)  # Rule 7


@router.get("/v1/blobs/{sha256}", summary="Download a blob (one Range: bytes=N- resumes)",
            response_class=StreamingResponse,
            responses={200: {"description": "The blob's bytes.", "content": _BINARY},
                       206: {"description": "The range asked for (`Content-Range`).", "content": _BINARY},
                       **error_responses(401, 403, 404, 416)})
def get_blob(sha256: Sha, request: Request, blobs: Blobs, _: Annotated[Token, Depends(blob_reader)]) -> Response:
    size = blobs.size(sha256)
    if size is None:
        raise ApiProblem(404, "not_found", f"there is no blob {sha256}")
    headers = {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=31536000, immutable"}
    first, last = _range(request.headers.get("range"), size)
    if first is not None and first >= size:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    status, start, end = (200, 0, size) if first is None else (206, first, last + 1)
    if status == 206:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    if end - start > WHOLE_BLOB and _sendfile_ok(request, blobs):
        return _BlobResponse(blobs, sha256, start, end, status, headers)
    return _stream(blobs, sha256, start, end, status, headers)


@router.get("/v1/blobs/{sha256}/arriving", summary="A blob as it arrives: an upload in progress streamed as it is "
            "written (verify its hash), else the stored blob; waits up to `wait` s for either",
            response_class=StreamingResponse,
            responses={200: {"description": "The blob's bytes, as they are written (chunked).", "content": _BINARY},
                       **error_responses(401, 403, 404)})
async def get_arriving_blob(sha256: Sha, request: Request, blobs: Blobs, token: Annotated[Token, Depends(blob_reader)],
                            wait: Annotated[float, Query(ge=0, le=MAX_FETCH_WAIT)] = 20.0) -> Response:
    """``arriving.py`` Rules 2-4."""
    hub = request.app.state.owncdn.hub
    deadline = time.monotonic() + wait
    while True:
        since = hub.generation(BLOBS_TOPIC)  # before looking (hub Rule 3)
        growing = growing_blobs(request.app).get(sha256)
        if growing is not None and growing.state != "failed" and _sendfile_ok(request, blobs):
            sender = RawSender.attach(request.scope)
            if sender is not None:
                return GrowingResponse(blobs, growing, sender)
        if await run_in_threadpool(blobs.size, sha256) is not None:
            return await run_in_threadpool(get_blob, sha256, request, blobs, token)
        left = deadline - time.monotonic()
        if left <= 0:
            raise ApiProblem(404, "not_found", f"there is no blob {sha256}, and none arrived within {wait:g}s")
        await hub.wait(BLOBS_TOPIC, min(RECHECK_SECONDS, left), since)


def _range(value: str | None, size: int) -> tuple[int | None, int]:
    """``(first, last)`` of one ``bytes=N-`` / ``bytes=N-M`` range, else ``(None, 0)``."""
    match = _RANGE.fullmatch((value or "").strip())
    if match is None:
        return None, 0
    first = int(match.group(1))
    if match.group(2) and int(match.group(2)) < first:
        return None, 0  # not a valid range: ignored (RFC 9110 section 14.2)
    last = int(match.group(2)) if match.group(2) else size - 1
    return first, min(last, size - 1)


def _stream(blobs: BlobStore, sha256: str, start: int, end: int, status: int, headers: dict) -> Response:
    try:
        chunks = blobs.read(sha256, start)
    except BlobNotFound:
        raise ApiProblem(404, "not_found", f"there is no blob {sha256}") from None
    headers["Content-Length"] = str(end - start)
    if end - start <= WHOLE_BLOB:  # read here, in the endpoint's worker thread: no hop per chunk
        body = b"".join(_limit(chunks, end - start))
        return Response(body, status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(_batched(_limit(chunks, end - start)), status_code=status, headers=headers,
                             media_type="application/octet-stream")


class _BlobResponse(Response):
    """Bytes ``[start, end)`` of one large blob, chunked, straight from its file to the
    socket (Rule 6, ``sendfile.py``); through ASGI when that cannot be used now."""

    media_type = "application/octet-stream"

    def __init__(self, blobs: BlobStore, sha: str, start: int, end: int, status: int, headers: dict) -> None:
        self.blobs, self.sha, self.start, self.end = blobs, sha, start, end
        self.status_code = status
        self.background = None
        self.raw_headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        self.raw_headers += [(b"content-type", b"application/octet-stream"), (b"transfer-encoding", b"chunked")]

    async def __call__(self, scope, receive, send) -> None:
        sender = RawSender.attach(scope)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if sender is not None and sender.ready():
                if not await sender.chunk(self.blobs, [(b"", self.sha, self.start, self.end - self.start)]):
                    return  # the client went away
            else:
                chunks = await run_in_threadpool(self.blobs.read, self.sha, self.start)
                async for batch in _batched(_limit(chunks, self.end - self.start)):
                    await send({"type": "http.response.body", "body": batch, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if sender is not None:
                sender.close()


async def _batched(pieces):
    """A sync iterator of byte pieces as an async one, at least half ``SEND_BATCH``
    bytes per worker thread step (Rule 6): a thread hop per 0.5-1 MiB rather than per
    file or per chunk, and a piece read whole (``_read_piece``, nearly ``SEND_BATCH``)
    is not joined with the next (that join, 2 MiB fresh each time, had been about a
    tenth of the control plane's CPU with 3 edges fetching, perf)."""
    try:
        while batch := await run_in_threadpool(_take, pieces, SEND_BATCH // 2):
            yield batch
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def _take(pieces, want: int) -> bytes | memoryview:
    out, size = [], 0
    for piece in pieces:
        out.append(piece)
        size += len(piece)
        if size >= want:
            break
    return out[0] if len(out) == 1 else b"".join(out)


def _limit(chunks, remaining: int):
    for chunk in chunks:
        if remaining <= 0:
            break
        yield chunk[:remaining]
        remaining -= len(chunk)
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


@router.post("/v1/blobs/bundle", response_model=BundleStored, summary="Upload many blobs in one body (a bundle)",
             responses=error_responses(400, 401, 403, 413, 422))
async def put_bundle(request: Request, blobs: Blobs, _: Annotated[Token, Depends(require("deploy"))]) -> BundleStored:
    """The body is records ``<sha256> <size>\\n<bytes>``, one per blob (Rule 4)."""
    stored = await receive_bundle(request, blobs)
    return BundleStored(stored=stored, bytes=sum(b.size for b in stored))


async def receive_bundle(request: Request, blobs: BlobStore, first=None, first_limit: int = 0,
                         first_raw=None) -> list[BlobStored]:
    """Store the blobs of a bundle body as they arrive (Rule 4); the blobs stored, in
    order. With ``first`` (an async callable), the first record is not stored but
    handed to ``first(sha256, data)`` whole once it ends (at most ``first_limit``
    bytes, else 413); what it raises ends the upload before any blob is stored.
    Into a directory store the body goes to a ``BundleSink`` (Rule 4c), read raw on a
    plain HTTP/1.1 connection, else through ASGI (``asgibody.py``); ``first_raw`` (a
    plain callable), if given, is then called instead of ``first``, in the thread
    that feeds the sink (``rawbody`` Rule 6), and the blobs are made durable there
    too (a release is made of them next: ``uploadsink`` Rule 3). Into another store
    (S3) the blobs are stored one by one as they arrive (``_BundleUpload``)."""
    raw = (RawBody.attach(request) or AsgiBody(request)) if hasattr(blobs, "part") else None
    if raw is not None:
        if first_raw is not None:
            take = lambda sha, data: raw.unlocked(first_raw, sha, data)  # noqa: E731
        else:
            take = first and (lambda sha, data: raw.call(first, sha, data))
        sink = BundleSink(blobs, take, first_limit, landing=lambda items: blobs_stored(request, items),
                          length=_length(request))
        try:
            return await raw.run(sink)
        except (BundleError, BlobError) as exc:
            raise _refusal(exc, sink.stored) from None
        finally:
            if sink.stored:  # again if they landed before their flush: a fetch that began
                blobs_stored(request, [(b.sha256, b.size) for b in sink.stored])  # meanwhile missed them (Rule 4b)
    reader = BundleReader(views=True)  # views of the received bytes: a blob is joined (or not) once
    upload = _BundleUpload(blobs)
    stored = upload.stored
    head: bytearray | None = bytearray() if first is not None else None
    try:
        async for chunk in request.stream():
            for event in reader.feed(chunk):
                if head is None:
                    await upload.on(event)
                elif isinstance(event, BlobStart) and event.size > first_limit:
                    raise ApiProblem(413, "too_large", f"the first record has {event.size} bytes, more than {first_limit}")
                elif isinstance(event, BlobData):
                    head += event.data
                elif isinstance(event, BlobEnd):
                    data, head = bytes(head), None
                    await first(event.sha256, data)
        reader.close()
        if head is not None:
            raise BundleError("the bundle is empty; its first record is required")
        await upload.flush(0)
    except (BundleError, BlobMismatch, BlobTooLarge) as exc:
        raise _refusal(exc, stored) from None
    finally:
        await upload.abort()
        if stored:
            blobs_stored(request, [(b.sha256, b.size) for b in stored])
    return stored


def _length(request: Request) -> int:
    """The body's ``Content-Length``; 0 when it has none (chunked) or a bad one."""
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else 0


def _refusal(exc: Exception, stored: list) -> Exception:
    """The answer to a bundle refused part-way (Rule 4); other errors as they are."""
    if isinstance(exc, BundleError):
        return ApiProblem(400, "bad_bundle", f"{exc}; {_kept(stored)}")
    if isinstance(exc, BlobMismatch):  # its own "nothing was stored" is of the blob; this says it of the bundle
        return ApiProblem(400, "hash_mismatch", f"{str(exc).removesuffix('; nothing was stored')}; {_kept(stored)}")
    if isinstance(exc, BlobTooLarge):
        return ApiProblem(413, "too_large", f"{exc}{TOO_LARGE_HINT}; {_kept(stored)}")
    return exc


TOO_LARGE_HINT = " (the control plane's --max-blob-size)"


def _kept(stored: list) -> str:
    return f"the {len(stored)} blob(s) before it were stored" if stored else "nothing was stored"


class _BundleUpload:
    """Store the blobs of a bundle into a store without packs (S3) as their events
    arrive: small ones whole, in groups (up to ``GROUP_BLOBS`` / ``GROUP_BYTES``)
    stored in one worker-thread step each, up to ``STORING`` groups at once; large
    ones streamed to a writer in 1 MiB batches. ``stored`` lists the blobs stored, in
    bundle order, up to the first that failed."""

    STORING = 4
    GROUP_BLOBS = 64
    GROUP_BYTES = 2 << 20

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self.sha = ""
        self.buffer = bytearray()
        self.writer = None
        self.stored: list[BlobStored] = []
        self.storing: list[asyncio.Future] = []
        self.parts: list[bytes] = []  # the pieces of the small blob being received
        self.group: list[tuple[str, bytes]] = []
        self.group_bytes = 0

    async def drain(self, keep: int) -> None:
        """Wait for the oldest groups being stored until at most ``keep`` are left."""
        while len(self.storing) > keep:
            stored, error = await self.storing.pop(0)
            self.stored.extend(stored)
            if error is not None:
                raise error

    async def flush(self, keep: int) -> None:
        """Start storing the small blobs received so far, then ``drain(keep)``."""
        if self.group:
            group, self.group, self.group_bytes = self.group, [], 0
            self.storing.append(asyncio.ensure_future(run_in_threadpool(self._store_group, group)))
        await self.drain(keep)

    async def on(self, event) -> None:
        if self.writer is None:  # a small blob: its pieces are joined once, at its end
            if isinstance(event, BlobData):
                self.parts.append(event.data)
                return
            if isinstance(event, BlobEnd):
                data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
                self.parts = []
                self.group.append((event.sha256, data))
                self.group_bytes += len(data)
                if len(self.group) >= self.GROUP_BLOBS or self.group_bytes >= self.GROUP_BYTES:
                    await self.flush(self.STORING)
                return
        if isinstance(event, BlobStart):
            self.parts = []
            if event.size > WHOLE_BLOB:
                await self.flush(0)  # ``stored`` keeps bundle order
        done = await self._on(event)
        if done is not None:
            self.stored.append(done)

    def _store_group(self, group: list[tuple[str, bytes]]) -> tuple[list[BlobStored], BlobError | None]:
        out: list[BlobStored] = []
        for sha, data in group:
            writer = self.blobs.writer(sha)
            try:
                writer.write(data)
                out.append(BlobStored(sha256=sha, size=writer.commit()))
            except BlobError as exc:
                return out, exc
        return out, None

    async def _on(self, event) -> BlobStored | None:
        if isinstance(event, BlobStart):
            self.sha, self.buffer = event.sha256, bytearray()
            if event.size > WHOLE_BLOB:
                self.writer = await run_in_threadpool(self.blobs.writer, event.sha256)
        elif isinstance(event, BlobData):
            self.buffer += event.data
            if self.writer is not None and len(self.buffer) >= WRITE_BATCH:
                await run_in_threadpool(self.writer.write, bytes(self.buffer))
                self.buffer.clear()
        elif isinstance(event, BlobEnd):
            size = await run_in_threadpool(self._finish, bytes(self.buffer))
            self.writer, self.buffer = None, bytearray()
            return BlobStored(sha256=event.sha256, size=size)
        return None

    def _finish(self, rest: bytes) -> int:
        writer = self.writer or self.blobs.writer(self.sha)
        self.writer = writer
        writer.write(rest)
        return writer.commit()

    async def abort(self) -> None:
        """After the last event or an error: the small blobs received whole are stored
        (each checked), the large one is dropped."""
        if self.group:
            group, self.group = self.group, []
            self.storing.append(asyncio.ensure_future(run_in_threadpool(self._store_group, group)))
        if self.storing:
            await asyncio.gather(*self.storing, return_exceptions=True)
            self.storing.clear()
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


@router.post("/v1/blobs/fetch", summary="Download many blobs in one body (a bundle)", response_class=StreamingResponse,
             responses={200: {"description": "The blobs, as a bundle (in the order asked, or as they lie in the store's packs).", "content": _BUNDLE},
                        **error_responses(401, 403, 404, 422)})
def fetch_bundle(body: FetchIn, request: Request, blobs: Blobs, _: Annotated[Token, Depends(blob_reader)]) -> Response:
    """Records ``<sha256> <size>\\n<bytes>`` for the blobs asked (repeats dropped); 404
    listing the missing ones, before anything is sent; with ``wait``, Rule 4b."""
    _check_hashes(body.hashes)
    raw = _sendfile_ok(request, blobs)
    if body.wait > 0:
        rounds = _arriving(request, blobs, list(dict.fromkeys(body.hashes)), body.wait)
        if raw:
            return _BundleResponse(blobs, rounds)
        return StreamingResponse(_records(blobs, rounds), media_type=BUNDLE_TYPE)
    sizes = blobs.sizes(body.hashes)
    missing = [sha for sha, size in sizes.items() if size is None]
    if missing:
        raise ApiProblem(404, "missing_blobs", f"{len(missing)} of the blobs asked for do not exist (listed in 'problems')", missing)
    if raw:
        return _BundleResponse(blobs, _once(sizes))
    length = sum(len(header(sha, size)) + size for sha, size in sizes.items())
    return StreamingResponse(_batched(_bundle(blobs, sizes)), media_type=BUNDLE_TYPE,
                             headers={"Content-Length": str(length)})


def _sendfile_ok(request: Request, blobs: BlobStore) -> bool:
    """Whether a download may go by ``sendfile`` (Rule 6): a directory store, a
    connection ``with_transport`` reached, and HTTP/1.1 (chunked coding)."""
    scope = request.scope
    return hasattr(blobs, "open_blob") and scope.get("http_version") == "1.1" and TRANSPORT in scope.get("extensions", {})


class _BundleResponse(Response):
    """A chunked bundle whose records go straight from the blob files to the socket
    (Rule 6, ``sendfile.py``); through ASGI when that cannot be used now. ``rounds``
    yields ``{sha: size}`` of blobs to send, each round one chunk."""

    media_type = BUNDLE_TYPE

    def __init__(self, blobs: BlobStore, rounds) -> None:
        self.blobs, self.rounds = blobs, rounds
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", BUNDLE_TYPE.encode()), (b"transfer-encoding", b"chunked")]

    async def __call__(self, scope, receive, send) -> None:
        sender = RawSender.attach(scope)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if sender is not None and not sender.ready():
                sender.close()
                sender = None
            async for present in self.rounds:
                if sender is None:
                    async for batch in _batched(_bundle(self.blobs, present)):
                        await send({"type": "http.response.body", "body": batch, "more_body": True})
                elif not await sender.records(self.blobs, list(present.items())):
                    return  # the client went away
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if sender is not None:
                sender.close()
            await self.rounds.aclose()


async def _once(sizes: dict[str, int]):
    yield sizes


async def _records(blobs: BlobStore, rounds):
    """The bytes of the records of ``rounds`` (ASGI path)."""
    try:
        async for present in rounds:
            async for batch in _batched(_bundle(blobs, present)):
                yield batch
    finally:
        await rounds.aclose()


def _bundle(blobs: BlobStore, sizes: dict[str, int]):
    """The bundle's bytes in pieces (Rule 6)."""
    items = list(sizes.items())
    i = 0
    while i < len(items):
        sha, size = items[i]
        if size > SEND_BATCH or not hasattr(blobs, "read_into"):  # streamed in chunks
            yield header(sha, size)
            yield from _limit(blobs.read(sha), size)
            i += 1
            continue
        batch, room = [], SEND_BATCH  # small blobs of a directory store: read into one piece
        while i < len(items) and items[i][1] <= SEND_BATCH and (not batch or items[i][1] <= room):
            batch.append((items[i][0], header(*items[i]), items[i][1]))
            room -= len(batch[-1][1]) + items[i][1]
            i += 1
        yield _read_piece(blobs, batch)


def _read_piece(blobs, batch: list[tuple[str, bytes, int]]) -> memoryview:
    """Records of small blobs ``(sha, header, size)`` read into one buffer (Rule 6)."""
    view, at = memoryview(bytearray(sum(len(head) + size for _, head, size in batch))), 0
    for sha, head, size in batch:
        view[at:at + len(head)] = head
        at += len(head)
        blobs.read_into(sha, view[at:at + size])
        at += size
    return view


async def _arriving(request: Request, blobs: BlobStore, hashes: list[str], wait: float):
    """Rule 4b: ``{sha: size}`` of the blobs present, then of those that land, until
    all were sent or ``wait`` seconds passed. After the first look, the blobs the log
    says landed are taken from it (no store look-up, no worker thread), and all of
    them are looked up again on each re-check."""
    hub, log = request.app.state.owncdn.hub, landed(request)
    deadline = time.monotonic() + wait
    remaining = dict.fromkeys(hashes)
    cursor, look, arrived = log.since(log.seq)[0], list(remaining), {}
    while remaining and not hub.closed:
        since = hub.generation(BLOBS_TOPIC)  # before looking (hub Rule 3)
        sizes = await run_in_threadpool(blobs.sizes, look) if look else {}
        present = {sha: size for sha, size in sizes.items() if size is not None}
        present.update(arrived)
        if present:
            yield present
            for sha in present:
                del remaining[sha]
        left = deadline - time.monotonic()
        if not remaining or left <= 0:
            return
        woken = await hub.wait(BLOBS_TOPIC, min(RECHECK_SECONDS, left), since)
        cursor, new = log.since(cursor)
        if new is None or not woken:
            look, arrived = list(remaining), {}
        else:
            look, arrived = [], {sha: size for sha, size in new.items() if sha in remaining}
