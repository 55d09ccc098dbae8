"""The compressed forms of pushed files an edge keeps on its disk (``variants.py`` Rule 3).

    forms = FormFiles(root / "forms")      # <state>/push/forms, next to the blobs
    forms.write(sha, "br", data)           # in the compressing thread
    forms.read(sha, "br")                  # the bytes; b"" (not worth sending); None: none kept
    forms.collect(keep)                    # the forms of blobs not in keep go

Rules:
1. One file per blob and coding, ``forms/<sha[:2]>/<sha>.<coding>``: the form's bytes,
   then the BLAKE3 digest of them (``TRAILER`` bytes). It is written under a temporary
   name and renamed, and never fsynced: a form is a cache, made again when lost, and a
   flush per form would cost the compressing thread more than making it did.
2. A read checks the digest. A file cut short or spoilt (the machine stopped before
   its writeback, a disk that returns other bytes) reads as None and is removed, so
   the form is made again. So forms need neither the boot id nor the flushes of the
   blobs (``releases.py`` rule 6), and a form read is never other bytes than were made.
3. A form not worth sending (``variants.NOT_WORTH``, b"") is kept too, as an empty
   form, so a restarted edge does not compress that file again to find it out.
4. ``collect(keep)`` removes the forms of blobs not in ``keep`` and the temporary files
   of other processes (left by one stopped while writing; this one's are being
   written); it runs after the release store collected its blobs
   (``ReleaseStore.collect``), in that thread.
5. A blob or coding name that is not one (not ``is_blob_name``, or a coding with a
   separator) is never made a path: ``read`` gives None and ``write`` keeps nothing.
   An error of the disk while writing loses only that form's copy on disk (logged
   once per kind of error).
"""

from __future__ import annotations

import logging
import os
import threading
from itertools import count
from pathlib import Path

from blake3 import blake3

from owncdn.core.content.digest import is_blob_name

__all__ = ["FormFiles", "TRAILER"]

log = logging.getLogger("owncdn.edge")

TRAILER = 32  # Rule 1: a BLAKE3 digest
_TMP = ".tmp"
_IDS = count()


class FormFiles:
    """Rules 1-5."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._made: set[str] = set()  # subdirectories known to exist
        self._warned: set[str] = set()
        self._lock = threading.Lock()  # `_made`, `_warned`: written from the compressing and collecting threads

    def __repr__(self) -> str:
        return f"<FormFiles {self.root}>"

    def path(self, sha: str, coding: str) -> Path | None:
        """Rule 5: where the form of ``sha`` in ``coding`` is kept; None for names that are not."""
        if not is_blob_name(sha) or not coding.isalnum():
            return None
        return self.root / sha[:2] / f"{sha}.{coding}"

    def read(self, sha: str, coding: str) -> bytes | None:
        """Rules 2 and 3: the kept form, b"" for one not worth sending, None when none is
        kept (or it was spoilt: then removed)."""
        path = self.path(sha, coding)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:
            return None
        if len(raw) >= TRAILER:
            data = memoryview(raw)[:-TRAILER]
            if _digest(data) == raw[-TRAILER:]:
                return bytes(data)
        try:  # Rule 2
            path.unlink()
        except OSError:
            pass
        return None

    def write(self, sha: str, coding: str, data: bytes) -> bool:
        """Rule 1: keep ``data`` as the form of ``sha`` in ``coding``; False if it could not be."""
        path = self.path(sha, coding)
        if path is None:
            return False
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{next(_IDS)}{_TMP}")
        try:
            if path.parent.name not in self._made:
                path.parent.mkdir(parents=True, exist_ok=True)
                with self._lock:
                    self._made.add(path.parent.name)
            with open(tmp, "wb") as f:
                f.write(data)
                f.write(_digest(data))
            os.replace(tmp, path)
        except OSError as exc:  # Rule 5
            try:
                tmp.unlink()
            except OSError:
                pass
            self._warn(exc)
            return False
        return True

    def collect(self, keep: set[str] | frozenset[str]) -> int:
        """Rule 4: remove the forms of blobs not in ``keep``, and temporary files; how many went."""
        gone = 0
        ours = f".{os.getpid()}."  # this process's temporary files are being written
        try:
            subdirs = [entry.path for entry in os.scandir(self.root) if entry.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return 0
        for sub in subdirs:
            try:
                entries = list(os.scandir(sub))
            except FileNotFoundError:
                continue
            for entry in entries:
                name = entry.name
                if name.endswith(_TMP):
                    if ours in name:
                        continue
                elif name.rpartition(".")[0] in keep:
                    continue
                try:
                    os.unlink(entry.path)
                    gone += 1
                except FileNotFoundError:
                    pass
        return gone

    def _warn(self, exc: OSError) -> None:
        kind = type(exc).__name__
        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        log.warning("a compressed form could not be kept on disk under %s (%s); it stays in memory only "
                    "(told once per kind of error)", self.root, exc)


def _digest(data) -> bytes:
    return blake3(data).digest()
