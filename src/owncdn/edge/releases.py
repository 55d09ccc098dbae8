"""Pushed releases at the edge, on disk: the release served per service, switched whole.

Layout under the edge's state directory (``<state>/push``, next to the blobs in
``packs/``, ``blobs/`` and ``partial/``, held as ``blobhold.py`` says):

    releases/<service>.json   the release served: number, id, time, manifest, and which
                              release was served before it (number and id)
    releases/<service>.previous.json  that previous release's own file, kept for
                              instant rollback (Rule 8)
    releases/<service>.pending.json   the release being fetched: its release file as
                              the switch will name it (Rule 2)
    releases/<service>.stamp.json     what changed about the release file since it was
                              written: its switch time, its flush (Rules 2, 6, 7)
    boot.json                 the boot of the machine the store was opened in (Rule 6)

Rules:
1. A release (``Target``) names a blob per file, and the store holds them: a
   ``ReleaseStore`` is a ``BlobHold`` (``blobhold.py``), where a blob is held only
   complete and verified and read wherever it is (its rule 1). What is held is
   rebuilt at start (its rule 2), dropped (its rule 3) and hashed again after a reboot
   (its rule 4) as the rules here say.
2. A release is switched only when every blob it names is held; the switch writes
   ``releases/<service>.json`` atomically (temp file, fsync, rename, directory fsync)
   and only then replaces the live release, so an edge never serves a half-synced
   release, before or after a restart. The temp file is written ahead, while the blobs
   are fetched: ``begin_pending`` records the target and encodes its release file
   (on the event loop: Python work in a thread would hold the GIL the loop waits for),
   and ``write_pending`` (in a thread) writes and fsyncs it as a temp file (one a
   crash cuts off is removed at start) and renames it to ``<service>.pending.json``;
   a switch then renames that file to ``<service>.json`` and fsyncs the directory (no
   manifest encoded or written after the last blob came). ``switched_at`` is the time
   of the switch (``Live.switched_at``); a file written ahead says when the fetch began
   until its stamp (Rule 7) says the switch time after the acknowledgement (``Live.ahead``,
   ``mark_flushed``: with the background flush of Rule 6, or on its own where there is
   none; ``releasesync.py`` rule 7), so only an edge stopped within that half second
   leaves the fetch's start there. A switch whose pending file is not written yet, is
   for another target, or names another previous release than the live one writes
   the file itself, as before. Only the latest ``begin_pending`` of a service may
   rename its file into place (under ``files``, a lock), so a fetch cancelled midway
   never leaves its file as the pending one.
3. At start the switched releases are loaded at once: the edge serves the last one it
   switched to even while the control plane is unreachable. A pending target stays
   pending until its fetch ends (``releasesync``); a switched release whose blobs are
   no longer all held (``blobhold.py`` rule 2: rebuilt from what is on disk, without
   reading blob bytes) becomes pending again, so they are fetched again.
4. After a switch, blobs that no current, previous, pending or upcoming (being
   prefetched) release of any service names (``wanted``) are dropped, and so are
   partial files nobody wants (``collect``: ``blobhold.py`` rule 3, which also compacts
   packs); rolling back to the previous release needs no fetch.
5. The live release of a service is one object (``Live``) replaced whole; a request
   that already holds one keeps a consistent view (open blob files stay readable after
   their names are deleted). The bodies a release kept in memory or open
   (``Live.bodies``, ``edge/static.py`` rule 4) are named by their blob names, so a switch
   hands those of the blobs the new release also names to it: a push of one changed
   file reads one file again, not every small file of the site (its warm-up read
   about a thousand per edge for the Python docs).
6. Durability without waiting (Linux): an edge's blobs are a cache of the control
   plane's content-addressed store, so they are not flushed while a release is fetched
   and switched. A process that is killed leaves what it wrote in the page cache;
   only a crash of the operating system loses data not yet written back, and after
   one ``/proc/sys/kernel/random/boot_id`` differs (``owncdn.durable.boot_id``). So:
   - ``boot.json`` names the boot the store was opened in; it is written durably at
     start, before any blob of that boot is.
   - A switched release's file is durable (Rule 2) and says ``"unflushed": <monotonic time>`` (when the file was written: at or before the switch; in memory the
     switch's own time, which ``mark_flushed`` compares with). A flush in the background (``flush``: one ``syncfs``;
     ``releasesync.py`` starts it shortly after a switch) then stamps the files of
     the releases switched before it began with ``"unflushed": null`` (Rule 7): their
     blobs, and those of their previous releases, are on disk.
   - At start in another boot than ``boot.json`` names (or in a store without one):
     the blobs of releases whose file says ``null`` (or that predate the stamp) are
     trusted; every other blob a loaded release (live, previous, pending) names is
     hashed again and dropped unless it matches, and every other blob and partial file
     is dropped (``reverify``: ``blobhold.py`` rule 4). Rule 3 then makes the releases
     that lost blobs pending, and their blobs are fetched again; until then their
     missing files answer 503, never wrong bytes. The releases are then marked flushed
     (what is left was read from disk) and ``boot.json`` is rewritten.
   A store opened with ``boot_id=None`` (no boot id) fsyncs every blob and directory
   (packs and their indexes too) before a switch instead (``blobhold.py`` rule 1).
7. A release file is written once. Its switch time (Rule 2) and its flush (Rule 6)
   go, once known, into ``<service>.stamp.json`` (written durably as any release file),
   which names the release file it is about by the random ``"file"`` token that file
   holds: a stamp of another file (one replaced by a switch since) is ignored at start,
   and the release file's own ``switched_at`` and ``unflushed`` hold. A file without a
   token (an older owncdn's) is written whole instead, with one. Rewriting the file
   whole after each flush wrote every manifest it holds again: 22 MB an edge for a
   one-file push to a site of 100,000 files, besides the 22 MB of the switch.
8. A release file holds one manifest, its own; the previous release is named by
   number and id, and its manifest is in ``<service>.previous.json``, the file it was
   served from: a switch renames the current file there (when the previous release
   is the one served until now) just before it renames the pending file into place,
   and one fsync of the directory makes both durable. At start the previous release is
   read from that file when it is the one named (else there is none: a rollback then
   fetches its manifest); a service whose current file is missing while that one is
   there (a crash between the two renames) serves the release it holds, the one served
   before the switch. A file of an older owncdn that holds the previous manifest
   itself is read as it is, and the previous file is written from it when needed.
   A one-file push to 100,000 files wrote 22 MB an edge (two manifests) and now 11 MB.
9. ``missing(target)`` is asked at every step of a release (its inline blobs, each
   fetch round, before and at the switch). The answer is remembered with the store's
   drop count (``blobhold.py`` rule 5), and the next question only looks again at the
   blobs missing then and at those dropped since; a release made of its changes from
   a base (``Target.from_changes``) whose blobs were all held (the release served
   now, asked at its switch), none dropped since, is first asked about the blobs of
   its changed files alone. A rollback to the previous release takes what is known
   of it. A one-file push to 100,000 files asked about every blob 4 times an edge,
   11-30 ms each.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from owncdn.core.content.changes import apply_changes, encoded_as
from owncdn.core.content.digest import NEW
from owncdn.core.content.manifest import Manifest, parse_manifest
from owncdn.durable import boot_id as system_boot_id
from owncdn.durable import fsync_dir, sync_filesystem
from owncdn.edge.blobhold import BlobHold
from owncdn.edge.formfiles import FormFiles

__all__ = ["Live", "Prepared", "ReleaseStore", "Target"]

_TMP_IDS = itertools.count(1)  # one name per pending release file, whatever thread writes it
_SYSTEM = "system"  # ReleaseStore(boot_id=_SYSTEM): this machine's boot id (Rule 6)
FEW_MISSING = 16  # missing() lists blobs by name when at most 1/16 of a release's are missing


@dataclass(frozen=True, slots=True)
class Target:
    """A release this edge should serve: what the control plane sent for a service."""

    service: str
    number: int
    id: str
    manifest: Manifest
    released_at: float | None = None  # when the release was made, if the control plane said
    _manifest_json: bytes | None = field(default=None, init=False, compare=False, repr=False)
    _encoded: bytes | None = field(default=None, init=False, compare=False, repr=False)
    _blobs: dict[str, int] | None = field(default=None, init=False, compare=False, repr=False)
    # Rule 9: (drop count, the blobs missing then), and (base, blob -> size of the changed files)
    _unheld: tuple[int, dict[str, int]] | None = field(default=None, init=False, compare=False, repr=False)
    _base: tuple["Target", dict[str, int]] | None = field(default=None, init=False, compare=False, repr=False)
    # Rule 5: (base id, the blobs of the files it changed there)
    _replaced: tuple[str, set[str]] | None = field(default=None, init=False, compare=False, repr=False)

    @classmethod
    def from_event(cls, data: dict, known: Manifest | None = None) -> "Target":
        """From a ``release`` channel event; ValueError / ManifestError when malformed.
        ``known``: the manifest served now, whose unchanged entries are not checked again
        (``parse_manifest``)."""
        created = data.get("created_at", data.get("created"))
        target = cls(str(data["service"]), int(data["number"]), str(data["id"]),
                     parse_manifest(data["manifest"], known), _timestamp(created))
        # valid, so it holds just the manifest's entries: its encoding is the manifest's
        object.__setattr__(target, "_manifest_json", orjson.dumps(data["manifest"]))
        return target

    @classmethod
    def from_changes(cls, data: dict, base: "Target") -> "Target":
        """From a ``release`` event that carries the release's changes from ``base``'s
        manifest (``releasesync.py`` Rule 9); ManifestError when they do not give the
        announced id. Its encoding is ``base``'s edited (``changes.py`` Rule 6)."""
        changes = data["changes"]
        manifest = apply_changes(base.manifest, changes)
        target = cls(str(data["service"]), int(data["number"]), str(data["id"]), manifest,
                     _timestamp(data.get("created_at", data.get("created"))))
        encoded = encoded_as(manifest, target.id, base.manifest, changes, base.manifest_json)
        object.__setattr__(target, "_manifest_json", encoded)  # its release file's
        files = manifest.files
        changed = {entry.sha256: entry.size for entry in (files.get(path) for path in changes) if entry is not None}
        object.__setattr__(target, "_base", (base, changed))  # Rule 9
        was = base.manifest.files
        replaced = {entry.sha256 for entry in (was.get(path) for path in changes) if entry is not None}
        object.__setattr__(target, "_replaced", (base.id, replaced))
        return target

    @classmethod
    def held_as(cls, data: dict, held: "Target") -> "Target":
        """From a ``release`` event for a release whose manifest this edge holds already
        (``held``, the same id: a rollback to the previous release), without its changes."""
        target = cls(str(data["service"]), int(data["number"]), held.id, held.manifest,
                     _timestamp(data.get("created_at", data.get("created"))))
        object.__setattr__(target, "_manifest_json", held._manifest_json)
        object.__setattr__(target, "_unheld", held._unheld)  # Rule 9: the same blobs
        return target

    @property
    def blobs(self) -> dict[str, int]:
        """``manifest.blobs`` (blob name -> size), computed once: asked at every fetch
        round, switch and collection. Not to be changed."""
        if self._blobs is None:
            object.__setattr__(self, "_blobs", self.manifest.blobs)
        return self._blobs

    def to_json(self) -> dict:
        return {"service": self.service, "number": self.number, "id": self.id,
                "released_at": self.released_at, "manifest": self.manifest.to_json()}

    @property
    def manifest_json(self) -> bytes:
        """The manifest's JSON (computed once per target: release files name it again as
        the previous release)."""
        if self._manifest_json is None:
            object.__setattr__(self, "_manifest_json", orjson.dumps(self.manifest.to_json()))
        return self._manifest_json

    def _fields(self) -> dict:
        """``to_json`` with the manifest as its encoded JSON."""
        return {"service": self.service, "number": self.number, "id": self.id,
                "released_at": self.released_at, "manifest": orjson.Fragment(self.manifest_json)}

    def ref(self) -> dict:
        """How a release file names this one as its previous (Rule 8)."""
        return {"service": self.service, "number": self.number, "id": self.id, "released_at": self.released_at}

    def encoded(self) -> bytes:
        """``to_json`` encoded (once per target)."""
        if self._encoded is None:
            object.__setattr__(self, "_encoded", orjson.dumps(self._fields()))
        return self._encoded

    @classmethod
    def from_json(cls, data: dict) -> "Target":
        return cls(data["service"], int(data["number"]), data["id"], parse_manifest(data["manifest"]),
                   data.get("released_at"))


@dataclass(slots=True, eq=False)
class Live:
    """The release a service serves now (Rule 5)."""

    target: Target
    released_at: float  # Last-Modified of every file
    previous: Target | None = None
    memo: dict = field(default_factory=dict)  # for edge/static.py: answers by (target, accept-encoding)
    bodies: dict = field(default_factory=dict)  # edge/static.py rule 4: blob name -> bytes | DiskBody
    small_bytes: int = 0
    open_blobs: int = 0
    switched_at: float = 0.0  # when the release was switched to (Rule 2)
    unflushed: float | None = None  # Rule 6: monotonic time of the switch, until a flush after it
    ahead: bool = False  # Rule 2: its file, written ahead, says when the fetch began, not switched_at
    file: str | None = None  # Rule 7: the token of its release file (None: a file without one)
    site: tuple | None = None  # edge/static.py rule 8: (the service's SiteRules, them with its _redirects file's)

    @property
    def files(self):
        return self.target.manifest.files

    def __repr__(self) -> str:
        return f"<Live {self.target.service} #{self.target.number} files={len(self.files)}>"


@dataclass(slots=True, eq=False)
class Prepared:
    """The release file of a pending target, written ahead of its switch (Rule 2)."""

    target: Target
    previous: Target | None  # the previous release the file names: the live one when it was made
    switched_at: float
    unflushed: float | None  # Rule 6: what the file says (None where blobs are fsynced first)
    written: bool = False  # renamed to <service>.pending.json, fsynced
    data: bytes = b""  # the file's bytes, once encoded
    token: str = field(default_factory=lambda: os.urandom(8).hex())  # Rule 7: its stamp names it

    def encode(self) -> bytes:
        """The release file's bytes (the manifests' encodings are kept per target)."""
        previous = self.previous
        return orjson.dumps(self.target._fields() | {
            "switched_at": self.switched_at, "unflushed": self.unflushed, "file": self.token,
            "previous": previous.ref() if previous is not None else None})  # Rule 8: its manifest is in its own file

    def __repr__(self) -> str:
        return f"<Prepared {self.target.service} #{self.target.number} written={self.written}>"


def _timestamp(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def write_json(path: Path, data: dict | bytes, durable: bool = True) -> None:
    """Temp file, fsync, rename, directory fsync (Rule 2); without ``durable`` the two
    fsyncs are left out (the file is whole or absent after a crash of this process,
    and may be lost with the machine). ``data``: a dict, or its encoding."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else orjson.dumps(data))
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


class ReleaseStore(BlobHold):
    """Releases over the blobs they name (a ``BlobHold``, Rule 1)."""

    def __init__(self, root: Path, clock=time.time, boot_id: str | None = _SYSTEM) -> None:
        super().__init__(root, system_boot_id() if boot_id == _SYSTEM else boot_id)  # Rule 6; None: fsync everything
        self.releases = self.root / "releases"
        self.releases.mkdir(parents=True, exist_ok=True)
        for leftover in self.releases.glob("*.tmp"):  # a release file cut off before its rename
            leftover.unlink(missing_ok=True)
        self.clock = clock
        self.live: dict[str, Live] = {}
        self.manifest_bytes = 0  # manifests and changes received in release events (releasesync.py rule 9)
        self.pending: dict[str, Target] = {}
        self.upcoming: dict[str, Target] = {}  # prefetched, not to be served (releasesync.py rule 6); in memory only
        self.prepared: dict[str, Prepared] = {}  # Rule 2: the latest release file begun per pending service
        self.files = threading.Lock()  # Rule 2: guards `prepared` and the names of pending files
        self.on_disk: dict[str, dict[str, tuple[int, str] | None]] = {}  # Rule 8: service -> file -> (number, id)
        self.forms = FormFiles(self.root / "forms")  # the edge's compressed forms of these blobs (variants.py Rule 3)
        self.load()

    def __repr__(self) -> str:
        return f"<ReleaseStore {self.root} live={sorted(self.live)} pending={sorted(self.pending)}>"

    # -- loading (Rule 3) ----------------------------------------------------------
    def load(self) -> None:
        previous_files = {path.name[:-len(".previous.json")]: path for path in self.releases.glob("*.previous.json")}
        for path in sorted(self.releases.glob("*.json")):
            if path.name.endswith((".stamp.json", ".previous.json")):
                continue  # Rules 7, 8: read with their release file
            try:
                data = json.loads(path.read_text())
                if path.name.endswith(".pending.json"):
                    target = Target.from_json(data)
                    self.pending[target.service] = target
                else:
                    self._load_live(data, previous_files.get(path.name[:-len(".json")]), "current")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(f"owncdn edge: ignoring {path}: {exc}", flush=True)
        for name, path in previous_files.items():  # Rule 8: a switch cut off between its renames
            if name not in self.live and not (self.releases / f"{name}.json").exists():
                try:
                    self._load_live(json.loads(path.read_text()), None, "previous")
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    print(f"owncdn edge: ignoring {path}: {exc}", flush=True)
        self._check_boot()
        for live in self.live.values():
            if live.target.released_at is not None:
                live.released_at = live.target.released_at
            if self.missing(live.target) and live.target.service not in self.pending:
                self.pending[live.target.service] = live.target  # blobs lost on disk: fetch them again

    def _load_live(self, data: dict, previous_file: Path | None, held_in: str) -> None:
        """Rule 3: the live release of a release file (``held_in``: which file it is, Rule 8)."""
        target = Target.from_json(data)
        prev, named, on_disk = None, data.get("previous"), {"current": None, "previous": None}
        if isinstance(named, dict) and "manifest" in named:  # an older owncdn's file (Rule 8)
            prev = Target.from_json(named)
        elif isinstance(named, dict) and previous_file is not None:
            try:
                kept = json.loads(previous_file.read_text())
                if kept.get("number") == named.get("number") and kept.get("id") == named.get("id"):
                    prev = Target.from_json(kept)
                    on_disk["previous"] = (prev.number, prev.id)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(f"owncdn edge: ignoring {previous_file}: {exc}", flush=True)
        on_disk[held_in] = (target.number, target.id)
        token = data.get("file") if isinstance(data.get("file"), str) else None
        stamp = self._stamp(target.service, token) or data
        switched_at = float(stamp["switched_at"])
        unflushed = stamp.get("unflushed")
        self.live[target.service] = Live(target, switched_at, prev, switched_at=switched_at,
                                         unflushed=None if unflushed is None else float(unflushed), file=token)
        self.on_disk[target.service] = on_disk

    def _files_of(self, service: str) -> dict[str, tuple[int, str] | None]:
        """Rule 8: which release each file of ``service`` holds (``current``, ``previous``)."""
        return self.on_disk.setdefault(service, {"current": None, "previous": None})

    def _keep_previous(self, service: str, previous: Target | None) -> None:
        """Rule 8, under ``files``: ``<service>.previous.json`` made to hold ``previous``
        (the current file renamed there, or the file written) before a new current file."""
        if previous is None:
            return
        on_disk = self._files_of(service)
        held = (previous.number, previous.id)
        if on_disk["previous"] == held:
            return
        there = self.releases / f"{service}.previous.json"
        if on_disk["current"] == held:
            os.replace(self.releases / f"{service}.json", there)
            on_disk["current"] = None
        else:
            write_json(there, previous.encoded())
        on_disk["previous"] = held

    def _stamp(self, service: str, token: str | None) -> dict | None:
        """Rule 7: the stamp of the release file holding ``token``, if there is one."""
        if token is None:
            return None
        try:
            stamp = json.loads((self.releases / f"{service}.stamp.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(stamp, dict) or stamp.get("file") != token or "switched_at" not in stamp:
            return None
        return stamp

    # -- the machine's boot (Rule 6) ----------------------------------------------------
    def _check_boot(self) -> None:
        """Rule 6, at start: in another boot, blobs that may have been lost are hashed
        again (or deleted); then ``boot.json`` names this boot."""
        if self.boot is None:
            return
        marker = self.root / "boot.json"
        try:
            recorded = json.loads(marker.read_text()).get("boot_id")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded == self.boot:
            return
        self._reverify()
        for live in self.live.values():
            if live.unflushed is not None:
                live.unflushed = None
                self._write_stamp(live)
        write_json(marker, {"boot_id": self.boot})

    def _reverify(self) -> None:
        """Rule 6: the blobs of releases marked flushed trusted, those of the others
        hashed again (``blobhold.py`` rule 4)."""
        trusted: set[str] = set()
        check: set[str] = set()
        for live in self.live.values():
            named = set(live.target.blobs)
            if live.previous is not None:
                named.update(live.previous.manifest.blobs)
            (trusted if live.unflushed is None else check).update(named)
        for target in self.pending.values():
            check.update(target.blobs)
        self.reverify(trusted, check)

    def _write_live(self, live: Live) -> None:
        """The release file of ``live`` (Rule 2), with its switch time and flush stamp (Rule 6)."""
        service = live.target.service
        prepared = Prepared(live.target, live.previous, live.switched_at, live.unflushed)
        with self.files:
            self._keep_previous(service, live.previous)
            write_json(self.releases / f"{service}.json", prepared.encode())
            self._files_of(service)["current"] = (live.target.number, live.target.id)
        live.ahead, live.file = False, prepared.token

    def _write_stamp(self, live: Live) -> None:
        """Rule 7: the switch time and flush of ``live`` next to its release file (the file
        written whole where it holds no token)."""
        if live.file is None:
            self._write_live(live)
            return
        write_json(self.releases / f"{live.target.service}.stamp.json",
                   {"file": live.file, "switched_at": live.switched_at, "unflushed": live.unflushed})
        live.ahead = False

    def flush(self) -> float:
        """Rule 6 (in a thread): write back everything written so far (one ``syncfs``);
        the monotonic time it began, for ``mark_flushed``."""
        began = time.monotonic()
        sync_filesystem(self.blobs)
        return began

    def mark_flushed(self, began: float) -> int:
        """Rule 6: the releases switched before a flush that began at ``began`` say so in
        their files, and files written ahead get their switch time (Rule 2); how many
        files were rewritten."""
        done = 0
        for live in list(self.live.values()):
            flushed = live.unflushed is not None and live.unflushed <= began
            if flushed or live.ahead:
                if flushed:
                    live.unflushed = None
                self._write_stamp(live)
                done += 1
        return done

    def unflushed(self) -> int:
        """Live releases whose blobs may not be on disk yet (Rule 6)."""
        return sum(1 for live in self.live.values() if live.unflushed is not None)

    def ahead(self) -> int:
        """Live releases whose files, written ahead, do not say their switch time yet (Rule 2)."""
        return sum(1 for live in self.live.values() if live.ahead)

    # -- the blobs of releases (Rule 1) ----------------------------------------------------
    def missing(self, target: Target) -> dict[str, int]:
        """Blobs of ``target`` not held here: blob name -> size, in the manifest's order,
        or by name when they are few (not to be changed: Rule 9 remembers it)."""
        count = self.drops  # before looking in held (blobhold.py rule 5)
        held = self.held
        unheld = {sha: size for sha, size in self._maybe_missing(target).items() if sha not in held}
        object.__setattr__(target, "_unheld", (count, unheld))
        object.__setattr__(target, "_base", None)  # used: no chain of releases kept alive
        return unheld

    def _maybe_missing(self, target: Target) -> dict[str, int]:
        """Rule 9: blobs of ``target`` that may not be held (all that are not among them)."""
        known = target._unheld
        if known is not None:
            since = self.dropped_since(known[0])
            if since is not None:
                if not since:
                    return known[1]
                blobs = target.blobs
                lost = {sha: blobs[sha] for sha in since if sha in blobs}
                return {**known[1], **lost} if lost else known[1]
        elif target._base is not None:
            base, changed = target._base
            based = base._unheld
            if based is not None and not based[1]:
                since = self.dropped_since(based[0])
                if since is not None and not (since and any(sha in base.blobs for sha in since)):
                    return {sha: changed[sha] for sha in sorted(changed)}
        return self._all_missing(target)

    def _all_missing(self, target: Target) -> dict[str, int]:
        """Every blob of ``target`` not held (found without a loop in Python: the usual
        answer at a switch is none, and a one-file push to 100,000 files misses one)."""
        blobs = target.blobs
        gone = blobs.keys() - self.held.keys()
        if len(gone) * FEW_MISSING <= len(blobs):
            return {sha: blobs[sha] for sha in sorted(gone)}
        return {sha: size for sha, size in blobs.items() if sha in gone}

    def install(self, service: str, number: int, files: dict[str, bytes], released_at: float | None = None,
                algo: str = NEW) -> Live:
        """Store ``files`` (path -> bytes) as blobs named with ``algo`` and switch to them
        as release ``number`` (tests, and tools that install a release without a control plane)."""
        rows = [(path, self.put_blob(data, algo), len(data)) for path, data in files.items()]
        manifest = Manifest.build(rows)
        return self.switch(Target(service, number, manifest.id, manifest, released_at))

    # -- switching (Rule 2) -------------------------------------------------------------
    def set_pending(self, target: Target) -> None:
        """Remember the release being fetched, so a restart resumes it (Rule 3), and write
        its release file ahead (Rule 2), in the calling thread."""
        self.write_pending(self.begin_pending(target))

    def begin_pending(self, target: Target) -> Prepared:
        """Record ``target`` as the release being fetched (in memory, at once) and begin
        its release file (Rule 2), which ``write_pending`` writes (in any thread)."""
        self.pending[target.service] = target
        prepared = Prepared(target, self._previous(target), self.clock(), time.monotonic() if self.lazy else None)
        prepared.data = prepared.encode()  # here: Python work in a thread would hold the GIL the loop waits for
        with self.files:
            self.prepared[target.service] = prepared
        return prepared

    def write_pending(self, prepared: Prepared) -> bool:
        """Rule 2 (any thread): the release file of ``prepared``, written and fsynced as a
        temp file, renamed to ``<service>.pending.json`` unless another target was begun
        or the pending one cleared meanwhile; whether it was. A restart finds it there
        (Rule 3); without the directory's fsync a crash of the machine may lose the name,
        and the control plane sends the release again when the edge reconnects."""
        service = prepared.target.service
        tmp = self.releases / f"{service}.pending.{next(_TMP_IDS)}.tmp"
        named = False
        try:
            with open(tmp, "wb") as f:
                f.write(prepared.data or prepared.encode())
                f.flush()
                os.fsync(f.fileno())
            with self.files:
                if self.prepared.get(service) is prepared:
                    os.replace(tmp, self.releases / f"{service}.pending.json")
                    named = prepared.written = True
        finally:
            if not named:
                tmp.unlink(missing_ok=True)
        return named

    def clear_pending(self, service: str) -> None:
        self.pending.pop(service, None)
        with self.files:
            self.prepared.pop(service, None)
            try:
                os.unlink(self.releases / f"{service}.pending.json")
            except FileNotFoundError:
                pass

    def _previous(self, target: Target) -> Target | None:
        """The previous release ``target`` would have if switched now."""
        old = self.live.get(target.service)
        if old is None:
            return None
        return old.target if old.target.id != target.id else old.previous

    def switch(self, target: Target) -> Live:
        """Serve ``target`` from now on; the old release becomes the previous one."""
        missing = self.missing(target)
        if missing:
            raise ValueError(f"release {target.number} of {target.service} lacks {len(missing)} blobs here")
        service = target.service
        old = self.live.get(service)
        previous = self._previous(target)
        self.sync_dirs()
        with self.files:
            prepared = self.prepared.get(service)
            ready = (prepared is not None and prepared.written and prepared.previous is previous
                     and prepared.target.id == target.id and prepared.target.number == target.number)
            if ready:  # Rule 2: written ahead; only its name changes now
                try:
                    self._keep_previous(service, previous)  # Rule 8
                    os.replace(self.releases / f"{service}.pending.json", self.releases / f"{service}.json")
                    self._files_of(service)["current"] = (target.number, target.id)
                except OSError:  # gone meanwhile (removed by hand?): written below as it would be without
                    ready = False
                del self.prepared[service]
        if ready:
            fsync_dir(self.releases)
        switched_at = self.clock()
        live = Live(target, target.released_at if target.released_at is not None else switched_at, previous,
                    switched_at=switched_at, unflushed=time.monotonic() if self.lazy else None, ahead=ready,
                    file=prepared.token if ready else None)
        if not ready:
            self._write_live(live)
        if old is not None:
            _hand_over_bodies(old, live)
        object.__setattr__(target, "_replaced", None)  # used (a big release's changes: a big set)
        self.live[service] = live
        pending = self.pending.get(service)
        if pending is not None and pending.id == target.id:
            if ready:
                del self.pending[service]
            else:
                self.clear_pending(service)
        return live

    def drop(self, service: str) -> None:
        """The control plane holds no release of ``service`` for this edge any more."""
        self.live.pop(service, None)
        self.clear_pending(service)
        self.on_disk.pop(service, None)
        for name in (f"{service}.json", f"{service}.stamp.json", f"{service}.previous.json"):
            try:
                os.unlink(self.releases / name)
            except FileNotFoundError:
                pass

    def stats(self) -> dict:
        """Per service: the release served, the previous one and the one being fetched."""
        out: dict[str, dict] = {}
        for service, live in self.live.items():
            out[service] = {"serving": live.target.number, "id": live.target.id, "files": len(live.files),
                            "previous": live.previous.number if live.previous is not None else None}
        for service, target in self.pending.items():
            out.setdefault(service, {"serving": None})["fetching"] = target.number
        return out

    def metric_families(self, prefix: str):
        """Prometheus families for the edge's /metrics (metrics.py builds them at scrape time)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        serving = GaugeMetricFamily(prefix + "release", "Number of the release each push service serves.",
                                    labels=["service"])
        for service, live in sorted(self.live.items()):
            serving.add_metric([service], live.target.number)
        yield serving
        yield GaugeMetricFamily(prefix + "releases_fetching", "Push services whose next release is being fetched.",
                                value=len(self.pending))
        yield GaugeMetricFamily(prefix + "release_blobs", "Blobs of pushed releases held on this edge.",
                                value=len(self.held))
        yield CounterMetricFamily(prefix + "release_fetched_bytes", "Blob bytes fetched from the control plane.",
                                  value=self.fetched_bytes)
        yield CounterMetricFamily(prefix + "release_manifest_bytes",
                                  "Bytes of release manifests (or their changes) received from the control plane.",
                                  value=self.manifest_bytes)
        yield CounterMetricFamily(prefix + "release_fetched_blobs", "Blobs fetched and verified.",
                                  value=self.fetched_blobs)
        yield GaugeMetricFamily(prefix + "releases_unflushed",
                                "Live releases whose blobs may not be on disk yet (written back in the background).",
                                value=self.unflushed())

    # -- garbage (Rule 4) -------------------------------------------------------------
    def wanted(self, extra: set[str] = frozenset(), previous: bool = True) -> set[str]:
        """The blobs to keep: those of the live releases, of the releases they were
        switched from (unless not ``previous``: ``releasesync`` Rule 3 makes room), of
        the pending and upcoming ones, and ``extra``."""
        keep = set(extra)
        for live in self.live.values():
            keep.update(live.target.blobs)
            if previous and live.previous is not None:
                keep.update(live.previous.manifest.blobs)
        for target in [*self.pending.values(), *self.upcoming.values()]:
            keep.update(target.blobs)
        return keep

    def collect(self, keep: set[str] | None = None) -> tuple[int, int]:
        """``BlobHold.collect`` (``blobhold.py`` rule 3) of ``keep``, by default
        ``wanted()`` (compute it on the event loop's thread when this runs in another);
        then the compressed forms of the blobs dropped (``formfiles.py`` Rule 4)."""
        keep = self.wanted() if keep is None else keep
        dropped = super().collect(keep)
        self.forms.collect(keep)
        return dropped


def _hand_over_bodies(old: Live, new: Live) -> None:
    """Rule 5: the bodies ``old`` kept of blobs ``new`` names, given to ``new``, a new
    release that holds none yet (bytes count against its memory budget, anything else
    is an open blob). A copy of them all less the few the new release no longer names:
    a push of one file of a thousand hands over all but one (a loop over every body
    took 0.2-0.5 ms of a switch). Of a release made of its changes from ``old``'s
    (``Target.from_changes``), the bodies of the blobs its changed files had there
    are the ones left behind, whether or not another file still names them (one is
    then read again): no set of every blob it names is made before the switch
    (8-10 ms for 100,000 files)."""
    if not old.bodies:
        return
    bodies = dict(old.bodies)
    small, opened = old.small_bytes, old.open_blobs
    replaced = new.target._replaced
    if replaced is not None and replaced[0] == old.target.id:
        gone = old.bodies.keys() & replaced[1]
    else:
        gone = old.bodies.keys() - new.target.blobs.keys()
    for sha in gone:
        body = bodies.pop(sha)
        if isinstance(body, bytes):
            small -= len(body)
        else:
            opened -= 1
    new.bodies, new.small_bytes, new.open_blobs = bodies, small, opened


def open_releases(state_dir: Path | None, config=None, control: str | None = None) -> ReleaseStore | None:
    """The release store under an edge's state directory: for an edge that follows a
    control plane (releases arrive there), or whose config has push services; none
    for a pull-only edge on its own, which never writes there."""
    if state_dir is None:
        return None
    if control is None and not any(svc.mode == "push" for svc in getattr(config, "services", ())):
        return None
    return ReleaseStore(Path(state_dir) / "push")
