"""The state channels of pushed releases: ``release`` for edges, ``release_ready`` for DNS.

Rules:
1. ``release`` (edge nodes of the environment): key = service name, revision = the
   current release number, data = ``{"service", "number", "id", "manifest"}``. An edge
   fetches the blobs it lacks, switches atomically and reports with
   ``POST /v1/nodes/{id}/releases``.
2. ``release_ready`` (DNS nodes of the environment): key = service name, revision and
   data = ``{"service", "number", "locations"}``: the locations with at least one edge
   that reported serving the current release. DNS routes a push service only there
   (and everywhere while no location serves it yet, rather than nowhere).
3. Each read is one small store query (channels Rule 2); manifests are immutable, so
   they are loaded once per release and kept in a bounded in-process cache. A release
   created on this replica is put there as it is stored (``remember_manifest``), so
   the streams it wakes send it without reading and decoding it again (about 5 ms
   for the 1,065-file manifest of the push benchmark, between a push and its edges).
   Its data is put there before it is stored, by its manifest id (``expect_manifest``:
   its number is not known yet), for a stream that reads the new current release
   before ``remember_manifest`` ran; without that, such a stream read the release
   from the store and sent its whole manifest, not its changes (Rule 8): one
   one-file push in about three of a 100,000-file site sent each edge 11 MB.
4. The current release numbers of an environment are read once for all the streams
   that wake together (those one notify wakes poll one after another in one
   worker-thread step, ``events`` Rule 5, and the others use the
   first one's read, which three edge streams had each made, about 1 ms of the control
   plane's CPU apiece): reused for up to ``CURRENT_REUSE_SECONDS`` while the
   environment's ``current_topic`` was not notified (creating or activating a release
   on this replica notifies it; a change on another replica is seen after that time).
5. ``release_upcoming`` (edge nodes of the environment): key = service name, revision
   = manifest id, data = ``{"service", "id", "manifest"}``: a release a push is
   uploading the blobs of (``POST .../releases/upcoming``), so edges fetch those blobs
   while they land (``edge/releasesync.py`` rule 6). It is a hint, never a release:
   nothing switches on it. Kept in this process only (a replica that did not receive
   it sends nothing: the edges then fetch after the release, as before), for
   ``UPCOMING_SECONDS`` or until the release with that id is created.
6. A ``release`` event may also carry ``"blobs"``: ``{name: base64 bytes}``, the blobs
   new since the release created before it on this replica, when they are
   ``INLINE_EVENT_BYTES`` or less in all (``releases.py`` Rule 10), so an edge that
   held that release switches without fetching (``edge/releasesync.py`` Rule 8). They
   live with the release's cached data (one event text for every stream, channels
   Rule 4); data read back from the store has none, and edges then fetch as always.
   On loopback (3 edges, 2 cores, the Python docs) a 21 KB page inline took less CPU
   than its fetch (edges 22.3 against 24.1 ms, control plane 46.1 against 49.5 ms a
   push), the 291 KB page of ``bench/push.py`` more (edges 29.3 against 23.8 ms:
   base64 and the event's text cost each edge about 6 us a KB; control plane 46.2
   against 49.5 ms), hence 128 KiB. Between machines an inline blob also saves the
   edge its fetch's round trip to the control plane.
7. A release created here is remembered with its manifest's JSON text (the canonical
   encoding its id was made from), which its event carries as it is
   (``orjson.Fragment``): encoding the 1,065-file manifest of the push benchmark again
   took about 0.25 ms of the first stream's poll, between the release and its edges.
8. A release created here right after another one (``releases.py`` Rule 14) is sent as
   ``{"service", "number", "id", "base", "changes"}`` instead of with its manifest when
   its changes are few (``changes_for``: at most a ``CHANGES_SHARE`` of its files):
   ``base`` is the id of the release created before it here, ``changes`` its changes
   from that one (``core/content/changes.py``). An edge serving the base applies them;
   any other fetches the manifest (``GET .../releases/{n}/manifest``). For a site of
   100,000 files (an 11 MB manifest) a one-file push sent about 110 bytes of changes to
   each edge instead of 11 MB, which each edge parsed and checked.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import orjson

from owncdn.core.content import Manifest
from owncdn.core.content.changes import changes_between

__all__ = ["ReleaseChannel", "ReleaseReadyChannel", "UpcomingChannel", "announce_upcoming", "current_topic",
           "changes_for", "expect_manifest", "forget_upcoming", "release_channels", "remember_manifest"]

MANIFEST_CACHE = 64
CHANGES_SHARE = 0.25  # Rule 8: a release whose changes name more of its files goes whole
INLINE_EVENT_BYTES = 128 << 10  # blob bytes a release event may carry (Rule 6, releases.py Rule 10)
CURRENT_REUSE_SECONDS = 0.5
UPCOMING_SECONDS = 120.0


def current_topic(env: str) -> str:
    """The hub topic notified when a release of ``env`` is made current (Rule 4)."""
    return f"current-releases/{env}"


class ReleaseChannel:
    name = "release"
    follows_env = True  # created and activated releases notify the environment (channels Rule 5)

    def __init__(self) -> None:
        self._manifests: OrderedDict[tuple[str, str, int], dict[str, Any]] = OrderedDict()
        self._expected: dict[tuple[str, str, str], dict[str, Any]] = {}  # (env, service, id) -> data (Rule 3)
        self._current: dict[str, tuple[int, float, list]] = {}  # env -> (generation, read at, rows)
        self._lock = threading.Lock()  # remember() runs in the endpoints' worker threads
        self._reading = threading.Lock()  # Rule 4: the streams one wake-up wakes wait for one read

    def __repr__(self) -> str:
        return f"<ReleaseChannel cached={len(self._manifests)}>"

    def read(self, ctx, node) -> dict[str, tuple[Any, dict]]:
        if node.kind != "edge":
            return {}
        out = {}
        for current in self._current_releases(ctx, node.env):
            data = self._data(ctx, node.env, current)
            if data is not None:
                out[current.service] = (current.number, data)
        return out

    def _current_releases(self, ctx, env: str) -> list:
        """Rule 4."""
        generation = ctx.hub.generation(current_topic(env))  # before reading the store (hub Rule 3)
        with self._reading:
            now = time.monotonic()
            cached = self._current.get(env)
            if cached is not None and cached[0] == generation and now - cached[1] < CURRENT_REUSE_SECONDS:
                return cached[2]
            rows = ctx.store.current_releases(env)
            self._current[env] = (generation, now, rows)
            return rows

    def expect(self, env: str, service: str, release_id: str, manifest: dict[str, Any],
               blobs: dict[str, str] | None = None, text: str | None = None,
               changes: tuple[str, dict] | None = None) -> None:
        """Rule 3: a release about to be stored here (its number not known yet), with
        its manifest, Rule 6: the new blobs it carries, Rule 7: ``text``, the manifest's
        JSON text, and Rule 8: ``changes``, (base id, changes) to send instead of the manifest."""
        data: dict[str, Any] = {"service": service, "number": 0, "id": release_id}
        if changes is not None:
            data["base"], data["changes"] = changes
        else:
            data["manifest"] = manifest if text is None else orjson.Fragment(text)
        if blobs:
            data["blobs"] = blobs
        with self._lock:
            self._expected[(env, service, release_id)] = data
            while len(self._expected) > MANIFEST_CACHE:  # stores that failed
                del self._expected[next(iter(self._expected))]

    def remember(self, env: str, service: str, number: int, release_id: str) -> None:
        """Rule 3: a release just stored here as ``number``, with the data ``expect``
        was given; without (two releases of one manifest stored at once took it),
        nothing is kept and the release is read from the store when asked for."""
        with self._lock:
            data = self._expected.pop((env, service, release_id), None)
        if data is not None:
            self._keep((env, service, number), {**data, "number": number})

    def _keep(self, key: tuple[str, str, int], data: dict[str, Any]) -> None:
        with self._lock:
            self._manifests[key] = data
            self._manifests.move_to_end(key)
            while len(self._manifests) > MANIFEST_CACHE:
                self._manifests.popitem(last=False)

    def _data(self, ctx, env: str, current) -> dict[str, Any] | None:
        key = (env, current.service, current.number)
        with self._lock:
            data = self._manifests.get(key)
            if data is not None:
                self._manifests.move_to_end(key)
        if data is None:
            with self._lock:
                expected = self._expected.get((env, current.service, current.id))
            if expected is not None:  # Rule 3: being stored here, not remembered yet
                return {**expected, "number": current.number}
            release = ctx.store.get_release(env, current.service, current.number)
            if release is None or release.manifest is None:  # pruned: never the current one (releasestore Rule 10)
                return None
            data = {"service": current.service, "number": current.number, "id": release.id,
                    "manifest": release.manifest}
            self._keep(key, data)
        return data


def expect_manifest(ctx, env: str, service: str, release_id: str, manifest: dict[str, Any],
                    blobs: dict[str, str] | None = None, text: str | None = None,
                    changes: tuple[str, dict] | None = None) -> None:
    """Rule 3: tell this replica's ``release`` channel about a release it is about to
    store (and Rule 6: the blobs its event carries; Rule 7: ``text``, the manifest's
    JSON; Rule 8: ``changes`` from the release before, from ``changes_for``)."""
    for channel in ctx.channels:
        if isinstance(channel, ReleaseChannel):
            channel.expect(env, service, release_id, manifest, blobs, text, changes)


def remember_manifest(ctx, env: str, service: str, number: int, release_id: str) -> None:
    """Rule 3: tell this replica's ``release`` channel that the release ``expect_manifest``
    told it about is stored, as ``number``."""
    for channel in ctx.channels:
        if isinstance(channel, ReleaseChannel):
            channel.remember(env, service, number, release_id)


def changes_for(previous: Manifest | None, manifest: Manifest,
                named: Iterable[str] | None = None) -> tuple[str, dict] | None:
    """Rule 8: ``(previous.id, changes)`` when a release of ``manifest`` made right after
    one of ``previous`` goes to edges as its changes; None when it goes whole.
    ``named``: the only paths whose entries may differ (changes the client sent from
    ``previous``), else every entry is compared."""
    if previous is None or previous.id == manifest.id:
        return None
    changes = changes_between(previous, manifest, named)
    if len(changes) > CHANGES_SHARE * len(manifest.files):
        return None
    return previous.id, changes


class UpcomingChannel:
    """Rule 5."""

    name = "release_upcoming"
    follows_env = True  # forgotten when the release is created (channels Rule 5)

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._upcoming: dict[tuple[str, str], tuple[str, float, dict[str, Any]]] = {}  # (env, service) -> (id, until, data)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<UpcomingChannel {sorted(self._upcoming)}>"

    def announce(self, env: str, service: str, release_id: str, manifest: dict[str, Any]) -> None:
        data = {"service": service, "id": release_id, "manifest": manifest}
        with self._lock:
            self._upcoming[(env, service)] = (release_id, self.clock() + UPCOMING_SECONDS, data)

    def forget(self, env: str, service: str, release_id: str) -> None:
        """The release ``release_id`` exists now (or another push took over)."""
        with self._lock:
            held = self._upcoming.get((env, service))
            if held is not None and held[0] == release_id:
                del self._upcoming[(env, service)]

    def read(self, ctx, node) -> dict[str, tuple[Any, dict]]:
        if node.kind != "edge":
            return {}
        now = self.clock()
        with self._lock:
            for key in [key for key, held in self._upcoming.items() if held[1] <= now]:
                del self._upcoming[key]
            return {service: (release_id, data) for (env, service), (release_id, _, data) in self._upcoming.items()
                    if env == node.env}


def _upcoming_channel(ctx) -> UpcomingChannel | None:
    return next((c for c in ctx.channels if isinstance(c, UpcomingChannel)), None)


def announce_upcoming(ctx, env: str, service: str, release_id: str, manifest: dict[str, Any]) -> bool:
    """Rule 5: tell this replica's edges about a release being uploaded; False when
    this control plane has no such channel."""
    channel = _upcoming_channel(ctx)
    if channel is None:
        return False
    channel.announce(env, service, release_id, manifest)
    return True


def forget_upcoming(ctx, env: str, service: str, release_id: str) -> None:
    channel = _upcoming_channel(ctx)
    if channel is not None:
        channel.forget(env, service, release_id)


class ReleaseReadyChannel:
    name = "release_ready"
    follows_env = True  # follows the current releases (channels Rule 5)

    def read(self, ctx, node) -> dict[str, tuple[Any, dict]]:
        if node.kind != "dns":
            return {}
        current = {c.service: c.number for c in ctx.store.current_releases(node.env)}
        ready: dict[str, set[str]] = {service: set() for service in current}
        for row in ctx.store.node_releases(node.env):
            if row.service in current and row.serving == current[row.service]:
                ready[row.service].add(row.location)
        out = {}
        for service, number in current.items():
            locations = sorted(ready[service])
            out[service] = ((number, tuple(locations)),
                            {"service": service, "number": number, "locations": locations})
        return out


def release_channels() -> list:
    return [ReleaseChannel(), ReleaseReadyChannel(), UpcomingChannel()]
