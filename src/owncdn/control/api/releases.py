"""Releases of push services: create, list, activate; and what each node serves.

Rule 1: a release is created from a manifest (``owncdn.core.content``) whose every
blob is in the blob store already; otherwise 409 ``missing_blobs`` lists them in
``problems`` and nothing is stored. A path that could leave the release directory
is a 422 naming it.

Rule 2: the service must be in the environment's latest version with ``mode:
push`` (404 for an unknown service, 422 for a pull or redirect one).

Rule 3: a new release becomes current at once; ``activate`` makes an earlier (or
later) one current again without copying anything. Both wake the event streams, so
every edge hears of it through the ``release`` channel (``releasechannels``).

Rule 4: nodes report the release they switched to (``serving``) or could not
(``failed``, keeping the previous one); the listing shows which nodes serve what,
and DNS nodes hear which locations are ready through ``release_ready``.

Rule 5: ``POST .../releases/bundle`` creates a release and uploads its new blobs in
one request (a push of a few changed files is one round trip): the body is a bundle
(``owncdn.core.content.bundle``) whose first record is the manifest in its
canonical encoding, named by its id (its SHA-256), and whose other records are
blobs, stored as ``POST /v1/blobs/bundle`` stores them. The manifest and the service
are checked before any blob is stored (the service is read from the store while the
manifest arrives and is parsed: about 1 ms of a one-file push; the manifest's
problems are answered first, as before); then Rule 1 applies as for a JSON create. The
manifest's blobs are claimed (Rule 1's check) in a worker thread while the other
records arrive and are stored, and those missing then are looked at again once the
body ended (a push of one changed file: the 1,065 look-ups overlap its upload).

Rule 6: ``GET .../releases/{n}/status`` says which edges serve release ``n``, which
failed it (with their reasons) and which edges in contact (heard from within
``owncdn.core.contact.CONTACT_WINDOW`` seconds) do not serve it yet (with the error
an edge said it is retrying after: a ``retrying`` report, such as a full disk); with
``?wait=S`` (at most 300) the answer comes once none is left, or after S seconds, woken by each node report
and re-reading the store every second (reports may land on another replica). An
edge whose event stream ended (``events`` Rule 6) and that was not heard from since
is not waited for once ``owncdn.core.contact.RECONNECT_GRACE`` is over: it is
listed in ``disconnected`` instead (a stopped edge catches up when it comes back).

Rule 8: ``POST .../releases/upcoming?env=E`` (``deploy``) with ``{"manifest"}``
announces the release a push is about to upload the blobs of: the manifest and the
service are checked as for a create, nothing is stored, and the edges of ``env``
hear of it on ``release_upcoming`` (``releasechannels`` Rule 5) and fetch its blobs
as they land (``POST /v1/blobs/fetch`` with ``wait``). Creating the release with that
id ends the announcement; the release is still created and switched as in Rules 1
and 3, so an announcement changes when edges fetch, never what they serve.

Rule 9: the manifest of the release last created for a service here is kept in
memory (``RECENT_MANIFESTS`` services), and the next manifest for it is parsed
against it: its unchanged entries are not checked again (``parse_manifest`` with
``known``; any valid manifest gives the same result, so a stale one costs only time).
A manifest announced (Rule 8) is kept too, until a release of the service is
created, and is what the next one is parsed against: a first push's create, of the
manifest it announced, checks no entry again (about 2 ms for 1,065 files). A
control plane that holds none for a service (it restarted) reads the newest release
back from the store when a push names it as the base of its changes (Rule 15), so
that push and the edges' event go as changes too, not as the whole manifest.

Rule 10: the ``release`` event of a release created here carries the blobs it names
that the release created before it here did not (base64 by name, ``"blobs"``), when
they are ``INLINE_EVENT_BYTES`` or less in all and the blob store is a directory: an
edge that held the previous release then switches without a fetch round trip
(``edge/releasesync.py`` Rule 8). It is an offer, not the release: edges verify every
inline blob as a fetched one, and an event without them (another replica, a control
plane restarted, an activation, a larger change) is fetched as always. The blobs are
read before the release is stored and the channel told right after, so a stream woken
in between (which reads the store: the whole manifest, no blobs) is rare.

Rule 7: blob retention (``owncdn.core.content.retention``): the listing marks
each release ``retained`` (its blobs are kept by blob GC) or not; ``activate``
claims the release's blobs first and answers 409 ``release_pruned`` when blob GC
deleted some, leaving the current release as it was (push that content again). A
release whose manifest blob GC dropped (``blobgc`` Rule 5) is listed ``pruned`` (and not
retained); activating it is the same 409, and ``GET .../manifest`` answers 410
``release_pruned``.

Rule 12: a release bundle's manifest record is in its canonical encoding when
encoding the document read from it again (orjson, sorted keys) gives its bytes: a
valid manifest's document is ``to_json()`` of the manifest parsed from it, so those
bytes are its canonical encoding, whose SHA-256 (its id) is the record's name, checked
first. Making the manifest's canonical encoding from the parsed entries and hashing
it again took about 0.4 ms of a one-file push, before any blob was stored.

Rule 13: read raw (``rawbody``), a release bundle's manifest record is checked, and
its blobs claimed, in a thread of its own (``_CHECKS``), while the receiving thread
goes on receiving the blobs after it and writing them to temp files; none is stored
before the check passed, and a refused manifest removes them (``uploadsink`` Rule 4).
Checking 1,065 entries (about 1.3 ms) then overlaps the new blobs' arrival and their
fsync instead of coming before them, and the claim no longer goes through the event
loop to a worker thread.

Rule 14: the ``release`` event of a release created here right after another one
carries its changes from that one instead of its manifest when they are few
(``releasechannels`` Rule 8); ``GET .../releases/{n}/manifest`` answers the whole
manifest (its canonical encoding) to an edge that does not hold that one, and to any
token that may read releases.

Rule 15: ``POST .../releases/bundle?base=<id>`` takes the manifest as its changes
from manifest ``base`` (``core/content/changes.py``): the first record holds them
(``{path: entry | null}``, JSON) and is named by the id of the manifest they give.
``base`` must be the manifest of the release last created here for the service (Rule
9: held in memory), else 409 ``unknown_base``; changes that are not valid or do not
give that id are 409 ``changes_mismatch``. Either way nothing is stored and the client
sends the whole manifest. A one-file push to a site of 100,000 files then sends and
checks one entry instead of 11 MB of manifest. The new manifest's encoding (its id,
the text stored) is the base's edited at the changed paths (``changes.py`` Rule 6),
so Rule 9 keeps each manifest with its encoding.

Rule 16: both creates take ``?comment=`` (at most ``MAX_COMMENT`` characters, one line:
why the release was pushed, ``owncdn push -m``), kept with the release and listed with
it, as a config version keeps its own. A query parameter, so the JSON create and the
bundle (whose body is records) take it the same way. ``PUT .../releases/{n}/comment``
(``deploy``) with ``{"comment"}`` (the same rules) replaces it afterwards: a typo, or
why the release was rolled back; the release itself does not change.

Rule 11: the endpoints a push calls are coroutines that do their blocking work in
one worker-thread step (``run_in_threadpool``): FastAPI runs a plain function
endpoint in a worker thread and then, for its response model, validates the answer
in a second one; two hops per request, each a wait for the pool and the interpreter
lock while the uploads and the edges' downloads keep both cores busy.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import time
from typing import Annotated, NamedTuple

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from owncdn.control.blobs import BlobError, BlobStore
from owncdn.control.dirblobs import DirBlobStore
from owncdn.control.hub import RECHECK_SECONDS
from owncdn.control.alerts import alerts_of
from owncdn.control.store import NodeRelease, NotFound, Release, ReleasePruned, Token
from owncdn.core.alerts import release_alert
from owncdn.core.contact import AWAY, IN_CONTACT, contact_state
from owncdn.core.content import Manifest, ManifestError, parse_manifest
from owncdn.core.content.changes import apply_changes, encoded_as
from owncdn.core.content import pushable
from owncdn.core.content.retention import manifest_blobs, retained_numbers

from .auth import ApiContext, Ctx, node_token, require
from .blobgc import blob_retention
from .blobs import BUNDLE_TYPE, Blobs, receive_bundle
from .channels import state_changed
from .errors import ApiProblem, error_responses
from .nodes import existing_node
from .releasechannels import (
    INLINE_EVENT_BYTES, UPCOMING_SECONDS, announce_upcoming, changes_for, current_topic, expect_manifest, forget_upcoming,
    remember_manifest,
)
from .releaseschemas import (
    COMMENT_PATTERN, MAX_COMMENT, NodeReleaseIn, NodeReleaseOut, ReleaseComment, ReleaseCreate, ReleaseCreated,
    ReleaseFailure, ReleaseNode, ReleaseOut, ReleasePending, ReleaseStatus, ReleaseUpcoming,
)
from .schemas import ENV_PATTERN, utc

__all__ = ["router"]

router = APIRouter(tags=["push"])
ServiceName = Annotated[str, Path(min_length=1, max_length=200, description="The push service's name.")]
EnvQuery = Annotated[str, Query(pattern=ENV_PATTERN, description="Environment, e.g. `staging`.")]
CommentQuery = Annotated[str, Query(max_length=MAX_COMMENT, pattern=COMMENT_PATTERN,
                                    description="Why the release was pushed (Rule 16): one line, kept and listed with it.")]
Number = Annotated[int, Path(ge=1, description="Release number.")]
MAX_LISTED_MISSING = 10_000
_CHECKS = concurrent.futures.ThreadPoolExecutor(4, "manifest-check")  # Rule 13
MAX_MANIFEST_BYTES = 64 << 20
MAX_WAIT = 300.0
RECENT_MANIFESTS = 256


def _recent(ctx: ApiContext, env: str, service: str) -> Manifest | None:
    """Rule 9: the manifest of the release last created here for ``service``."""
    with ctx.recent_lock:
        return ctx.recent_manifests.get((env, service))


def _known(ctx: ApiContext, env: str, service: str) -> Manifest | None:
    """Rule 9: what a manifest for ``service`` is parsed against: the one last
    announced here, else the last created."""
    with ctx.recent_lock:
        recent = ctx.recent_manifests
        return recent.get((env, service, "announced")) or recent.get((env, service))


def _remember(ctx: ApiContext, env: str, service: str, manifest: Manifest, announced: bool = False) -> None:
    """Rule 9: keep ``manifest`` as the last created (or announced, dropped once a
    release is created), for ``RECENT_MANIFESTS`` services."""
    with ctx.recent_lock:
        recent = ctx.recent_manifests
        key = (env, service, "announced") if announced else (env, service)
        recent[key] = manifest
        recent.move_to_end(key)
        if not announced:
            recent.pop((env, service, "announced"), None)
        while len(recent) > RECENT_MANIFESTS:
            recent.popitem(last=False)


def _parsed(ctx: ApiContext, body: ReleaseCreate, env: str, name: str):
    """The body's manifest, or a 422 that says what is wrong with it."""
    try:
        return parse_manifest(body.manifest, _known(ctx, env, name))
    except ManifestError as exc:
        raise ApiProblem(422, "invalid_manifest", str(exc), exc.problems) from None


@router.post(
    "/v1/services/{name}/releases", status_code=201, response_model=ReleaseCreated,
    summary="Create a release from a manifest (it becomes current)",
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def create_release(name: ServiceName, body: ReleaseCreate, ctx: Ctx, blobs: Blobs,
                         token: Annotated[Token, Depends(require("deploy"))], env: EnvQuery = "production",
                         comment: CommentQuery = "") -> ReleaseCreated:
    return await run_in_threadpool(_create_from_json, ctx, env, name, body, blobs, token.name, comment)  # Rule 11


def _create_from_json(ctx: ApiContext, env: str, name: str, body: ReleaseCreate, blobs: BlobStore,
                      author: str, comment: str = "") -> ReleaseCreated:
    manifest = _parsed(ctx, body, env, name)
    _push_service(ctx, env, name)
    return _create(ctx, env, name, manifest, blobs, author, comment=comment)


@router.post(
    "/v1/services/{name}/releases/upcoming", status_code=202, response_model=ReleaseUpcoming,
    summary="Announce a release whose blobs are being uploaded (edges fetch them as they land)",
    responses=error_responses(400, 401, 403, 404, 422),
)
async def announce_release(name: ServiceName, body: ReleaseCreate, ctx: Ctx,
                           _: Annotated[Token, Depends(require("deploy"))], env: EnvQuery = "production") -> ReleaseUpcoming:
    """Rule 8 (Rule 11: one worker-thread step)."""
    return await run_in_threadpool(_announce, ctx, env, name, body)


def _announce(ctx: ApiContext, env: str, name: str, body: ReleaseCreate) -> ReleaseUpcoming:
    manifest = _parsed(ctx, body, env, name)
    _push_service(ctx, env, name)
    _remember(ctx, env, name, manifest, announced=True)  # Rule 9: the create is parsed against it
    if announce_upcoming(ctx, env, name, manifest.id, manifest.to_json()):
        state_changed(ctx, env, ("edge",))
    return ReleaseUpcoming(service=name, env=env, id=manifest.id, expires_in=UPCOMING_SECONDS)


@router.post(
    "/v1/services/{name}/releases/bundle", status_code=201, response_model=ReleaseCreated,
    summary="Create a release and upload its new blobs in one body (a bundle led by the manifest)",
    openapi_extra={"requestBody": {"content": {BUNDLE_TYPE: {"schema": {"type": "string", "format": "binary"}}},
                                   "required": True}},
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
async def create_release_with_blobs(name: ServiceName, request: Request, ctx: Ctx, blobs: Blobs,
                                    token: Annotated[Token, Depends(require("deploy"))],
                                    env: EnvQuery = "production",
                                    base: Annotated[str | None, Query(
                                        pattern="^[0-9a-f]{64}$",
                                        description="The id of a release's manifest: the first record then holds "
                                                    "the changes from it (Rule 15)")] = None,
                                    comment: CommentQuery = "") -> ReleaseCreated:
    """Rule 5: the first record is the manifest (canonical JSON, named by its id), or
    with ``base`` its changes from that manifest (Rule 15); the others are blobs."""
    got: list[tuple[Manifest, Encoded]] = []
    claims: list = []  # the claim: an asyncio future, or read raw a concurrent one (Rule 13)
    service = concurrent.futures.Future()  # Rule 2, read while the manifest arrives

    def check_service() -> None:
        try:
            _push_service(ctx, env, name)
            service.set_result(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the manifest's check
            service.set_exception(exc)

    asyncio.ensure_future(run_in_threadpool(check_service)).add_done_callback(_retrieved)

    def start_claim(manifest: Manifest) -> None:  # on the loop (a body read through ASGI)
        claim = asyncio.ensure_future(run_in_threadpool(blobs.claim, manifest.blobs))  # while the rest arrives
        claim.add_done_callback(_retrieved)  # read even if the upload fails first
        claims.append(claim)

    def check(sha: str, data: bytes) -> Manifest:
        if base is None:
            manifest, encoded = _manifest_record(ctx, env, name, sha, data)
        else:
            manifest, encoded = _changes_record(ctx, env, name, sha, data, base)
        service.result()  # raises its 404 or 422
        got.append((manifest, encoded))
        return manifest

    def check_raw(sha: str, data: bytes) -> concurrent.futures.Future:  # in the receiving thread (rawbody Rule 6)
        claim = _CHECKS.submit(lambda: blobs.claim(check(sha, data).blobs))  # Rule 13
        claims.append(claim)
        return claim  # the blobs after it wait for it to be stored (uploadsink Rule 4)

    async def take_manifest(sha: str, data: bytes) -> None:
        start_claim(await run_in_threadpool(check, sha, data))

    await receive_bundle(request, blobs, take_manifest, MAX_MANIFEST_BYTES, check_raw)
    claim = claims[0]  # read raw: ended, before receive_bundle did (uploadsink Rule 4)
    missing = claim.result() if isinstance(claim, concurrent.futures.Future) else await claim
    manifest, encoded = got[0]
    return await run_in_threadpool(_create, ctx, env, name, manifest, blobs, token.name, missing, encoded, comment)


def _retrieved(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _manifest_record(ctx: ApiContext, env: str, name: str, sha: str, data: bytes) -> tuple[Manifest, Encoded]:
    """The manifest of a release bundle, checked (Rule 5; the service, Rule 2, is
    checked meanwhile by the caller), the JSON document read and its text: being the
    manifest's canonical encoding, it is ``manifest.to_json()``, keys in the same order."""
    if hashlib.sha256(data).hexdigest() != sha:
        raise ApiProblem(400, "hash_mismatch", f"the manifest record does not hash to its name {sha}; nothing was stored")
    try:
        doc = orjson.loads(data)
        manifest = parse_manifest(doc, _known(ctx, env, name))
    except orjson.JSONDecodeError as exc:
        raise ApiProblem(422, "invalid_manifest", f"the manifest record is not JSON: {exc}") from None
    except ManifestError as exc:
        raise ApiProblem(422, "invalid_manifest", str(exc), exc.problems) from None
    if _canonical(doc, data):  # Rule 12
        manifest._id = sha  # its id: the SHA-256 of its canonical encoding, checked above
    elif manifest.id != sha:
        raise ApiProblem(422, "invalid_manifest", "the manifest record is not in its canonical encoding "
                         "(compact JSON, sorted keys, UTF-8); nothing was stored")
    manifest._text = data  # its canonical encoding either way: the next changes edit it (Rule 15)
    return manifest, Encoded(doc, data.decode())


def _changes_record(ctx: ApiContext, env: str, name: str, sha: str, data: bytes,
                    base: str) -> tuple[Manifest, Encoded]:
    """Rule 15: the manifest a release bundle's first record gives as its changes from
    manifest ``base``, which must hash to the record's name; its JSON and text."""
    known = _recent(ctx, env, name) or _stored(ctx, env, name, base)
    if known is None or known.id != base:
        raise ApiProblem(409, "unknown_base", f"this control plane does not hold manifest {base[:12]} of '{name}' "
                         "in memory; send the whole manifest (nothing was stored)")
    try:
        changes = orjson.loads(data)
        manifest = apply_changes(known, changes)
        text = encoded_as(manifest, sha, known, changes)  # edited from the base's encoding
    except (orjson.JSONDecodeError, ManifestError) as exc:
        raise ApiProblem(409, "changes_mismatch", f"the changes do not give manifest {sha[:12]} from {base[:12]} "
                         f"({exc}); send the whole manifest (nothing was stored)") from None
    return manifest, Encoded(None, text.decode(), (base, list(changes)))


class Encoded(NamedTuple):
    """A manifest record as read: its JSON document (None when not made: the text goes
    to the store and the edges), its canonical text, and for changes (Rule 15) the base
    id and the paths they name."""

    doc: dict | None
    text: str
    came_as: tuple[str, list[str]] | None = None


def _stored(ctx: ApiContext, env: str, name: str, want: str) -> Manifest | None:
    """Rule 9: the manifest of the newest release of ``name`` read back from the store,
    when its id is ``want`` (kept in memory from then on); else None."""
    newest = ctx.store.list_releases(env, name, limit=1)
    if not newest or newest[0].id != want:
        return None
    release = ctx.store.get_release(env, name, newest[0].number)
    try:
        manifest = parse_manifest(release.manifest) if release is not None and release.manifest is not None else None
    except ManifestError:  # not one this control plane would store: the client sends it whole
        return None
    if manifest is None or manifest.id != want:  # its encoding made here, kept with it (changes.py Rule 6)
        return None
    with ctx.recent_lock:  # not if a release was created meanwhile
        if (env, name) in ctx.recent_manifests:
            return None
    _remember(ctx, env, name, manifest)
    return manifest


def _canonical(doc: dict, data: bytes) -> bool:
    """Rule 12: whether ``data`` is the canonical encoding of ``doc``, a valid manifest's
    JSON as read (False also when orjson cannot encode it: the id then decides)."""
    try:
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) == data
    except TypeError:
        return False


def _create(ctx: ApiContext, env: str, name: str, manifest: Manifest, blobs: BlobStore, author: str,
            unclaimed: list[str] | None = None, encoded: Encoded | None = None, comment: str = "") -> ReleaseCreated:
    """Rules 1 and 3, once the manifest and the service are checked. ``unclaimed``: the
    blobs a claim of the whole manifest just found missing (Rule 5), looked at again;
    ``encoded``: the manifest's JSON and its canonical text, when the caller has them
    (a release bundle's manifest record: not made again, about 0.6 ms)."""
    named = manifest.blobs
    # present ones marked wanted: blob GC keeps them (blobgc Rule 2)
    missing = blobs.claim(named if unclaimed is None else unclaimed)
    if missing:
        raise ApiProblem(409, "missing_blobs",
                         f"{len(missing)} blob(s) of this manifest are not uploaded yet (listed in 'problems'); "
                         "PUT /v1/blobs/{sha256} each, then create the release again (`owncdn push` again "
                         "does both)", missing[:MAX_LISTED_MISSING])
    blobs.sync(named)  # every blob durable before a release names it
    body, text, came_as = encoded if encoded is not None else (manifest.to_json(), manifest.canonical().decode(), None)
    previous = _recent(ctx, env, name)
    inline = _inline_blobs(blobs, manifest, previous)  # Rule 10: read before the release is stored
    named = came_as[1] if came_as is not None and previous is not None and previous.id == came_as[0] else None
    changes = changes_for(previous, manifest, named)  # Rule 14
    expect_manifest(ctx, env, name, manifest.id, body, inline, text, changes)  # no store read, from now on
    release = ctx.store.add_release(env, name, body, manifest.id, len(manifest.files),
                                    manifest.total_bytes, author=author, manifest_text=text, comment=comment)
    remember_manifest(ctx, env, name, release.number, release.id)
    _remember(ctx, env, name, manifest)  # Rule 9
    forget_upcoming(ctx, env, name, release.id)  # Rule 8: announced, now real
    _changed(ctx, env, name, current=True)
    return ReleaseCreated(service=name, env=env, number=release.number, id=release.id,
                          files=release.files, bytes=release.bytes)


@router.get(
    "/v1/services/{name}/releases/{number}/status", response_model=ReleaseStatus,
    summary="Which edges serve a release; with ?wait=S, answered once every edge in contact did (or failed)",
    responses=error_responses(401, 403, 404, 422),
)
async def release_status(
    name: ServiceName, number: Number, ctx: Ctx, _: Annotated[Token, Depends(require("read", "deploy"))],
    env: EnvQuery = "production",
    wait: Annotated[float | None, Query(gt=0, le=MAX_WAIT, description="Wait up to this many seconds until no edge in contact is left to answer.")] = None,
) -> ReleaseStatus:
    """Rule 6."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (wait or 0)
    topic = release_topic(env, name)
    exists = True  # checked by the first read
    while True:
        since = ctx.hub.generation(topic)  # before reading the store (hub Rule 3)
        status = await run_in_threadpool(_status, ctx, env, name, number, False, exists)
        exists = False
        remaining = deadline - loop.time()
        if status.complete or remaining <= 0 or ctx.hub.closed:
            if not status.complete:  # else _status read it already
                status.current = await run_in_threadpool(_is_current, ctx, env, name, number)
            return status
        await ctx.hub.wait(topic, min(RECHECK_SECONDS, remaining), since)


def _exists(ctx: ApiContext, env: str, name: str, number: int) -> None:
    """404 for a release that does not exist (checked once per request, not per wake-up;
    its manifest is not read)."""
    if not ctx.store.has_release(env, name, number):
        raise ApiProblem(404, "not_found", f"service '{name}' in '{env}' has no release {number}")


def _status(ctx: ApiContext, env: str, name: str, number: int, current: bool = True,
            exists: bool = False) -> ReleaseStatus:
    """Rule 6; whether the release is current is read only when ``current`` or when no
    edge is left to wait for (a wait's wake-ups before that do not need it); with
    ``exists``, first a 404 when there is no such release. One read transaction
    (``Store.reading``)."""
    with ctx.store.reading():
        if exists:
            _exists(ctx, env, name, number)
        return _status_read(ctx, env, name, number, current)


def _status_read(ctx: ApiContext, env: str, name: str, number: int, current: bool) -> ReleaseStatus:
    now = time.time()
    serving, failed, pending, disconnected = [], [], [], []
    for edge in ctx.store.release_progress(env, name):  # one query (releasestore Rule 7)
        who = ReleaseNode(node_id=str(edge.node_id), name=edge.name, location=edge.location)
        if edge.serving == number:
            serving.append(who)
        elif edge.number == number and edge.status == "failed":
            failed.append(ReleaseFailure(**who.model_dump(), reason=edge.reason))
        elif edge.number is not None and edge.number > number:
            continue  # it has moved on to a newer release: nothing to wait for
        else:  # owncdn.core.contact: in contact, its event stream gone (Rule 6), or away
            state = contact_state(edge.last_contact, edge.stream_ended_at, now)
            if state == IN_CONTACT:
                retrying = edge.number == number and edge.status == "retrying"
                pending.append(ReleasePending(**who.model_dump(), reason=edge.reason if retrying else ""))
            elif state != AWAY:
                disconnected.append(who)
    is_current = _is_current(ctx, env, name, number) if current or not pending else False
    return ReleaseStatus(number=number, current=is_current, serving=serving, failed=failed,
                         pending=pending, complete=not pending, disconnected=disconnected)


def _is_current(ctx: ApiContext, env: str, name: str, number: int) -> bool:
    return ctx.store.current_release_number(env, name) == number


@router.get(
    "/v1/services/{name}/releases", response_model=list[ReleaseOut],
    summary="List releases, newest first, with the current one and the nodes serving each",
    responses=error_responses(401, 403, 404, 422),
)
def list_releases(name: ServiceName, request: Request, ctx: Ctx, _: Annotated[Token, Depends(require("read", "deploy"))],
                  env: EnvQuery = "production",
                  limit: Annotated[int, Query(ge=1, le=1000, description="Most releases to return.")] = 50,
                  only_current: Annotated[bool, Query(alias="current", description="Only the current release (none: an empty list), however old.")] = False,
                  ) -> list[ReleaseOut]:
    current, serving, retained = _standing(ctx, request, env, name)
    if only_current:
        listed = ctx.store.list_releases(env, name, 1, number=current) if current is not None else []
    else:
        listed = ctx.store.list_releases(env, name, limit)
    if not listed:  # a name mistyped says so; a service dropped from the config still lists its releases
        latest = ctx.store.latest_number(env)
        modes = _service_modes(ctx, env, latest)
        if name not in modes:
            raise ApiProblem(404, "unknown_service", pushable.unknown(env, name, modes, _envs(ctx, latest)))
    return [_out(r, current, serving.get(r.number, []), r.number in retained) for r in listed]


@router.get(
    "/v1/services/{name}/releases/{number}/manifest",
    summary="A release's manifest, in its canonical encoding (its SHA-256 is the release id)",
    responses={**error_responses(401, 403, 404, 410, 422),
               200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
def release_manifest(name: ServiceName, number: Number, ctx: Ctx,
                     _: Annotated[Token, Depends(require("read", "deploy", "node"))],
                     env: EnvQuery = "production") -> Response:
    """Rule 14."""
    found = ctx.store.get_release(env, name, number)
    if found is None:
        raise ApiProblem(404, "not_found", f"service '{name}' in '{env}' has no release {number}")
    if found.pruned_at is not None:  # Rule 7
        raise ApiProblem(410, "release_pruned", f"release {number} of '{name}' in '{env}' was pruned by blob GC "
                         "(it was outside the retention): its manifest is gone")
    return Response(orjson.dumps(found.manifest, option=orjson.OPT_SORT_KEYS), media_type="application/json")


@router.post(
    "/v1/services/{name}/releases/{number}/activate", response_model=ReleaseOut,
    summary="Make a release current again (rollback, roll forward)", responses=error_responses(401, 403, 404, 409, 422),
)
def activate_release(name: ServiceName, number: Number, ctx: Ctx, blobs: Blobs,
                     token: Annotated[Token, Depends(require("deploy"))], env: EnvQuery = "production") -> ReleaseOut:
    found = ctx.store.get_release(env, name, number)
    if found is None:
        numbers = [r.number for r in ctx.store.list_releases(env, name, 1)]
        known = f"the newest is {numbers[0]}" if numbers else "it has no releases"
        raise ApiProblem(404, "not_found", f"service '{name}' in '{env}' has no release {number}; {known}")
    if found.pruned_at is not None:  # Rule 7
        raise _pruned(env, name, number, "blob GC dropped its manifest")
    gone = blobs.claim(manifest_blobs(found.manifest or {}))  # Rule 7
    if gone:
        raise _pruned(env, name, number, f"blob GC deleted {len(gone)} of its blobs", gone[:MAX_LISTED_MISSING])
    try:
        release = ctx.store.activate_release(env, name, number, author=token.name)
    except ReleasePruned:  # by a GC pass since it was read
        raise _pruned(env, name, number, "blob GC dropped its manifest") from None
    _changed(ctx, env, name, current=True)
    return _out(release, number, [], True)


@router.put(
    "/v1/services/{name}/releases/{number}/comment", response_model=ReleaseOut,
    summary="Replace a release's comment (why it was pushed, or what became of it)",
    responses=error_responses(401, 403, 404, 422),
)
def comment_release(name: ServiceName, number: Number, body: ReleaseComment, request: Request, ctx: Ctx,
                    _: Annotated[Token, Depends(require("deploy"))], env: EnvQuery = "production") -> ReleaseOut:
    """Rule 16."""
    try:
        release = ctx.store.set_release_comment(env, name, number, body.comment)
    except NotFound:
        raise ApiProblem(404, "not_found", f"service '{name}' in '{env}' has no release {number}") from None
    current, serving, retained = _standing(ctx, request, env, name)
    return _out(release, current, serving.get(number, []), number in retained)


@router.post(
    "/v1/nodes/{node_id}/releases", response_model=NodeReleaseOut,
    summary="Report the release a node serves, failed to switch to, or is retrying to fetch", responses=error_responses(400, 401, 403, 404, 422),
)
async def report_release(node_id: str, body: NodeReleaseIn, ctx: Ctx, request: Request,
                         _: Annotated[Token, Depends(node_token)]) -> NodeReleaseOut:
    out, row = await run_in_threadpool(_report, ctx, node_id, body)  # Rule 11
    alert = release_alert(row.env, body.service, body.number, row.name, body.status, body.reason)
    alerts = alerts_of(request.app)
    if alert is not None and alerts is not None:  # core/alerts.py Rule 5
        alerts.raise_alert(alert)
    return out


def _report(ctx: ApiContext, node_id: str, body: NodeReleaseIn) -> tuple[NodeReleaseOut, NodeRelease]:
    try:  # the node is read in the report's own transaction
        row = ctx.store.report_node_release(node_id, body.service, body.number, body.status, body.reason)
    except NotFound:
        existing_node(ctx, node_id)  # its 404
        raise
    _changed(ctx, row.env, body.service)  # DNS nodes follow which locations are ready (release_ready)
    return NodeReleaseOut(node_id=node_id, service=row.service, number=row.number, status=row.status,
                          serving=row.serving), row


def _inline_blobs(blobs: BlobStore, manifest: Manifest, previous: Manifest | None) -> dict[str, str] | None:
    """Rule 10: the blobs ``manifest`` names that ``previous`` (the release last created
    here) did not, base64-encoded by name, when they are ``INLINE_EVENT_BYTES`` or less
    in all and the store reads them locally; else None."""
    if previous is None or not isinstance(blobs, DirBlobStore):
        return None
    old = previous.blobs
    new = {sha: size for sha, size in manifest.blobs.items() if sha not in old}
    if not new or sum(new.values()) > INLINE_EVENT_BYTES:
        return None
    out = {}
    for sha, size in new.items():
        data = bytearray(size)
        try:
            blobs.read_into(sha, memoryview(data))
        except BlobError:  # gone meanwhile: the edges fetch (and are told) as always
            return None
        out[sha] = base64.b64encode(data).decode("ascii")
    return out


def release_topic(env: str, service: str) -> str:
    """The hub topic notified when a release of ``service`` is made current or reported on."""
    return f"releases/{env}/{service}"


def _changed(ctx: ApiContext, env: str, service: str, current: bool = False) -> None:
    """Wake the event streams that may see a change (channels Rule 3) and the status
    waits of ``service``, each topic notified by name (a stream or wait between two
    waits would otherwise sleep until its next re-check: hub Rule 3 needs the
    generation to move). ``current``: a release was made current, so the edges'
    ``release`` channel reads the current releases again (releasechannels Rule 4)
    and every stream of the environment wakes (its topic; the dashboard's stream
    waits on it too); else (a node's report) only DNS nodes' ``release_ready`` can
    change, so edge streams sleep on."""
    if current:
        ctx.hub.notify(current_topic(env))
        ctx.hub.notify(env)
    else:
        state_changed(ctx, env, ("dns",))
    ctx.hub.notify(release_topic(env, service))


def _push_service(ctx: ApiContext, env: str, name: str) -> None:
    """Rule 2. Versions never change, so the services of each are read once
    (``ApiContext.service_modes``); a push reads only the latest version's number."""
    latest = ctx.store.latest_number(env)
    modes = _service_modes(ctx, env, latest)
    refused = pushable.refusal(env, name, modes, _envs(ctx, latest))
    if refused is not None:
        raise ApiProblem(*refused)


def _envs(ctx: ApiContext, latest: int) -> list[str] | None:
    """For a refusal's words (``pushable`` Rule 2): the environments with a config version,
    read only when the one asked about has none (``latest``, its newest number, is 0)."""
    return None if latest else ctx.store.version_envs()


def _service_modes(ctx: ApiContext, env: str, number: int) -> dict[str, str]:
    """Service name -> mode in version ``number`` of ``env`` (none for 0)."""
    modes = ctx.service_modes.get((env, number))
    if modes is None:
        version = ctx.store.get_version(env, number) if number else None
        services = (version.snapshot or {}).get("services") or [] if version is not None else []
        modes = {s.get("name"): s.get("mode", "pull") for s in services}
        if len(ctx.service_modes) > 256:
            ctx.service_modes.clear()
        ctx.service_modes[(env, number)] = modes
    return modes


def _pruned(env: str, name: str, number: int, what: str, problems: list[str] | None = None) -> ApiProblem:
    """Rule 7's 409."""
    return ApiProblem(409, "release_pruned",
                      f"release {number} of '{name}' in '{env}' can no longer be activated: {what} (it was outside "
                      "the retention); the current release is unchanged. Push that content again to make it a new "
                      "release", problems)


def _standing(ctx: ApiContext, request: Request, env: str, name: str) -> tuple[int | None, dict, set[int]]:
    """What a listing shows beside each release: the current number, the nodes serving
    each, and the numbers blob GC keeps (Rule 7)."""
    current = ctx.store.current_release_number(env, name)
    serving: dict[int, list[ReleaseNode]] = {}
    for row in ctx.store.node_releases(env, name):
        if row.serving is not None:
            serving.setdefault(row.serving, []).append(ReleaseNode(node_id=row.node_id, name=row.name, location=row.location))
    numbers = ctx.store.release_numbers(env, name).get((env, name), [])
    return current, serving, retained_numbers(numbers, current, serving, blob_retention(request).keep)


def _out(release: Release, current: int | None, nodes: list[ReleaseNode], retained: bool) -> ReleaseOut:
    return ReleaseOut(number=release.number, id=release.id, files=release.files, bytes=release.bytes,
                      author=release.author, comment=release.comment, created=utc(release.created_at),
                      current=release.number == current,
                      nodes=nodes, retained=retained and release.pruned_at is None,
                      pruned=release.pruned_at is not None)
