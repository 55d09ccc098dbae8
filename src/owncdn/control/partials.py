"""The first bytes of blobs whose upload broke, kept so the upload resumes where it stopped.

    partials = Partials(root / "partials")
    partials.keep(sha, tmp, size)        # a PUT cut off: its temp file kept (or removed)
    partials.held(names)                 # {name: bytes kept}, for the missing answer
    fd = partials.take(sha, offset, tmp) # a resumed PUT: moved to tmp, cut to offset
    partials.drop(sha); partials.drop_older(cutoff)

Part of a directory blob store (``dirblobs`` Rule 9, which holds the rules: a blob
store of one process, so what is kept is known in memory).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from owncdn.control.blobs import BlobError
from owncdn.core.content.digest import is_blob_name

__all__ = ["PARTIAL_MIN", "PartialGone", "Partials"]

PARTIAL_MIN = 1 << 20  # fewer bytes are not kept: sending them again is cheap
log = logging.getLogger("owncdn.control.partials")


class PartialGone(BlobError, LookupError):
    """No kept partial of ``sha`` holds the ``offset`` bytes a resumed upload starts from."""

    def __init__(self, sha: str, offset: int, have: int) -> None:
        self.sha, self.offset, self.have = sha, offset, have
        held = f"holds {have} bytes of it" if have else "holds none of it"
        super().__init__(f"blob {sha}: the upload resumes at byte {offset}, but the control plane {held}; "
                         f"send it from byte {have}")


class Partials:
    """Kept partial uploads, one file each, ``<directory>/<sha>``."""

    def __init__(self, directory: str | Path, min_bytes: int = PARTIAL_MIN) -> None:
        self.directory, self.min_bytes = str(directory), min_bytes
        os.makedirs(self.directory, exist_ok=True)
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        for entry in os.scandir(self.directory):
            if is_blob_name(entry.name) and entry.is_file(follow_symlinks=False):
                self._held[entry.name] = entry.stat(follow_symlinks=False).st_size
            elif entry.is_dir(follow_symlinks=False):
                continue  # not ours to delete
            else:
                os.unlink(entry.path)

    def __repr__(self) -> str:
        return f"<Partials {self.directory} {len(self._held)} kept>"

    def keep(self, sha: str, tmp: str, size: int) -> bool:
        """The temp file of an upload of ``sha`` cut off after ``size`` bytes: kept in place
        of any earlier one if it holds ``min_bytes``, else removed."""
        if size < self.min_bytes:
            _remove(tmp)
            return False
        with self._lock:
            os.replace(tmp, f"{self.directory}/{sha}")
            self._held[sha] = size
        log.info("blob %s: kept the %d bytes of an upload that broke, to resume from", sha, size)
        return True

    def held(self, names) -> dict[str, int]:
        """``{name: bytes kept}`` of those of ``names`` with a partial."""
        held = self._held
        if not held:
            return {}
        found = {sha: held.get(sha) for sha in names if sha in held}  # get: taken meanwhile, in another thread
        return {sha: size for sha, size in found.items() if size is not None}

    def take(self, sha: str, offset: int, tmp: str) -> int:
        """The partial of ``sha`` moved to ``tmp`` (no other upload can take it then) and
        cut to ``offset`` bytes: a descriptor open for reading and writing. ``PartialGone``
        when none holds ``offset`` bytes (the partial left as it was; one found shorter
        than when it was kept is removed)."""
        path = f"{self.directory}/{sha}"
        with self._lock:
            have = self._held.get(sha, 0)
            if have < offset:
                raise PartialGone(sha, offset, have)
            del self._held[sha]
            try:
                os.replace(path, tmp)
            except FileNotFoundError:
                raise PartialGone(sha, offset, 0) from None
        fd = os.open(tmp, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        try:
            if os.fstat(fd).st_size < offset:  # shorter than when it was kept (cut by hand): useless
                raise PartialGone(sha, offset, 0)
            os.ftruncate(fd, offset)
        except BaseException:
            os.close(fd)
            _remove(tmp)
            raise
        return fd

    def drop(self, sha: str) -> None:
        """The blob is stored: its partial, if any, is not needed."""
        with self._lock:
            if self._held.pop(sha, None) is None:
                return
            _remove(f"{self.directory}/{sha}")

    def drop_older(self, cutoff: float, dry_run: bool = False) -> tuple[int, int]:
        """Partials last written before ``cutoff`` (a wall-clock time) removed (with
        ``dry_run`` only counted): ``(count, bytes)``."""
        count = freed = 0
        with self._lock:
            for sha in list(self._held):
                path = f"{self.directory}/{sha}"
                try:
                    if os.stat(path).st_mtime >= cutoff:
                        continue
                except FileNotFoundError:
                    if not dry_run:
                        del self._held[sha]
                    continue
                count += 1
                freed += self._held[sha]
                if not dry_run:
                    _remove(path)
                    del self._held[sha]
        return count, freed


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
