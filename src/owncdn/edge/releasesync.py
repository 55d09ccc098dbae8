"""Following pushed releases: fetch the blobs an edge lacks, verify, switch, acknowledge.

The control plane sends a ``release`` event per push service on the node's event
stream (a state channel, ``edge/sync.py`` rule 7): ``{"key", "service", "number",
"id", "manifest"}``, the same with ``"base"`` and ``"changes"`` instead of the
manifest (Rule 9), or ``{"key", "deleted": true}``.

Rules:
1. The event handler only records the target (in memory: ``ReleaseStore.begin_pending``)
   and starts a background task for the service; the event stream never waits for
   blobs or files. A thread writes the target's release file ahead (releases.py rule
   2: ``releases/<service>.pending.json``, fsynced, while the blobs are fetched; an
   edge that stops meanwhile waits for it in ``close``), and the task waits for it
   before the switch, which is then a rename. A newer target for the same service
   cancels an unfinished task; the same target again (events are resent on every
   reconnect) changes nothing.
2. A task fetches the missing blobs with the node token, over keep-alive connections
   of the edge's own HTTP/1.1 client (``upstream.py``), at most ``PARALLEL`` requests
   at a time across all services. Blobs up to ``BUNDLE_BLOB`` come in bundles
   (``POST /v1/blobs/fetch``, up to ``BUNDLE_BYTES`` / ``BUNDLE_BLOBS`` per request,
   ``owncdn.core.content.bundle``), each received by one worker thread on a blocking
   keep-alive connection of its own (``bundlefetch.py``: ``recv_into`` one reused
   buffer, every blob hashed and written from views of it as it arrives, the blobs
   of a bundle back to back into one pack: ``packs.py``). Where releases.py rule 6
   holds (see Rule 7) a verified blob gets its index record and is held at once, and
   a bundle whose blobs all came and matched is done then, before the end of its body
   is read (``bundlefetch.py`` rule 8: the thread reads it and keeps the connection
   meanwhile); elsewhere the bundle's pack and records are made durable when it ends
   (or is cut off) and only then held (blobhold.py ``end_pack``: two fsyncs per
   bundle). Either way a bundle cut off midway, or cancelled, keeps
   the blobs before the cut and the next round asks only for the rest. Larger blobs (and every blob when the control plane has no bundle
   endpoint) come one ``GET /v1/blobs/{sha256}`` each, received as bundles are by a
   worker thread (``blobdownload.py``) into ``partial/<sha>.part``; after an interruption (a dropped connection, a restart)
   such a fetch resumes with ``Range: bytes=N-`` and a 206. Every blob's digest (BLAKE3,
   or SHA-256 for a name without ``-b3``: ``core/content/digest.py``) is computed over
   all its bytes and compared with its name before the blob is kept (blobhold.py rule 1).
3. Network trouble, and a disk that is full or failing, is retried with backoff (0.5 s
   doubling to 10 s) as long as the target is wanted. Each time the kind of trouble
   changes (``trouble_kind``: the disk's error, else the error's type; not the count
   of blobs left, so a control plane restarting alerts once, not at every round) it is
   reported to the control plane as ``retrying`` with ``retry_reason`` (the edge's disk
   named as such; not queued when it cannot be sent: it says how things are, not
   what was done), so `owncdn push --wait` and the release status
   say why an edge is not serving yet rather than only that it is not. The first time
   a target's fetches find no space left, the blobs only the releases switched from
   name (kept for an instant rollback) are collected first, and the fetches go on at
   once: the newest release matters more than a copy of the one before it, and a
   rollback to that one fetches its blobs again. A blob whose bytes do not match its
   hash is refetched from the start, up to ``VERIFY_ATTEMPTS`` times; a blob the
   control plane does not have
   (404) or keeps sending wrong fails the release: it is acknowledged ``failed`` with
   the reason and the previous release keeps serving.
4. With every blob present the release is switched (releases.py rule 2), then
   acknowledged ``serving`` with ``POST /v1/nodes/{id}/releases`` (over the same
   keep-alive client as the blobs), then, ``WARM_DELAY`` seconds later, warmed
   (``on_live``: ``edge/static.py`` rule 6, also for every release loaded at start);
   unused blobs are collected. The delay is for machines that run several edges
   (`owncdn up`, the push benchmark): there the warm-ups of the edges that switched
   first (about 17 ms of CPU each for the Python docs' 1,000 heads) took the CPU the
   others needed to fetch, switch and acknowledge (one-file push to 3 edges, median
   94 -> 81 ms); a visitor within the delay builds the head it needs itself, as
   before warm-ups existed. The release switched from is let go of only then, before
   the warm-up: freeing what it held (the heads built for about a thousand files, the
   release before it) took 1-3 ms between the switch and the acknowledgement. An
   acknowledgement that cannot be sent is queued with the agent's unsent reports and
   sent after the next connect.
5. At start, every pending target is resumed (partial files are kept), so a fetch
   killed midway finishes after a restart while the old release keeps serving.
6. A ``release_upcoming`` event (``{"key", "service", "id", "manifest"}``: a push is
   uploading the blobs of that manifest) starts a prefetch: the blobs this edge
   lacks (up to ``PREFETCH_BLOB``) are asked for with ``POST /v1/blobs/fetch`` and
   ``"wait"`` (one bundle per ``PREFETCH_BYTES``), so the control plane sends each as
   it lands; each larger one with ``GET /v1/blobs/{sha256}/arriving?wait=`` at the
   same time, so its bytes come as its upload writes them (``control/api/arriving.py``;
   a cut answer or wrong bytes are left to the release's fetch, which resumes the
   partial file or starts it over); they are verified and kept as in Rule 2 while
   the upload goes on. A prefetch switches nothing: only a ``release`` event does
   (Rule 4), and its fetch first waits for the prefetch of the same manifest, then
   fetches whatever is still missing. A prefetch ends when every blob came, when a
   round brought nothing (the push was abandoned), or when another manifest is
   announced or released for the service; its blobs are kept from garbage collection
   while it runs (``ReleaseStore.upcoming``) and collected after the next switch if no
   release names them. The release event of that manifest (same id) is parsed against
   the announced one (``parse_manifest``'s ``known``: entries equal to its entries are
   not checked again; on a first push there is no live release to compare with).
7. Where the store flushes in the background (releases.py rule 6: Linux), nothing is
   flushed between fetching and acknowledging: ``FLUSH_DELAY`` seconds after a switch a flush writes back
   what was written (one ``syncfs``, in a thread, outside the lock) and then marks the
   releases switched before it began as flushed (under the lock that also guards
   switches and deletions, so a release file is never written by both); it goes on
   while a release switched meanwhile is unflushed. A restart
   with unflushed releases (a killed process) flushes them too. The same stamp gives
   a release file written ahead its switch time (releases.py rules 2, 7); where there is
   no background flush, that stamp alone is written ``FLUSH_DELAY`` after the switch.
8. A ``release`` event may carry the release's new blobs inline (``"blobs"``: name ->
   base64; the control plane's ``releasechannels`` Rule 6): before fetching, each one
   the edge lacks is decoded, verified against its name and size and kept as a
   fetched blob (``ReleaseStore.keep_inline``); one that does not decode or match is
   refused and fetched as in Rule 2, like every blob the event did not carry. The
   switch still waits for every blob (Rule 4); an edge that missed the event gets it
   again on reconnect, with or without the blobs.
9. A ``release`` event may carry the release's changes from another release instead
   of its manifest (``"base"``: that release's id, ``"changes"``: ``core/content/changes.py``;
   the control plane's ``releasechannels`` Rule 8). An edge that holds the base (live,
   previous or pending) applies them (or, holding the release itself, as after a
   rollback to the previous one, takes its manifest as it is), and the result must hash to the release's id
   (``encoded_as``: that encoding is its release file's); any other edge, or one whose
   result does not match, fetches the whole manifest (``GET /v1/services/{s}/releases/{n}/manifest``,
   retried with backoff while wanted, in a task a newer event cancels) and takes the
   event as if it had carried it. An event for the release the edge serves is
   acknowledged at once, before any of this.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
import orjson

from owncdn.core.content.digest import name_of
from owncdn.core.content.manifest import ManifestError, parse_manifest
from owncdn.edge.blobdownload import BlobDownload, BlobTooLong
from owncdn.edge.bundlefetch import BlobConnections, BundleFetch
from owncdn.edge.releases import Prepared, ReleaseStore, Target
from owncdn.edge.upstream import (
    OriginAddress, OriginConnectError, OriginError, OriginPool, OriginProtocolError, Timeouts, request_head,
    send_request,
)

if TYPE_CHECKING:
    from owncdn.edge.sync import SyncAgent

__all__ = ["ReleaseFailed", "ReleaseSync"]

PARALLEL = 16  # measured: 16 fetches at once sync 300 small blobs about 1.5x faster than 8
VERIFY_ATTEMPTS = 3
BUNDLE_BLOB = 1 << 20  # blobs up to this size come in bundles (Rule 2)
BUNDLE_BYTES = 16 << 20
BUNDLE_BLOBS = 2000
PREFETCH_BLOB = 16 << 20  # a prefetch takes blobs up to this size in its bundles (larger: GET, Rule 2)
PREFETCH_BYTES = 1 << 30  # a prefetch asks in bundles this large: one waiting stream per edge for a site
PREFETCH_WAIT = 20.0  # seconds a prefetch asks the control plane to wait for blobs to land (Rule 6)
FLUSH_DELAY = 0.5  # seconds from a switch to the background flush of its blobs (Rule 7)
WARM_DELAY = 0.3  # seconds from an acknowledgement to the warm-up of the release (Rule 4)


class ReleaseFailed(Exception):
    """A release that cannot be served here (Rule 3); the message is the reason."""


class _Mismatch(Exception):
    pass


class _NoBundles(Exception):
    """The control plane has no ``POST /v1/blobs/fetch``: fetch blob by blob."""


class ReleaseSync:
    def __init__(self, store: ReleaseStore, agent: "SyncAgent", parallel: int = PARALLEL,
                 on_live: Callable[[str], Awaitable] | None = None) -> None:
        self.store = store
        self.agent = agent
        self.on_live = on_live  # Rule 4: called with the service whose release went live
        self.slots = asyncio.Semaphore(parallel)
        self.gc_lock = asyncio.Lock()  # garbage collection vs. the check before a switch
        self.tasks: dict[str, tuple[str, asyncio.Task]] = {}
        self.pool: OriginPool | None = None  # for blobs
        self.pool_for = ""
        self.bundles_over: BlobConnections | None = None  # blocking connections for bundles (bundlefetch.py)
        self.acked: dict[str, tuple[int, str]] = {}  # service -> (number, status) last acknowledged
        self.bundles = True  # False once the control plane answered that it has no bundle endpoint
        self.mismatches: Counter[str] = Counter()  # sha -> bundled fetches that hashed wrong
        self.writers: ThreadPoolExecutor | None = None  # bundle fetches: receive, hash, write (bundlefetch.py)
        self.warming: set[asyncio.Future] = set()  # warm-ups of releases loaded at start (Rule 4)
        self.prefetches: dict[str, tuple[str, asyncio.Task]] = {}  # service -> (manifest id, task) (Rule 6)
        self.announced: dict[str, Target] = {}  # service -> the last release_upcoming target (Rule 6)
        self.flushing: asyncio.Task | None = None  # Rule 7
        self.inline_blobs = 0  # blobs kept from release events (Rule 8), also counted as fetched
        self.file_writes: set[asyncio.Future] = set()  # release files written ahead (Rule 1), awaited by close()

    @property
    def fetched_bytes(self) -> int:
        """Blob body bytes received from the control plane since the edge started."""
        return self.store.fetched_bytes

    @property
    def fetched_blobs(self) -> int:
        return self.store.fetched_blobs

    def __repr__(self) -> str:
        running = {s: t[0][:12] for s, t in self.tasks.items() if not t[1].done()}
        return f"<ReleaseSync running={running} fetched={self.fetched_blobs} blobs/{self.fetched_bytes}B>"

    # -- events (Rule 1) --------------------------------------------------------------
    async def on_event(self, agent: "SyncAgent", http: httpx.AsyncClient, data: dict) -> None:
        service = str(data.get("service") or data["key"])
        if data.get("deleted"):
            self._cancel(service)
            async with self.gc_lock:  # not while a flush stamps its release file (Rule 7)
                self.store.drop(service)
            return
        live = self.store.live.get(service)
        if live is not None and live.target.id == data.get("id") and live.target.number == data.get("number"):
            self._cancel(service)
            self.store.clear_pending(service)
            await self._ack(live.target, "serving", "")
            return
        key = f"{data.get('number')}:{data.get('id')}"
        running = self.tasks.get(service)
        if running is not None and running[0] in (key, _MANIFEST + key) and not running[1].done():
            return
        try:
            if "manifest" in data:  # the entries the live (or prefetched) release holds unchanged are not checked again
                target = Target.from_event(data, self._known(service, data.get("id")))
                self.store.manifest_bytes += len(target.manifest_json)
            else:  # Rule 9
                self.store.manifest_bytes += len(orjson.dumps(data["changes"]))
                target = self._from_changes(service, data)
                if target is None:
                    self._fetch_manifest(http, service, data, key)
                    return
        except (ManifestError, ValueError, KeyError, TypeError) as exc:
            _warn(f"release event for {service} is malformed: {exc}")
            return
        inline = data.get("blobs")
        self.start(target, inline if isinstance(inline, dict) else None)

    async def on_upcoming(self, agent: "SyncAgent", http: httpx.AsyncClient, data: dict) -> None:
        """Rule 6: a ``release_upcoming`` event."""
        if data.get("deleted"):
            return  # created (its release event follows) or given up: the prefetch ends by itself
        service = str(data.get("service") or data["key"])
        try:
            target = Target(service, 0, str(data["id"]), parse_manifest(data["manifest"], self._known(service)))
        except (ManifestError, ValueError, KeyError, TypeError) as exc:
            _warn(f"release_upcoming event for {service} is malformed: {exc}")
            return
        live = self.store.live.get(service)
        running = self.tasks.get(service)
        prefetch = self.prefetches.get(service)
        if ((live is not None and live.target.id == target.id)
                or (running is not None and running[0].endswith(":" + target.id) and not running[1].done())
                or (prefetch is not None and prefetch[0] == target.id and not prefetch[1].done())):
            return
        self._stop_prefetch(service)
        self.announced[service] = target
        self.store.upcoming[service] = target
        task = asyncio.get_running_loop().create_task(self._prefetch(target))
        self.prefetches[service] = (target.id, task)

    def _from_changes(self, service: str, data: dict) -> Target | None:
        """Rule 9: the target of an event that carries its changes from release ``base``,
        when this edge holds that one (live, previous or pending); else None."""
        base_id = data["base"]
        live, pending = self.store.live.get(service), self.store.pending.get(service)
        held = [t for t in ((live.target, live.previous) if live is not None else ()) + (pending,) if t is not None]
        same = next((t for t in held if t.id == data["id"]), None)
        if same is not None:  # a rollback to the previous release: its manifest is here
            return Target.held_as(data, same)
        base = next((t for t in held if t.id == base_id), None)
        if base is None:
            _warn(f"release {data.get('number')} of {service} comes as its changes from {str(base_id)[:12]}, "
                  "which this edge does not hold; fetching its manifest")
            return None
        try:
            return Target.from_changes(data, base)
        except ManifestError as exc:
            _warn(f"release {data.get('number')} of {service}: its changes from {str(base_id)[:12]} do not apply "
                  f"here ({exc}); fetching its manifest")
            return None

    def _fetch_manifest(self, http: httpx.AsyncClient, service: str, data: dict, key: str) -> None:
        """Rule 9: fetch the whole manifest of the release ``data`` announces, then take
        the event as if it had carried it (a newer event cancels the fetch)."""
        self._cancel(service)
        task = asyncio.get_running_loop().create_task(self._with_manifest(http, service, data))
        self.tasks[service] = (_MANIFEST + key, task)

    async def _with_manifest(self, http: httpx.AsyncClient, service: str, data: dict) -> None:
        agent, delay = self.agent, 0.5
        url = f"{agent.control}/v1/services/{quote(service, safe='')}/releases/{int(data['number'])}/manifest"
        while True:
            try:
                resp = await http.get(url, params={"env": agent.env}, headers=agent._auth())
                if resp.status_code == 404:
                    _warn(f"release {data['number']} of {service} is gone from the control plane; not fetched")
                    return
                resp.raise_for_status()
                manifest = orjson.loads(resp.content)
                break
            except (httpx.HTTPError, OSError, ValueError) as exc:
                _warn(f"fetching the manifest of release {data['number']} of {service}: "
                      f"{exc or type(exc).__name__}; retrying in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        full = {k: v for k, v in data.items() if k not in ("base", "changes")}
        full["manifest"] = manifest
        running = self.tasks.get(service)
        if running is not None and running[1] is asyncio.current_task():
            del self.tasks[service]  # this fetch is done: the release's own task takes over
        await self.on_event(agent, http, full)

    def _known(self, service: str, manifest_id: object = None):
        """A valid manifest the next one of ``service`` likely shares most entries with
        (``parse_manifest``'s ``known``): the one being prefetched when its id is
        ``manifest_id`` (a first push: nothing live yet), else the live one."""
        announced = self.announced.get(service)
        if announced is not None and manifest_id is not None and announced.id == manifest_id:
            return announced.manifest
        live = self.store.live.get(service)
        return live.target.manifest if live is not None else None

    def _stop_prefetch(self, service: str, unless: str = "") -> asyncio.Task | None:
        """Cancel the prefetch of ``service`` unless it is for manifest ``unless``; that
        one (still running) is returned."""
        prefetch = self.prefetches.get(service)
        if prefetch is None or prefetch[1].done():
            return None
        if unless and prefetch[0] == unless:
            return prefetch[1]
        prefetch[1].cancel()
        return None

    async def _prefetch(self, target: Target) -> None:
        """Rule 6: rounds of waiting bundle fetches until every blob up to
        ``PREFETCH_BLOB`` came or a round brought none; the larger ones each as it
        arrives, alongside."""
        large = [asyncio.ensure_future(self._prefetch_large(sha, size))
                 for sha, size in self.store.missing(target).items() if size > PREFETCH_BLOB]
        try:
            while self.bundles:
                small = {sha: size for sha, size in self.store.missing(target).items() if size <= PREFETCH_BLOB}
                if not small:
                    break
                before = self.store.fetched_blobs
                results = await asyncio.gather(*[self._fetch_bundle(batch, PREFETCH_WAIT)
                                                 for batch in _bundles(small, PREFETCH_BYTES)],
                                               return_exceptions=True)
                if any(isinstance(r, _NoBundles) for r in results):
                    self.bundles = False
                    break
                failed = next((r for r in results if isinstance(r, BaseException)), None)
                if isinstance(failed, asyncio.CancelledError):
                    raise failed
                if failed is not None or self.store.fetched_blobs == before:
                    break  # the release's own fetch (Rules 2-3) does the rest, with its retries
            if large:
                await asyncio.wait(large)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a prefetch is an optimisation
            _warn(f"prefetching the upcoming release of {target.service} stopped: {type(exc).__name__}: {exc}")
        finally:
            for task in large:
                task.cancel()  # each stops its download, keeping its partial file
            if large:
                await asyncio.wait(large)
            if self.store.upcoming.get(target.service) is target:
                del self.store.upcoming[target.service]

    async def _prefetch_large(self, sha: str, size: int) -> None:
        """Rule 6: one blob too large for a bundle, as its upload writes it
        (``GET /v1/blobs/{sha}/arriving``); whatever goes wrong is left to the
        release's own fetch (a partial file it resumes, or starts over if wrong)."""
        async with self.slots:
            if self.store.has_blob(sha):
                return
            try:
                try:
                    await self._download(sha, size, PREFETCH_WAIT)
                except _Mismatch:
                    self.store.part_path(sha).unlink(missing_ok=True)
                    return
                await asyncio.to_thread(self.store.keep_part, sha)
            except (ReleaseFailed, OriginError, OSError):
                return
            self.store.count_fetched(1, 0)

    def start(self, target: Target, inline: dict | None = None) -> None:
        self._cancel(target.service)
        loop = asyncio.get_running_loop()
        prepared = self.store.begin_pending(target)  # Rule 1: its file is written in a thread
        written = loop.run_in_executor(None, self._write_pending, prepared)
        self.file_writes.add(written)
        written.add_done_callback(self.file_writes.discard)
        task = loop.create_task(self._run(target, inline, written))
        self.tasks[target.service] = (_task_key(target), task)

    def resume(self) -> None:
        """Rule 5: restart every fetch that was pending when the edge stopped."""
        for target in list(self.store.pending.values()):
            self.start(target)
        if self.store.unflushed():
            self.flush_soon()

    def flush_soon(self) -> None:
        """Rule 7: write back the blobs of the releases switched so far, and their switch
        times to the files written ahead, shortly."""
        if not (self.store.lazy or self.store.ahead()) or (self.flushing is not None and not self.flushing.done()):
            return
        self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        store = self.store
        try:
            while store.unflushed() or store.ahead():
                await asyncio.sleep(FLUSH_DELAY)
                began = await asyncio.to_thread(store.flush) if store.lazy else time.monotonic()
                async with self.gc_lock:
                    await asyncio.to_thread(store.mark_flushed, began)
        except Exception as exc:  # noqa: BLE001 - in the background: say so; the next switch tries again
            _warn(f"writing back the blobs of pushed releases failed: {type(exc).__name__}: {exc}; "
                  "trying again after the next switch")

    def _cancel(self, service: str) -> None:
        running = self.tasks.pop(service, None)
        if running is not None and not running[1].done():
            running[1].cancel()

    def warm_later(self, service: str) -> None:
        """Rule 4 for a release loaded at start: warmed in the background."""
        task = asyncio.get_running_loop().create_task(self._warm(service))
        self.warming.add(task)
        task.add_done_callback(self.warming.discard)

    async def close(self) -> None:
        tasks = [t for _, t in self.tasks.values() if not t.done()] + [t for t in self.warming if not t.done()]
        tasks += [t for _, t in self.prefetches.values() if not t.done()]
        if self.flushing is not None and not self.flushing.done():
            tasks.append(self.flushing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self.file_writes, return_exceptions=True)
        self.tasks.clear()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.bundles_over is not None:
            self.bundles_over.close()
            self.bundles_over = None
        if self.writers is not None:
            writers, self.writers = self.writers, None
            # Off the loop: a bundle thread may still read its body's end from a server
            # this loop runs (a test fleet's control plane), which a blocked loop starves.
            await asyncio.to_thread(writers.shutdown, True)

    async def wait(self, service: str) -> None:
        """Until the current task of ``service`` (if any) ends; for tests and tools."""
        running = self.tasks.get(service)
        if running is not None:
            await asyncio.gather(running[1], return_exceptions=True)

    # -- one release (Rules 2-4) --------------------------------------------------------
    async def _run(self, target: Target, inline: dict | None = None, written: asyncio.Future | None = None) -> None:
        started, blobs, size = time.monotonic(), self.store.fetched_blobs, self.store.fetched_bytes
        retired = None  # Rule 4: the release switched from, let go of after the acknowledgement
        prefetch = self._stop_prefetch(target.service, unless=target.id)
        if prefetch is not None:  # Rule 6: its blobs are all there now, so it ends soon; no blob fetched twice
            await asyncio.wait([prefetch])
        if inline:
            await self._keep_inline(target, inline)
        try:
            while True:
                await self._fetch_all(target)
                fetched = time.monotonic()
                if written is not None:  # Rule 1: the switch renames it (a failed one: the switch writes it)
                    await asyncio.shield(written)
                async with self.gc_lock:  # no blob can go between this check and the switch
                    if not self.store.missing(target):
                        if not self.store.lazy:  # Rule 7: else nothing to wait for
                            await asyncio.to_thread(self.store.sync_dirs)  # the slow part of switch(), off the loop
                        retired = self.store.live.get(target.service)
                        self.store.switch(target)
                        break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever broke: say so, keep the old release
            reason = str(exc) if isinstance(exc, ReleaseFailed) else f"{type(exc).__name__}: {exc}"
            _warn(f"release {target.number} of {target.service} failed: {reason}")
            self.store.clear_pending(target.service)
            await self._ack(target, "failed", reason)
            return
        switched = time.monotonic()
        await self._ack(target, "serving", "")
        self.flush_soon()
        _warn(f"release {target.number} of {target.service}: {self.store.fetched_blobs - blobs} blobs, "
              f"{(self.store.fetched_bytes - size) / 1e6:.1f} MB fetched in {(fetched - started) * 1000:.1f} ms, "
              f"switched in {(switched - fetched) * 1000:.1f} ms, acknowledged in "
              f"{(time.monotonic() - switched) * 1000:.1f} ms; serving")
        await asyncio.sleep(WARM_DELAY)  # Rule 4: after the other edges of this machine switched too
        del retired
        await self._warm(target.service)
        # Partial files of other services' running fetches belong to pending targets: kept;
        # a blob a newer target wants again after `wanted()` is fetched again before its switch.
        async with self.gc_lock:
            await asyncio.to_thread(self.store.collect, self.store.wanted())

    def _write_pending(self, prepared: Prepared) -> None:
        """Rule 1, in a thread: a failure only means the switch writes the file itself."""
        try:
            self.store.write_pending(prepared)
        except Exception as exc:  # noqa: BLE001 - writing ahead is an optimisation
            _warn(f"writing the release file of {prepared.target.service} ahead failed ({exc}); "
                  "the switch writes it")

    async def _keep_inline(self, target: Target, inline: dict) -> None:
        """Rule 8: the blobs the release event carried, verified and kept as fetched ones
        are; one that does not decode or match is refused (and fetched, Rule 2)."""
        missing = self.store.missing(target)
        todo = [(sha, missing[sha], text) for sha, text in inline.items() if sha in missing and isinstance(text, str)]
        if not todo:
            return
        try:
            if self.store.lazy:  # page-cache writes of a few hundred KiB: no thread hop
                refused = _kept_inline(self.store, todo)
            else:
                refused = await asyncio.to_thread(_kept_inline, self.store, todo)
        except OSError as exc:
            _warn(f"release {target.number} of {target.service}: keeping its inline blobs failed ({exc}); fetching them")
            return
        self.inline_blobs += len(todo) - len(refused)
        if refused:
            _warn(f"release {target.number} of {target.service}: {len(refused)} inline blob(s) did not match "
                  f"their names (first {refused[0][:12]}); fetching them")

    async def _warm(self, service: str) -> None:
        if self.on_live is None:
            return
        try:
            await self.on_live(service)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a warm-up is an optimisation: serving goes on
            _warn(f"warming the release of {service} failed: {type(exc).__name__}: {exc}")

    async def _fetch_all(self, target: Target) -> None:
        delay, reported, squeezed = 0.5, "", False
        while True:
            missing = self.store.missing(target)
            if not missing:
                return
            small = {sha: size for sha, size in missing.items() if size <= BUNDLE_BLOB} if self.bundles else {}
            jobs = [self._fetch_bundle(batch) for batch in _bundles(small)]
            jobs += [self._fetch_blob(sha, size) for sha, size in missing.items() if sha not in small]
            results = await asyncio.gather(*jobs, return_exceptions=True)
            if any(isinstance(r, _NoBundles) for r in results):
                self.bundles = False
                continue
            for result in results:
                if isinstance(result, (ReleaseFailed, asyncio.CancelledError)):
                    raise result
                if isinstance(result, BaseException) and not isinstance(result, (OriginError, OSError)):
                    raise result
            if all(r is None for r in results):
                continue
            errors = [r for r in results if isinstance(r, BaseException)]
            if not squeezed and any(_no_space(e) for e in errors):  # Rule 3: room, at the previous releases' cost
                squeezed = True
                if await self._make_room(target):
                    continue
            reason = retry_reason(errors, self.store.root)
            _warn(f"release {target.number} of {target.service}: {reason}; retrying in {delay:.1f}s")
            trouble = trouble_kind(errors)
            if trouble != reported:  # Rule 3
                reported = trouble
                await self._ack(target, "retrying", reason, queue=False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _make_room(self, target: Target) -> int:
        """Rule 3: drop the blobs that only the releases switched from (rollback copies)
        name, for ``target``; how many went."""
        async with self.gc_lock:
            keep = self.store.wanted(previous=False)
            try:
                files, size = await asyncio.to_thread(self.store.collect, keep)
            except OSError as exc:  # compacting a pack needs room too
                _warn(f"making room for release {target.number} of {target.service} failed: {exc}")
                return 0
        if files:
            _warn(f"no space left for release {target.number} of {target.service}: dropped {files} blobs and "
                  f"partial files ({size / 1e6:.1f} MB) only the releases switched from named; a rollback to "
                  "one fetches them again")
        return files

    async def _fetch_blob(self, sha: str, size: int) -> None:
        async with self.slots:
            if self.store.has_blob(sha):
                return
            for _ in range(VERIFY_ATTEMPTS):
                try:
                    await self._download(sha, size)
                except _Mismatch:
                    os.unlink(self.store.part_path(sha))
                    continue
                await asyncio.to_thread(self.store.keep_part, sha)  # fsync (rule 7: not here), then the blob's name
                self.store.count_fetched(1, 0)
                return
            raise ReleaseFailed(f"blob {sha[:12]} did not match its name after {VERIFY_ATTEMPTS} fetches")

    async def _fetch_bundle(self, batch: dict[str, int], wait: float = 0.0) -> None:
        """Fetch these small blobs in one bundle, received, verified and kept by a worker
        thread (Rule 2, ``bundlefetch.py``). With ``wait`` (a prefetch, Rule 6) the
        control plane sends them as they land and the bundle may end without some."""
        async with self.slots:
            batch = {sha: size for sha, size in batch.items() if not self.store.has_blob(sha)}
            if not batch:
                return
            conns = self._bundle_conns()
            body = orjson.dumps({"hashes": list(batch), "wait": wait} if wait else {"hashes": list(batch)})
            fields = [("Host", conns.address.host_header), *self.agent._auth().items(),
                      ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            loop = asyncio.get_running_loop()
            complete = loop.create_future()  # Rule 2: every blob came and was kept; the body's end may follow
            fetch = BundleFetch(conns, request_head("POST", conns.address.path_prefix + "/v1/blobs/fetch", fields) + body,
                                dict(batch), self.store, on_complete=lambda: loop.call_soon_threadsafe(_settle, complete))
            done = loop.run_in_executor(self._writers(), fetch.run)
            done.add_done_callback(self._tally)  # counted also when this task is cancelled meanwhile
            try:
                await asyncio.wait([done, complete], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                fetch.abort()  # it ends soon, keeping the blobs it verified (Rule 2)
                raise
            if not done.done():
                return  # the thread reads the body's end and keeps the connection
            outcome = done.result()
            if outcome.status not in (0, 200) and not isinstance(outcome.error, ReleaseFailed):
                self._bundle_refused(outcome.status, outcome.refusal)
            if outcome.error is not None:
                raise outcome.error
            if fetch.missing and not wait:
                raise OriginProtocolError(f"the bundle lacks {len(fetch.missing)} of the blobs asked for")

    def _tally(self, done: asyncio.Future) -> None:
        """A blob that hashed wrong in a bundle is fetched again, up to
        ``VERIFY_ATTEMPTS`` times (Rule 3), then fails the fetch."""
        if done.cancelled():
            return
        outcome = done.result()
        for sha, ok in outcome.results:
            if ok:
                self.mismatches.pop(sha, None)
                continue
            self.mismatches[sha] += 1
            if self.mismatches[sha] >= VERIFY_ATTEMPTS:
                del self.mismatches[sha]
                outcome.error = ReleaseFailed(f"blob {sha[:12]} did not match its name after {VERIFY_ATTEMPTS} fetches")

    def _bundle_refused(self, status: int, text: bytes) -> None:
        """A bundle answered with an error: the reason, as an exception (Rules 2, 3)."""
        try:
            error = orjson.loads(text).get("error") or {}
        except (orjson.JSONDecodeError, AttributeError):
            error = {}
        if status == 404 and error.get("code") == "missing_blobs":
            lacking = error.get("problems") or ["?"]
            raise ReleaseFailed(f"the control plane has no blob {str(lacking[0])[:12]}")
        if status in (404, 405) and error.get("code") != "missing_blobs":
            raise _NoBundles()
        raise OriginProtocolError(f"status {status} for a bundle of blobs")

    def _writers(self) -> ThreadPoolExecutor:
        if self.writers is None:
            self.writers = ThreadPoolExecutor(PARALLEL, thread_name_prefix="owncdn-blob-write")
        return self.writers

    async def _download(self, sha: str, size: int, arriving: float = 0.0) -> None:
        """Fetch into the partial file, resuming it, and verify it (Rule 2), in a worker
        thread (``blobdownload.py``); with ``arriving``, as its upload writes it,
        waiting up to that many seconds for the upload to begin (Rule 6)."""
        conns = self._bundle_conns()
        fields = [("Host", conns.address.host_header), *self.agent._auth().items()]
        path = f"/v1/blobs/{sha}/arriving?wait={arriving:g}" if arriving else f"/v1/blobs/{sha}"
        download = BlobDownload(conns, conns.address.path_prefix + path, fields, sha, size,
                                self.store.part_path(sha), lambda n: self.store.count_fetched(0, n))
        done = asyncio.get_running_loop().run_in_executor(self._writers(), download.run)
        try:
            outcome = await asyncio.shield(done)
        except asyncio.CancelledError:
            download.abort()  # it ends soon; the partial file keeps what came, and is its own until then
            await asyncio.wait([done])
            raise
        if isinstance(outcome.error, BlobTooLong):
            raise _Mismatch()
        if outcome.error is not None:
            raise outcome.error
        if outcome.status == 404:
            raise ReleaseFailed(f"the control plane has no blob {sha[:12]}")
        if outcome.status and outcome.status not in (200, 206):
            raise OriginProtocolError(f"status {outcome.status} for blob {sha[:12]}")
        if download.have != size:
            raise OriginProtocolError(f"blob {sha[:12]} ended at {download.have} of {size} bytes")
        if name_of(download.digest) != sha:
            raise _Mismatch()

    def _blob_pool(self) -> OriginPool:
        """Keep-alive connections to the control plane for blobs: the edge's own HTTP/1.1
        client (upstream.py), measured at about a tenth of httpx's CPU per request."""
        if self.pool is None or self.pool_for != self.agent.control:
            if self.pool is not None:
                self.pool.close()
            self.pool = OriginPool(OriginAddress.from_url(self.agent.control),
                                   Timeouts(connect=5.0, first_byte=30.0, idle=30.0), max_idle=PARALLEL)
            self.pool_for = self.agent.control
        return self.pool

    def _bundle_conns(self) -> BlobConnections:
        """Blocking keep-alive connections to the control plane, for the bundle threads."""
        pool = self._blob_pool()
        if self.bundles_over is None or self.bundles_over.address != pool.address:
            if self.bundles_over is not None:
                self.bundles_over.close()
            self.bundles_over = BlobConnections(pool.address, pool.timeouts)
        return self.bundles_over

    # -- acknowledgements (Rule 4) ---------------------------------------------------------
    async def _ack(self, target: Target, status: str, reason: str, queue: bool = True) -> None:
        """``POST /v1/nodes/{id}/releases`` over the blob connections' keep-alive pool
        (the edge's own HTTP/1.1 client: no httpx on the acknowledgement's path); one
        that cannot be sent is queued with the agent's unsent reports (with ``queue``)."""
        agent = self.agent
        if agent.node_id is None:
            return
        path = f"/v1/nodes/{agent.node_id}/releases"
        body = {"service": target.service, "number": target.number, "status": status, "reason": reason}
        try:
            await self._post(path, orjson.dumps(body))
        except (OriginError, OSError) as exc:
            if not queue:
                return
            agent.unsent.append((path, body))
            _warn(f"acknowledging release {target.number} of {target.service}: {exc}; will resend")
        self.acked[target.service] = (target.number, status)

    async def _post(self, path: str, data: bytes) -> None:
        pool = self._blob_pool()
        fields = [("Host", pool.address.host_header), *self.agent._auth().items(),
                  ("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        try:
            resp = await send_request(pool, "POST", path, fields, _once(data))
        except OriginConnectError as exc:
            if not exc.reused:
                raise
            pool.close()  # a stale keep-alive (the control plane restarted?): drop the idle ones, once more
            resp = await send_request(pool, "POST", path, fields, _once(data))
        try:
            async for _ in resp.body():
                pass
        finally:
            resp.close()  # a no-op once the body was read to its end
        if resp.status >= 300:
            raise OriginProtocolError(f"status {resp.status}")


def _bundles(small: dict[str, int], limit: int = BUNDLE_BYTES) -> list[dict[str, int]]:
    """Small blobs in bundles of at most ``limit`` bytes / ``BUNDLE_BLOBS`` blobs."""
    out: list[dict[str, int]] = []
    batch: dict[str, int] = {}
    room = limit
    for sha, size in small.items():
        if batch and (size > room or len(batch) >= BUNDLE_BLOBS):
            out.append(batch)
            batch, room = {}, limit
        batch[sha] = size
        room -= size
    if batch:
        out.append(batch)
    return out


async def _once(body: bytes):
    yield body


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _kept_inline(store: ReleaseStore, blobs: list[tuple[str, int, str]]) -> list[str]:
    """Rule 8: keep these ``(name, size, base64)`` blobs (``ReleaseStore.keep_inline``
    verifies each); the names refused."""
    refused = []
    for sha, size, text in blobs:
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            refused.append(sha)
            continue
        if store.keep_inline(sha, size, data):
            store.count_fetched(1, size)
        else:
            refused.append(sha)
    return refused


_MANIFEST = "manifest:"  # the task key of a manifest's fetch (Rule 9), before the release's own


def _task_key(target: Target) -> str:
    return f"{target.number}:{target.id}"


def _warn(message: str) -> None:
    print(f"owncdn edge: {message}", file=sys.stderr, flush=True)


def follow_releases(edge, agent: "SyncAgent") -> ReleaseSync | None:
    """Handle the agent's ``release`` events and resume pending fetches (Rule 5)."""
    if edge.releases is None:
        return None
    from owncdn.edge.static import warm_release

    sync = ReleaseSync(edge.releases, agent, on_live=lambda service: warm_release(edge, service))
    agent.handlers["release"] = sync.on_event
    agent.handlers["release_upcoming"] = sync.on_upcoming
    sync.resume()
    for service in list(edge.releases.live):
        sync.warm_later(service)
    return sync


_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def _no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in _NO_SPACE


def _disk_error(errors: list[BaseException]) -> OSError | None:
    """Rule 3: the first error of the edge's own disk (full, read-only, failing)."""
    return next((e for e in errors if isinstance(e, OSError) and e.errno in _DISK_ERRORS), None)


def trouble_kind(errors: list[BaseException]) -> str:
    """Rule 3: what changes the trouble reported (not the count of blobs left): the
    disk's error number, else the first error's type."""
    disk = _disk_error(errors)
    if disk is not None:
        return f"disk {disk.errno}"
    return type(errors[0]).__name__ if errors else ""


def retry_reason(errors: list[BaseException], root: Path) -> str:
    """Rule 3: what a round of fetches that left ``errors`` is retrying after. A full,
    read-only or failing disk under ``root`` (the release store) is named first: it is
    this edge's to fix, where network trouble usually passes by itself."""
    count = f"{len(errors)} blob{'' if len(errors) == 1 else 's'} not fetched"
    disk = _disk_error(errors)
    if disk is not None:
        what = "no space left on" if _no_space(disk) else "cannot write to"
        return f"{what} this edge's disk ({root}: {disk.strerror}); {count}"
    first = errors[0] if errors else None
    return f"{count} ({str(first) or type(first).__name__})"
