"""Pushing a directory as a release: hash, ask, upload what is missing, create.

    result = push_site(Client(url, token), "./public", service="blog", env="staging")
    result.release["number"], result.blobs_uploaded, result.bytes_uploaded

Rules:
1. The directory is read by ``sitedir.scan_site`` (paths checked, symlinks kept
   inside, limits enforced) before anything is sent.
2. The control plane is asked which blobs it lacks; only those are uploaded, by
   ``parallel`` threads (plain ones: ``concurrent.futures`` imports ``logging``, about 6
   ms of the command's start; once an upload failed no other is begun, and the push
   fails with the first error): blobs up to ``SMALL_BLOB`` go in bundles (many blobs per
   request, up to ``BUNDLE_BYTES`` / ``BUNDLE_BLOBS``; ``owncdn.core.content.bundle``),
   larger ones one ``PUT`` each, streamed from the file. A blob stored by an earlier
   push that broke half-way is not sent again. With ``PushApi`` a bundle's files go
   out with ``sendfile``, never read into this process (``pushapi`` Rule 4); with
   ``Client`` they are read straight into its body, a buffer each thread reuses.
3. The release is created last. Until then nothing changes for visitors: a push
   that fails or is interrupted leaves the previous release current everywhere.
4. If the control plane still reports missing blobs when the release is created
   (another client raced, or a store lost one), those are uploaded and the release
   is created once more.
5. With ``cache`` (a ``HashCache``), files unchanged since the last push from this
   directory are not hashed again (``sitedir`` rule 6). The cache is saved once the
   push ended (also when it failed: the hashes are right either way); with
   ``save_cache=False`` the caller saves it (`owncdn push --wait` does while it waits
   for the edges).
6. ``progress(n)`` is called with the bytes of each upload chunk as it is sent, from
   the upload threads.
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
   left the control plane without a bundle to receive meanwhile); if it is refused
   (an unknown service), the bundles not yet begun are not sent and the push fails
   with that error. An announcement changes nothing the edges serve; a control plane
   without that endpoint is simply not told.
"""

from __future__ import annotations

import time

from owncdn.core.content.bundle import header
from owncdn.core.content.digest import sha256_hex

from .errors import ApiError
from .hashcache import HashCache
from .sitedir import Limits, Site, SiteError, scan_site

TYPE_CHECKING = False  # not from typing: `owncdn push` starts without importing it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import Any

    from .client import Client
    from .pushapi import PushApi

__all__ = ["PushResult", "push_site", "upload_blobs"]

SMALL_BLOB = 1 << 20
BUNDLE_BYTES = 4 << 20
BUNDLE_BLOBS = 256
UPLOAD_CHUNK = 256 * 1024
INLINE_BYTES = 8 << 20
INLINE_BLOBS = 1000
ANNOUNCE_BYTES = 1 << 20


class PushResult:
    """What a push did (a plain class: `owncdn push` starts faster without ``dataclasses``,
    ``typing`` or ``collections``)."""

    __slots__ = ("release", "files", "bytes_total", "blobs_uploaded", "bytes_uploaded", "manifest_bytes", "seconds")

    def __init__(self, release: dict[str, Any], files: int, bytes_total: int, blobs_uploaded: int,
                 bytes_uploaded: int, manifest_bytes: int, seconds: float) -> None:
        self.release, self.files, self.bytes_total = release, files, bytes_total
        self.blobs_uploaded, self.bytes_uploaded, self.manifest_bytes = blobs_uploaded, bytes_uploaded, manifest_bytes
        self.seconds = seconds

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
              cache: HashCache | None = None, save_cache: bool = True) -> PushResult:
    """Rules 1-7. ``on_plan(site, missing)`` is called once the upload is known."""
    started = time.perf_counter()
    site = scan_site(root, limits, cache=cache, save=False)
    try:
        return _push(client, site, service, env, parallel, progress, on_plan, started)
    finally:
        if cache is not None and save_cache:
            cache.save()


def _push(client, site: Site, service: str, env: str, parallel: int, progress: Callable[[int], None] | None,
          on_plan: Callable[[Site, list[str]], None] | None, started: float) -> PushResult:
    manifest = site.manifest
    sizes = manifest.blobs if site.remembered else {}  # a dict built on each use: once here
    inline = _inline_guess(site, sizes)
    if inline is not None and hasattr(client, "create_release_with_blobs"):
        done = _push_inline(client, site, sizes, inline, service, env, parallel, progress, on_plan)
        if done is not None:
            release, blobs, sent, manifest_bytes = done
            return PushResult(release=release, files=len(manifest.files), bytes_total=manifest.total_bytes,
                              blobs_uploaded=blobs, bytes_uploaded=sent, manifest_bytes=manifest_bytes,
                              seconds=time.perf_counter() - started)
    missing = client.missing_blobs(list(manifest.blobs))
    if on_plan is not None:
        on_plan(site, missing)
    body = manifest.to_json()
    sizes = manifest.blobs  # a dict built on each use
    big = sum(sizes[sha] for sha in set(missing)) >= ANNOUNCE_BYTES
    uploaded = upload_blobs(client, site, missing, parallel, progress,
                            first=(lambda: _announce(client, env, service, body)) if big else None)
    try:
        release = client.create_release(env, service, body)
    except ApiError as exc:
        if exc.code != "missing_blobs":
            raise
        uploaded += upload_blobs(client, site, [h for h in exc.problems if h in site.sources], parallel, progress)
        release = client.create_release(env, service, body)
    import json  # not on the path of a push the hash cache answered for (Rule 7)

    return PushResult(release=release, files=len(manifest.files), bytes_total=manifest.total_bytes,
                      blobs_uploaded=len(set(missing)), bytes_uploaded=uploaded,
                      manifest_bytes=len(json.dumps({"manifest": body}, separators=(",", ":"))),
                      seconds=time.perf_counter() - started)


def _announce(client, env: str, service: str, manifest: dict[str, Any]) -> None:
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
                 on_plan: Callable[[Site, list[str]], None] | None) -> tuple[dict, int, int, int] | None:
    """Rule 7: ``(release, blobs sent, their bytes, manifest bytes)``, or None when the
    control plane has no release bundle endpoint."""
    if on_plan is not None:
        on_plan(site, inline)
    canonical = site.manifest.canonical()
    parts = [header(sha256_hex(canonical), len(canonical)), canonical]  # the id, encoded once
    for sha in inline:
        parts += [header(sha, sizes[sha]), _read(site.sources[sha])]
    sent = sum(sizes[sha] for sha in inline)
    try:
        release = client.create_release_with_blobs(env, service, b"".join(parts))
    except ApiError as exc:
        if exc.code == "hash_mismatch":
            raise SiteError(f"a file changed while it was being pushed ({exc}); push again") from None
        if exc.code == "missing_blobs":  # the guess missed some: Rules 2 and 4
            if progress is not None:
                progress(sent)
            lacking = [h for h in exc.problems if h in site.sources]
            sent += upload_blobs(client, site, lacking, parallel, progress)
            release = client.create_release(env, service, site.manifest.to_json())
            return release, len(set(inline) | set(lacking)), sent, len(canonical)
        if exc.status in (404, 405) and exc.code in ("not_found", "method_not_allowed", "http_error"):
            return None  # an older control plane: ask, upload, create
        raise
    if progress is not None:
        progress(sent)
    return release, len(inline), sent, len(canonical)


def upload_blobs(client: Client | PushApi, site: Site, hashes: list[str], parallel: int = 8,
                 progress: Callable[[int], None] | None = None, first: Callable[[], None] | None = None) -> int:
    """Upload these blobs of ``site`` (Rule 2); the bytes sent. ``first()`` is the upload
    threads' first task (Rule 8)."""
    sizes = site.manifest.blobs
    unknown = [h for h in hashes if h not in site.sources]
    if unknown:
        raise SiteError(f"the control plane asked for blob {unknown[0]}, which this push does not hold")

    bodies: list[bytearray] = []  # bundle buffers, one per thread at a time (Rule 2)
    views = getattr(client, "takes_views", False)
    files = getattr(client, "sends_files", False)  # PushApi: the files go out with sendfile, not read here

    def one(batch: list[str]) -> int:
        try:
            if len(batch) == 1 and sizes[batch[0]] > SMALL_BLOB:
                sha = batch[0]
                client.put_blob(sha, _chunks(site.sources[sha], progress), size=sizes[sha])
            elif files:
                client.put_bundle_files([(sha, sizes[sha], site.sources[sha]) for sha in batch])
                if progress is not None:
                    progress(sum(sizes[sha] for sha in batch))
            else:
                buf = bodies.pop() if bodies else bytearray()
                try:
                    buf, body = _bundle_body(buf, [(sha, sizes[sha], site.sources[sha]) for sha in batch])
                    client.put_bundle(body if views else bytes(body))
                finally:
                    bodies.append(buf)
                if progress is not None:
                    progress(sum(sizes[sha] for sha in batch))
        except ApiError as exc:
            if exc.code == "hash_mismatch":
                raise SiteError(f"a file changed while it was being pushed ({exc}); push again") from None
            raise
        return sum(sizes[sha] for sha in batch)

    def task(batch: list[str] | None) -> int:
        if batch is None:
            first()
            return 0
        return one(batch)

    return sum(_in_threads(task, ([None] if first is not None else []) + _batches(hashes, sizes), parallel))


def _in_threads(fn: Callable[[Any], Any], items: list, parallel: int) -> list:
    """``[fn(item) for item in items]`` in up to ``parallel`` threads, each taking the next
    item in order (Rule 2): once a call raised, no item is begun, and when every thread
    ended the first error in the items' order is raised."""
    import threading  # not concurrent.futures: with logging, about 6 ms of the command's start

    results: list = [None] * len(items)
    errors: dict[int, BaseException] = {}
    order = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while not errors:
            with lock:
                i = next(order, None)
            if i is None:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as exc:  # raised in the calling thread, below
                errors[i] = exc

    threads = [threading.Thread(target=work, name=f"owncdn-upload-{n}") for n in range(min(max(1, parallel), len(items)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException as exc:  # an interrupt: the threads end the request they are in and begin none
        errors[len(items)] = exc
        raise
    if errors:
        raise errors[min(errors)]
    return results


def _batches(hashes: list[str], sizes: dict[str, int]) -> list[list[str]]:
    """Large blobs alone; small ones in bundles (Rule 2)."""
    out: list[list[str]] = []
    bundle: list[str] = []
    room = BUNDLE_BYTES
    for sha in dict.fromkeys(hashes):
        size = sizes[sha]
        if size > SMALL_BLOB:
            out.append([sha])
            continue
        if bundle and (size > room or len(bundle) >= BUNDLE_BLOBS):
            out.append(bundle)
            bundle, room = [], BUNDLE_BYTES
        bundle.append(sha)
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
        buf = bytearray(max(total, BUNDLE_BYTES + (64 << 10)))
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


def _chunks(source: str, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    with open(source, "rb") as f:
        while chunk := f.read(UPLOAD_CHUNK):
            if progress is not None:
                progress(len(chunk))
            yield chunk
