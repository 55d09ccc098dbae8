"""Pushing a directory as a release: hash, ask, upload what is missing, create.

    result = push_site(Client(url, token), "./public", service="blog", env="staging")
    result.release["number"], result.blobs_uploaded, result.bytes_uploaded

Rules:
1. The directory is walked by ``sitedir.walk_site`` (paths checked, symlinks kept
   inside, limits enforced; hidden names and ``Limits.exclude`` left out, listed in
   ``PushResult.left_out``: ``sitedir`` Rule 10) before anything is read or sent.
2. The control plane is asked which blobs it lacks; only those are uploaded, by
   ``parallel`` threads (``client/workers.py``: plain ones, begun in order; once an
   upload failed no other is begun, and the push fails with the first error): blobs up
   to ``SMALL_BLOB`` go in bundles (many blobs per request, up to ``BUNDLE_BYTES`` /
   ``BUNDLE_BLOBS``; ``owncdn.core.content.bundle``), larger ones one ``PUT`` each,
   streamed from the file. Each bundle costs the control plane a request, a pack and
   its fsyncs, and the edges waiting for its blobs get them every few MiB received
   (``uploadsink`` Rule 3), so bundles are large: 16 MiB / 1,024 blobs instead of 4 MiB
   / 256 took `bench/push.py`'s first push, 8 alternating pairs of fresh fleets, from a
   median of 0.307 to 0.266 s, the control plane's CPU from 0.19 to 0.15 s. A blob
   stored by an earlier push that broke half-way is not sent again. With ``PushApi`` a
   bundle's files go out with ``sendfile`` (or from memory, Rule 11), never read again
   into this process (``pushapi`` Rule 4); with ``Client`` they are read straight into
   its body, a buffer each thread reuses, so its bundles stay at ``READ_BUNDLE_BYTES``.
3. The release is created last, once every upload ended. Until then nothing changes
   for visitors: a push that fails or is interrupted (also while the directory is
   still being hashed, Rule 9) leaves the previous release current everywhere.
4. If the control plane still reports missing blobs when the release is created
   (another client raced, or a store lost one), those are uploaded and the release
   is created once more.
5. With ``cache`` (a ``HashCache``), files unchanged since the last push from this
   directory are not hashed again (``sitedir`` rule 6). The cache is saved once the
   push ended, if the directory was read to its end (also when the push failed after
   that: the hashes are right either way; a push whose directory could not be read
   keeps the cache it found); with ``save_cache=False`` the caller saves it (`owncdn
   push --wait` does while it waits for the edges).
6. ``progress(n)`` is called with the bytes of each upload chunk as it is sent, from
   the upload threads, and never before ``on_plan`` (a streamed push, Rule 9, holds
   back what was sent before every question was answered and reports it then).
7. A push from a directory pushed before (the hash cache answered for some files)
   guesses that the blobs read again are the new ones: when they are few and small
   (up to ``INLINE_BYTES`` / ``INLINE_BLOBS``) the release is created in one request
   with them inline (``POST .../releases/bundle``, the manifest first). Blobs the
   control plane still lacks after that (a wrong guess) are uploaded as in Rule 2 and
   the release is created again; a control plane without that endpoint gets Rules 2-4.
   A wrong guess costs bytes (a blob sent that was there), never correctness: the
   control plane checks every blob of the manifest before it stores the release.
8. An upload of ``ANNOUNCE_BYTES`` or more (Rule 2) announces the release (``POST
   .../releases/upcoming``, with a client that has ``announce_release``): the edges
   fetch its blobs while they are uploaded, instead of after the release is created.
   The announcement is the upload threads' first task, sent while the first bundles go
   out rather than before them (waiting for its answer, 10-20 ms in `bench/push.py`,
   left the control plane without a bundle to receive meanwhile); in a streamed push
   (Rule 9) it needs the whole manifest, so it is sent from the calling thread once
   the directory is hashed (the upload threads are busy then), unless by then every
   question was answered and what was found missing and what is not asked about yet
   (the last blobs hashed) hold less than ``ANNOUNCE_BYTES``. If it is refused (an
   unknown service), the uploads not yet begun are not sent and the push fails with
   that error (a streamed push may have stored some blobs by then, as a push that
   broke does). An announcement changes nothing the edges serve; a control plane
   without that endpoint is simply not told.
10. A push from a directory whose last push created a release at the same control
   plane, environment and service (the hash cache remembers its id: ``hashcache.py``
   Rule 6) sends, in Rule 7's bundle, the manifest as its changes from that release's
   (``core/content/changes.py``: the files the cache remembers against the manifest),
   named by the new manifest's id. A control plane that does not hold that manifest, or
   whose result does not hash to that id, refuses it (409 ``unknown_base`` /
   ``changes_mismatch``; one that takes no ``base`` reads it as a manifest and refuses
   that) and the whole manifest goes in the same bundle, as before. For a site of
   100,000 files a one-file push sent 111 bytes of changes instead of 11 MB of manifest.
9. A push that hashes more than ``INLINE_BLOBS`` files or ``INLINE_BYTES`` (a first
   push, a cold hash cache: Rule 7 could not hold its new blobs) is streamed: the
   questions and uploads of Rule 2 run while the directory is hashed. The blobs are
   asked about as they become known (those the cache answered, then each file hashed,
   each blob once), the first ``STREAM_FILES`` / ``STREAM_BYTES`` together and each
   question after that twice as large as the one before; an upload thread asks and
   adds that answer's bundles to the uploads (questions are begun before waiting
   uploads; the calling thread asks the last one itself, after the announcement).
   ``bench/push.py``'s first push (1,065 files, 67 MB) in process, 6 runs each: the
   first bundle begins 15-26 ms after the push began instead of 41-58 ms; the hashing
   takes 35-60 ms instead of 24-33 ms (it shares the client's core with the uploads'
   ``sendfile``), so the announcement leaves at 41-83 ms instead of 40-56 ms. The
   `owncdn push` command until the 3 edges' acknowledgements, 20-21 runs each on a
   busy machine: median 0.631 s against 0.694 s, for about 10 ms more client CPU.
11. A streamed push (Rule 9) keeps the bytes of small files as they are hashed
   (``sitedir`` Rule 9, at most ``KEEP_BYTES`` at once): with ``PushApi`` a bundle sends
   those from memory, many records in one ``sendmsg`` (``http11`` Rule 5), instead of
   a ``sendfile`` each from the file opened again; the bytes of blobs the control plane
   has already are dropped when it says so. A first push of the Python docs (1,065
   files, 786 of them up to 64 KiB: 16 MB), sender and receiver together on this machine:
   about 64 ms of CPU instead of 74.
12. With ``keep`` (a list), the ``Walk`` of the directory (its rows, and once hashed its
   ``Site``) is appended to it: a caller that is about to end its process without
   freeing anything (`owncdn push`) so keeps the walk from being freed when the push
   returns. Without it nothing of the walk outlives the push.
13. ``on_walk(walk)`` is called once the directory is walked, before any file is read
   (``walk.todo_bytes``: what is left to hash), and ``hashed(size)`` as each of those
   files is hashed, in the hashing thread, whatever the push then does: a large first
   push uploads while it hashes (Rule 9) and knows what to upload only at the end, so
   without these a progress bar showed nothing until the whole directory was read.
14. ``comment`` (why the release was pushed) goes with every create the push makes
   (``?comment=``, ``releases`` Rule 16).
15. A large blob (one ``PUT``, Rule 2) the control plane kept a part of from an upload
   that broke (``pushapi`` Rule 6: said by the missing answer; large blobs a refused
   create names as missing, Rules 4 and 7, are asked about first) is sent from there, the
   kept bytes counted as sent for ``progress``. If its upload breaks (no answer: the
   connection lost or timed out), the push waits (``RESUME_PAUSE`` times the try's
   number: the control plane must notice the break to keep what came, or restart; one
   that has not yet is sent the whole blob, but the question itself makes it give up an
   upload whose client went quiet, ``control/api/inflight.py``, quiet meaning half a
   second, less than the first pause), asks again what is kept and sends the
   rest, up to ``RESUME_TRIES`` times (a question that gets no answer is such a try
   too); a resume the control
   plane cannot take (the partial gone, a store that keeps none, or the whole blob
   hashing wrong: the kept bytes spoilt) is sent again from what it then says it kept,
   or whole. Without ``partial`` on the client (an older one), nothing is resumed.
   ``bytes_uploaded`` counts the bytes sent, over every try; ``bytes_resumed`` those
   the control plane had kept and the push did not send again.
"""

from __future__ import annotations

import time

from owncdn.core.content.bundle import header
from owncdn.core.content.digest import sha256_hex
from owncdn.core.content.manifest import Manifest, entry_text

from .errors import ApiError
from .hashcache import HashCache
from .sitedir import Kept, Limits, Site, SiteError, Walk, walk_site

TYPE_CHECKING = False  # not from typing: `owncdn push` starts without importing it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import Any

    from .client import Client
    from .pushapi import PushApi

__all__ = ["PushResult", "push_site", "upload_blobs"]

SMALL_BLOB = 1 << 20
BUNDLE_BYTES = 16 << 20
BUNDLE_BLOBS = 1024
READ_BUNDLE_BYTES = 4 << 20  # Rule 2: with ``Client``, which reads a bundle into one buffer per thread
UPLOAD_CHUNK = 256 * 1024
INLINE_BYTES = 8 << 20
INLINE_BLOBS = 1000
ANNOUNCE_BYTES = 1 << 20
STREAM_FILES = 256  # Rule 9: the first question about blobs hashed, then twice as many each time
STREAM_BYTES = 4 << 20
KEEP_BYTES = 32 << 20  # Rule 11: small files' bytes held at once, hashed and not uploaded yet
RESUME_TRIES = 3  # Rule 15: a large blob's upload sent again after a break
RESUME_PAUSE = 1.0  # seconds, times the try's number, before each try again (6 s in all: a control plane restarting)


class PushResult:
    """What a push did (a plain class: `owncdn push` starts faster without ``dataclasses``,
    ``typing`` or ``collections``)."""

    __slots__ = ("release", "files", "bytes_total", "blobs_uploaded", "bytes_uploaded", "manifest_bytes", "seconds",
                 "left_out", "bytes_resumed", "rules")

    def __init__(self, release: dict[str, Any], files: int, bytes_total: int, blobs_uploaded: int,
                 bytes_uploaded: int, manifest_bytes: int, seconds: float) -> None:
        self.release, self.files, self.bytes_total = release, files, bytes_total
        self.blobs_uploaded, self.bytes_uploaded, self.manifest_bytes = blobs_uploaded, bytes_uploaded, manifest_bytes
        self.seconds = seconds
        self.left_out: list[tuple[str, str]] = []  # what the push left out of the directory (sitedir Rule 10)
        self.bytes_resumed = 0  # kept by the control plane from uploads that broke, not sent again (Rule 15)
        self.rules: dict[str, int] = {}  # _redirects / _headers at the top -> its rules (sitedir Rule 12)

    def __repr__(self) -> str:
        number = self.release.get("number") if isinstance(self.release, dict) else self.release
        return (f"PushResult(release={number}, files={self.files}, "
                f"blobs_uploaded={self.blobs_uploaded}, bytes_uploaded={self.bytes_uploaded}, "
                f"seconds={self.seconds:.3f})")

    @property
    def bytes_moved(self) -> int:
        """What went over the wire as content: uploaded blobs plus the manifest."""
        return self.bytes_uploaded + self.manifest_bytes


def push_site(client: Client | PushApi, root: str | Path, *, service: str, env: str = "production",
              limits: Limits = Limits(), parallel: int = 8,
              progress: Callable[[int], None] | None = None,
              on_plan: Callable[[Site, list[str]], None] | None = None,
              cache: HashCache | None = None, save_cache: bool = True, keep: list | None = None,
              on_walk: Callable[[Walk], None] | None = None, hashed: Callable[[int], None] | None = None,
              comment: str = "") -> PushResult:
    """Rules 1-9. ``on_plan(site, missing)`` is called once the upload is known; ``keep``
    is given what the push read (Rule 12); ``on_walk`` and ``hashed`` tell the hashing
    (Rule 13); ``comment`` (why) is kept with the release (Rule 14)."""
    started = time.perf_counter()
    resumed = getattr(client, "resumed", None)
    resumed_before = len(resumed) if resumed is not None else 0
    walk = walk_site(root, limits, cache)
    if keep is not None:
        keep.append(walk)
    if on_walk is not None:
        on_walk(walk)
    streamed = len(walk.todo) > INLINE_BLOBS or walk.todo_bytes > INLINE_BYTES  # Rule 9
    site = None if streamed else walk.hash(save=False, on_blob=None if hashed is None else _Hashed(walk, hashed))
    try:
        if streamed:
            result = _push_streamed(client, walk, service, env, parallel, progress, on_plan, started, hashed, comment)
        else:
            result = _push(client, site, service, env, parallel, progress, on_plan, started, cache, comment)
        if cache is not None and isinstance(result.release, dict) and isinstance(result.release.get("id"), str):
            cache.released_as(_where(client, env, service), result.release["id"])  # Rule 10
        result.left_out, result.rules = walk.left_out, walk.rules
        if resumed is not None:
            result.bytes_resumed = sum(resumed[resumed_before:])
        return result
    finally:
        if cache is not None and save_cache and walk.site is not None:  # a directory read to its end
            cache.save()


def _push(client, site: Site, service: str, env: str, parallel: int, progress: Callable[[int], None] | None,
          on_plan: Callable[[Site, list[str]], None] | None, started: float,
          cache: HashCache | None = None, comment: str = "") -> PushResult:
    manifest = site.manifest
    sizes = manifest.blobs if site.remembered else {}
    inline = _inline_guess(site, sizes)
    if inline is not None and hasattr(client, "create_release_with_blobs"):
        base = cache.base_for(_where(client, env, service)) if cache is not None else None
        done = _push_inline(client, site, sizes, inline, service, env, parallel, progress, on_plan,
                            (base, cache.old) if base is not None else None, comment)
        if done is not None:
            release, blobs, sent, manifest_bytes = done
            return PushResult(release=release, files=len(manifest.files), bytes_total=manifest.total_bytes,
                              blobs_uploaded=blobs, bytes_uploaded=sent, manifest_bytes=manifest_bytes,
                              seconds=time.perf_counter() - started)
    missing = client.missing_blobs(list(manifest.blobs))
    if on_plan is not None:
        on_plan(site, missing)
    body = manifest  # the clients encode it (PushApi: its canonical encoding, without json)
    sizes = manifest.blobs
    big = sum(sizes[sha] for sha in set(missing)) >= ANNOUNCE_BYTES
    uploaded = upload_blobs(client, site, missing, parallel, progress,
                            first=(lambda: _announce(client, env, service, body)) if big else None)
    try:
        release = client.create_release(env, service, body, comment=comment)
    except ApiError as exc:
        if exc.code != "missing_blobs":
            raise
        uploaded += _upload_named(client, site, exc, parallel, progress)[1]
        release = client.create_release(env, service, body, comment=comment)
    return PushResult(release=release, files=len(manifest.files), bytes_total=manifest.total_bytes,
                      blobs_uploaded=len(set(missing)), bytes_uploaded=uploaded,
                      manifest_bytes=len(body.canonical()) + len(b'{"manifest":}'),
                      seconds=time.perf_counter() - started)


def _push_streamed(client, walk: Walk, service: str, env: str, parallel: int,
                   progress: Callable[[int], None] | None, on_plan: Callable[[Site, list[str]], None] | None,
                   started: float, hashed: Callable[[int], None] | None = None, comment: str = "") -> PushResult:
    """Rule 9: the questions and uploads run while the directory is hashed."""
    from .workers import Workers

    workers = Workers(parallel)
    kept = Kept(KEEP_BYTES) if getattr(client, "sends_files", False) else None  # Rule 11
    stream = _Stream(client, workers, progress, kept)
    try:
        site = walk.hash(save=False, on_blob=stream.blob if hashed is None else _Hashed(walk, hashed, stream.blob),
                         kept=kept)
        body = site.manifest
        stream.announce(env, service, body)  # Rule 8, from this thread while the uploads go on
        stream.flush(here=True)  # the last question too: the upload threads are busy
        workers.close()
        workers.wait(lambda: stream.asking == 0)
        if on_plan is not None and stream.asking == 0:
            on_plan(site, [sha for sha, _, _ in stream.missing])
        stream.planned()
        uploaded = sum(workers.join())
    except BaseException as exc:
        workers.stop(exc)  # Rule 3: nothing more is sent; the threads end the request they are in
        raise
    try:
        release = client.create_release(env, service, body, comment=comment)
    except ApiError as exc:  # Rule 4
        if exc.code != "missing_blobs":
            raise
        uploaded += _upload_named(client, site, exc, parallel, progress)[1]
        release = client.create_release(env, service, body, comment=comment)
    manifest = site.manifest
    return PushResult(release=release, files=len(manifest.files), bytes_total=manifest.total_bytes,
                      blobs_uploaded=len(stream.missing), bytes_uploaded=uploaded,
                      manifest_bytes=len(body.canonical()) + len(b'{"manifest":}'),
                      seconds=time.perf_counter() - started)


class _Hashed:
    """Rule 13: ``on_blob`` for ``Walk.hash`` telling ``hashed(size)`` for each file read,
    then ``then(name, size, file)``. The files the hash cache answered for are told
    first (``sitedir`` Rule 8), ``walk.remembered`` of them: not read, not counted."""

    __slots__ = ("skip", "hashed", "then")

    def __init__(self, walk: Walk, hashed: Callable[[int], None], then: Callable[[str, int, str], None] | None = None):
        self.skip, self.hashed, self.then = walk.remembered, hashed, then

    def __call__(self, sha: str, size: int, source: str) -> None:
        if self.skip:
            self.skip -= 1
        else:
            self.hashed(size)
        if self.then is not None:
            self.then(sha, size, source)


class _Stream:
    """Rule 9's state: the blobs hashed and not asked about yet (``chunk``), the questions
    under way (``asking``), the blobs found missing, and progress held back until the
    upload's size is known."""

    def __init__(self, client, workers, progress: Callable[[int], None] | None, kept: Kept | None = None) -> None:
        self.client, self.workers, self.progress, self.kept = client, workers, progress, kept
        self.send = _sender(client, None if progress is None else self.report, kept)
        self.seen: set[str] = set()
        self.chunk: list[tuple[str, int, str]] = []
        self.chunk_bytes = 0
        self.max_files, self.max_bytes = STREAM_FILES, STREAM_BYTES
        self.asking = 0
        self.missing: list[tuple[str, int, str]] = []
        self.missing_bytes = 0
        self.held: int | None = 0  # progress not reported yet; None once planned

    def __repr__(self) -> str:
        return f"<_Stream seen={len(self.seen)} asking={self.asking} missing={len(self.missing)}>"

    def blob(self, sha: str, size: int, source: str) -> None:
        """A blob became known (in the hashing thread)."""
        if sha in self.seen:
            if self.kept is not None:
                self.kept.take(source)  # another file's bytes are sent for it (Rule 11)
            return
        self.seen.add(sha)
        self.chunk.append((sha, size, source))
        self.chunk_bytes += size
        if len(self.chunk) >= self.max_files or self.chunk_bytes >= self.max_bytes:
            self.flush()

    def flush(self, here: bool = False) -> None:
        """Ask about the blobs hashed so far (in an upload thread, or ``here``); the next
        chunk may be twice as large."""
        if not self.chunk:
            return
        chunk, self.chunk, self.chunk_bytes = self.chunk, [], 0
        self.max_files, self.max_bytes = self.max_files * 2, self.max_bytes * 2
        with self.workers.lock:
            self.asking += 1
        if here:
            self.ask(chunk)
        else:
            self.workers.add(lambda: self.ask(chunk), first=True)  # before the uploads of earlier answers

    def ask(self, chunk: list[tuple[str, int, str]]) -> int:
        """A task: which of these the control plane lacks; their uploads are added."""
        missing = set(self.client.missing_blobs([sha for sha, _, _ in chunk]))
        lacking = [blob for blob in chunk if blob[0] in missing]
        if self.kept is not None and len(lacking) < len(chunk):  # Rule 11: not sent, not kept
            for sha, _, source in chunk:
                if sha not in missing:
                    self.kept.take(source)
        for batch in _batches(lacking, self.client):
            self.workers.add(lambda batch=batch: self.send(batch))
        with self.workers.lock:
            self.missing += lacking
            self.missing_bytes += sum(size for _, size, _ in lacking)
            self.asking -= 1
            self.workers.changed()
        return 0

    def announce(self, env: str, service: str, body: Manifest | dict[str, Any]) -> None:
        """Rule 8: unless every answer came and the upload is small (what was found
        missing and what is not asked about yet)."""
        with self.workers.lock:
            small = self.asking == 0 and self.missing_bytes + self.chunk_bytes < ANNOUNCE_BYTES
        if not small and not self.workers.failed:  # after a failure the push ends: nothing to announce
            _announce(self.client, env, service, body)

    def report(self, n: int) -> None:
        with self.workers.lock:
            if self.held is not None:
                self.held += n
                return
        self.progress(n)

    def planned(self) -> None:
        """The upload's size is known (``on_plan`` called): report what was held back."""
        with self.workers.lock:
            held, self.held = self.held, None
        if held and self.progress is not None:
            self.progress(held)


def _announce(client, env: str, service: str, manifest: Manifest | dict[str, Any]) -> None:
    """Rule 8 (in an upload thread)."""
    if not hasattr(client, "announce_release"):
        return
    try:
        client.announce_release(env, service, manifest)
    except ApiError as exc:
        if not (exc.status in (404, 405) and exc.code in ("not_found", "method_not_allowed", "http_error")):
            raise  # e.g. an unknown service: said now, as creating the release would


def _inline_guess(site: Site, sizes: dict[str, int]) -> list[str] | None:
    """The blobs to send with the release (Rule 7), or None: ask which are missing."""
    if site.remembered == 0:
        return None
    fresh = sorted(site.fresh)
    if len(fresh) > INLINE_BLOBS or sum(sizes[sha] for sha in fresh) > INLINE_BYTES:
        return None
    return fresh


def _push_inline(client, site: Site, sizes: dict[str, int], inline: list[str], service: str, env: str,
                 parallel: int, progress: Callable[[int], None] | None,
                 on_plan: Callable[[Site, list[str]], None] | None,
                 base: tuple[str, dict[str, tuple]] | None = None,
                 comment: str = "") -> tuple[dict, int, int, int] | None:
    """Rule 7: ``(release, blobs sent, their bytes, manifest bytes)``, or None when the
    control plane has no release bundle endpoint. ``base``: Rule 10's (manifest id, the
    hash cache's entries of its files)."""
    if on_plan is not None:
        on_plan(site, inline)
    canonical = site.manifest.canonical()
    manifest_id = sha256_hex(canonical)  # the id, encoded once
    parts = [b"", canonical]
    for sha in inline:
        parts += [header(sha, sizes[sha]), _read(site.sources[sha])]
    sent = sum(sizes[sha] for sha in inline)
    manifest_bytes = 0
    if base is not None and base[0] != manifest_id:  # Rule 10
        parts[1] = _changes_record(base[1], site.manifest, site.hashed)
        parts[0] = header(manifest_id, len(parts[1]))
        try:
            release = client.create_release_with_blobs(env, service, b"".join(parts), base=base[0], comment=comment)
        except ApiError as exc:
            if exc.code not in _NOT_CHANGES:
                return _inline_failed(exc, client, site, inline, service, env, parallel, progress, sent,
                                      len(parts[1]) + len(canonical), comment)  # a create that follows sends it whole
            manifest_bytes, parts[1] = len(parts[1]), canonical  # the whole manifest, as before
        else:
            if progress is not None:
                progress(sent)
            return release, len(inline), sent, len(parts[1])
    parts[0] = header(manifest_id, len(canonical))
    try:
        release = client.create_release_with_blobs(env, service, b"".join(parts), comment=comment)
    except ApiError as exc:
        return _inline_failed(exc, client, site, inline, service, env, parallel, progress, sent,
                              manifest_bytes + len(canonical), comment)
    if progress is not None:
        progress(sent)
    return release, len(inline), sent, manifest_bytes + len(canonical)


_NOT_CHANGES = frozenset({  # Rule 10: the whole manifest is sent instead
    "unknown_base", "changes_mismatch",
    "hash_mismatch", "invalid_manifest",  # a control plane that takes no ``base`` read the changes as a manifest
})


def _changes_record(old: dict[str, tuple], manifest, hashed: list[str] | None = None) -> bytes:
    """Rule 10: ``{path: entry | null}`` (JSON, escaped as the canonical encoding is) from
    the files the hash cache remembers (``old``: its entries) to ``manifest``. ``hashed``:
    the paths of the files hashed this time, in path order, when the cache answered for
    the others (their entries are the cache's own: unchanged); only those are compared
    then (100,000 files, one changed: 40-45 ms -> 6.5 ms, most of it finding the files gone)."""
    from _json import encode_basestring as quote  # json.dumps's own escaping, without json

    files, out = manifest.files, []
    for path in (files if hashed is None else hashed):
        entry = files[path]
        was = old.get(path)
        if type(was) is not tuple or len(was) != 7 or was[5] != entry.sha256 or was[0] != entry.size:
            out.append(entry_text(path, entry.sha256, entry.size))
    out += [f"{quote(path)}:null" for path in old.keys() - files.keys() if type(path) is str]
    return ("{" + ",".join(out) + "}").encode()


def _where(client, env: str, service: str) -> str:
    """Rule 10: the control plane, environment and service a release was created at."""
    return f"{getattr(client, 'base_url', '')} {env} {service}"


def _changed_file(exc: ApiError, batch: list[tuple[str, int, str]]) -> str:
    """What to say when the control plane found a blob of ``batch`` hashing to another
    name: the file named, when the message names its blob."""
    text = str(exc)
    source = next((file for sha, _, file in batch if sha in text), None)
    if source is None:
        return f"a file changed while it was being pushed ({text}); push again"
    return f"{source} changed while it was being pushed (the control plane got other bytes than were hashed: {text}); push again"


def _inline_failed(exc: ApiError, client, site: Site, inline: list[str], service: str, env: str, parallel: int,
                   progress: Callable[[int], None] | None, sent: int,
                   manifest_bytes: int, comment: str = "") -> tuple[dict, int, int, int] | None:
    """Rule 7 when the release bundle was refused: the blobs it lacked uploaded and the
    release created again, None for a control plane without the endpoint, or the error."""
    if exc.code == "hash_mismatch":
        raise SiteError(f"a file changed while it was being pushed ({exc}); push again") from None
    if exc.code == "missing_blobs":  # the guess missed some: Rules 2 and 4
        if progress is not None:
            progress(sent)
        lacking, more = _upload_named(client, site, exc, parallel, progress)
        sent += more
        release = client.create_release(env, service, site.manifest.to_json(), comment=comment)
        return release, len(set(inline) | set(lacking)), sent, manifest_bytes
    if exc.status in (404, 405) and exc.code in ("not_found", "method_not_allowed", "http_error"):
        return None  # an older control plane: ask, upload, create
    raise exc


def upload_blobs(client: Client | PushApi, site: Site, hashes: list[str], parallel: int = 8,
                 progress: Callable[[int], None] | None = None, first: Callable[[], None] | None = None) -> int:
    """Upload these blobs of ``site`` (Rule 2); the bytes sent. ``first()`` is the upload
    threads' first task (Rule 8)."""
    sizes, sources = site.manifest.blobs, site.sources
    unknown = [h for h in hashes if h not in sources]
    if unknown:
        raise SiteError(f"the control plane asked for blob {unknown[0]}, which this push does not hold")
    send = _sender(client, progress)

    def task(batch: list[tuple[str, int, str]] | None) -> int:
        if batch is None:
            first()
            return 0
        return send(batch)

    blobs = [(sha, sizes[sha], sources[sha]) for sha in dict.fromkeys(hashes)]
    return sum(_in_threads(task, ([None] if first is not None else []) + _batches(blobs, client), parallel))


def _sender(client: Client | PushApi, progress: Callable[[int], None] | None,
            kept: Kept | None = None) -> Callable[[list[tuple[str, int, str]]], int]:
    """The upload of one batch of ``(sha, size, file)`` (Rule 2), called in the upload
    threads: the bytes sent; small files' bytes from ``kept`` (Rule 11)."""
    bodies: list[bytearray] = []  # bundle buffers, one per thread at a time (Rule 2)
    views = getattr(client, "takes_views", False)
    files = getattr(client, "sends_files", False)  # PushApi: the files go out with sendfile, not read here

    def send(batch: list[tuple[str, int, str]]) -> int:
        total = sum(size for _, size, _ in batch)
        try:
            if len(batch) == 1 and batch[0][1] > SMALL_BLOB:
                return _put_large(client, *batch[0], progress)
            if files:
                client.put_bundle_files(batch, kept)
            else:
                buf = bodies.pop() if bodies else bytearray()
                try:
                    buf, body = _bundle_body(buf, batch)
                    client.put_bundle(body if views else bytes(body))
                finally:
                    bodies.append(buf)
        except ApiError as exc:
            if exc.code == "hash_mismatch":
                raise SiteError(_changed_file(exc, batch)) from None
            raise
        if progress is not None:
            progress(total)
        return total

    return send


def _put_large(client: Client | PushApi, sha: str, size: int, source: str,
               progress: Callable[[int], None] | None) -> int:
    """Rule 15: one large blob, resumed from what the control plane kept, and again
    after a break; the bytes sent."""
    partial = getattr(client, "partial", None)
    offset = _kept(partial, sha, size)
    told = _Told(progress, offset)
    sent = 0
    for attempt in range(RESUME_TRIES + 1):
        chunks = None
        try:
            if attempt:
                time.sleep(RESUME_PAUSE * attempt)  # the control plane notices the break (or restarts)
                if not client.missing_blobs([sha]):
                    return sent  # stored meanwhile (another push)
                offset = _kept(partial, sha, size)
            chunks = _FileChunks(source, told, offset)
            client.put_blob(sha, chunks, size=size, **({"offset": offset} if offset else {}))
            return sent + chunks.sent
        except ApiError as exc:
            sent += chunks.sent if chunks is not None else 0
            if partial is None or attempt == RESUME_TRIES or not _resumable(exc, offset):
                raise
    return sent  # not reached


def _upload_named(client, site: Site, exc: ApiError, parallel: int,
                  progress: Callable[[int], None] | None) -> tuple[list[str], int]:
    """Rules 4 and 7: the blobs of this push a refused create (409 ``missing_blobs``)
    named, uploaded: ``(those blobs, bytes sent)``. Its large ones are asked about first
    (Rule 15: no missing answer covered them, and the control plane may keep a part of one)."""
    lacking = [h for h in exc.problems if h in site.sources]
    sizes = site.manifest.blobs
    large = [sha for sha in lacking if sizes.get(sha, 0) > SMALL_BLOB]
    if large and getattr(client, "partial", None) is not None:
        client.missing_blobs(large)
    return lacking, upload_blobs(client, site, lacking, parallel, progress)


def _kept(partial: dict[str, int] | None, sha: str, size: int) -> int:
    """Where a large blob's upload starts: what the control plane said it kept, if that
    is inside the blob (Rule 15)."""
    kept = partial.get(sha, 0) if partial is not None else 0
    return kept if 0 < kept < size else 0


def _resumable(exc: ApiError, offset: int) -> bool:
    """Rule 15: a break (no answer), or a resume the control plane could not take."""
    if exc.status == 0 and exc.code in ("unreachable", "timeout"):
        return True
    return offset > 0 and exc.code in ("partial_gone", "no_partial_uploads", "hash_mismatch")


class _Told:
    """Progress of one large blob: the bytes past the furthest told so far (Rule 15)."""

    def __init__(self, progress: Callable[[int], None] | None, kept: int) -> None:
        self.progress, self.at = progress, kept
        if progress is not None and kept:
            progress(kept)  # kept by the control plane: as good as sent

    def __call__(self, position: int) -> None:
        if position > self.at:
            if self.progress is not None:
                self.progress(position - self.at)
            self.at = position


def _in_threads(fn: Callable[[Any], Any], items: list, parallel: int) -> list:
    """``[fn(item) for item in items]`` in up to ``parallel`` threads, each taking the next
    item in order (Rule 2; ``workers`` Rules 1-2): once a call raised, no item is begun,
    and when every thread ended the first error in the items' order is raised."""
    from .workers import Workers

    workers = Workers(parallel)
    for item in items:
        workers.add(lambda item=item: fn(item))
    return workers.join()


def _batches(blobs: list[tuple[str, int, str]], client) -> list[list[tuple[str, int, str]]]:
    """Large blobs alone; small ones in bundles (Rule 2), smaller ones for a client that
    reads a bundle into memory."""
    out: list[list[tuple[str, int, str]]] = []
    bundle: list[tuple[str, int, str]] = []
    limit = BUNDLE_BYTES if getattr(client, "sends_files", False) else READ_BUNDLE_BYTES
    room = limit
    for blob in blobs:
        size = blob[1]
        if size > SMALL_BLOB:
            out.append([blob])
            continue
        if bundle and (size > room or len(bundle) >= BUNDLE_BLOBS):
            out.append(bundle)
            bundle, room = [], limit
        bundle.append(blob)
        room -= size
    if bundle:
        out.append(bundle)
    return out


def _bundle_body(buf: bytearray, blobs: list[tuple[str, int, str]]) -> tuple[bytearray, memoryview]:
    """The bundle of these ``(sha, size, file)`` read into ``buf`` (grown if too small):
    the buffer and a view of the body. A file that no longer has its size is refused."""
    heads = [header(sha, size) for sha, size, _ in blobs]
    total = sum(map(len, heads)) + sum(size for _, size, _ in blobs)
    if len(buf) < total:
        buf = bytearray(max(total, READ_BUNDLE_BYTES + (64 << 10)))
    view, at = memoryview(buf), 0
    for head, (sha, size, source) in zip(heads, blobs):
        view[at:at + len(head)] = head
        at += len(head)
        _read_into(source, view[at:at + size])
        at += size
    return buf, view[:total]


def _read_into(source: str, into: memoryview) -> None:
    with open(source, "rb", buffering=0) as f:
        done = 0
        while done < len(into):
            n = f.readinto(into[done:])
            if not n:
                break
            done += n
        if done < len(into) or f.read(1):
            raise SiteError(f"{source} changed while it was being pushed (its size is not the one hashed); push again")


def _read(source: str) -> bytes:
    with open(source, "rb") as f:
        return f.read()


class _FileChunks:
    """A file's bytes from ``start``, ``UPLOAD_CHUNK`` at a time; ``told(position)`` after
    each; ``sent``: the bytes handed out. A file whose size changed is not noticed here:
    the control plane's hash check refuses it."""

    def __init__(self, source: str, told: Callable[[int], None], start: int = 0) -> None:
        self.source, self.told, self.start, self.sent = source, told, start, 0

    def __iter__(self) -> Iterator[bytes]:
        with open(self.source, "rb") as f:
            if self.start:
                f.seek(self.start)
            while chunk := f.read(UPLOAD_CHUNK):
                self.sent += len(chunk)
                self.told(self.start + self.sent)
                yield chunk
