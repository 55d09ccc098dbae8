"""The disk tier's fsync policies: when a written or removed object is made durable.

Rules:
1. "always": fsync the file before the rename and its directory after it; `put` /
   `commit` returns only when the object survives a power loss. Removals fsync the
   directory too.
2. "batch" (default): `commit` does not wait for the disk. A flusher thread fsyncs
   renamed files and their directories at least every `batch_interval` (1 s) or
   whenever `batch_objects` (64) are pending; `flush()` / `close()` do it at once.
   A power loss can lose about the last second of writes (and removals); what it
   leaves half-written is found by disk.py rule 5.
3. "never": no fsync. A process crash (even SIGKILL) loses nothing committed, since
   the kernel holds the data; a power loss can lose anything recent.
4. Under every policy a corrupt object is never served (disk.py rule 5).
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["FSYNC_POLICIES", "Syncer", "fsync_dir"]

FSYNC_POLICIES = ("always", "batch", "never")
log = logging.getLogger("owncdn.edge.disk")  # the disk store's logger, as before the split


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Syncer:
    """Carries out the fsync policy (rules 1-3).

    "batch" hands renamed files to a flusher thread (started on first use, and again
    after a fork) that fsyncs them and their directories once `interval` has passed
    or `max_pending` files wait; a writer that finds 4 x `max_pending` waiting
    flushes inline, so a slow disk slows writers down instead of piling up files.
    """

    def __init__(self, policy: str, interval: float, max_pending: int) -> None:
        if policy not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {policy!r}")
        self.policy = policy
        self.interval = interval
        self.max_pending = max_pending
        self._fds: list[int] = []
        self._dirs: set[str] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def before_rename(self, fd: int) -> None:
        if self.policy == "always":
            os.fsync(fd)

    def after_rename(self, fd: int, directory: str) -> None:
        """Takes ownership of `fd`."""
        if self.policy == "batch":
            self._queue(fd, directory)
            return
        os.close(fd)
        if self.policy == "always":
            fsync_dir(directory)

    def removed(self, directory: str) -> None:
        if self.policy == "always":
            fsync_dir(directory)
        elif self.policy == "batch":
            self._queue(None, directory)

    def _queue(self, fd: int | None, directory: str) -> None:
        with self._wake:
            if fd is not None:
                self._fds.append(fd)
            self._dirs.add(directory)
            backlog = len(self._fds)
            if backlog >= self.max_pending:
                self._wake.notify()
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(target=self._run, name="owncdn-disk-fsync",
                                                daemon=True)
                self._thread.start()
        if backlog >= 4 * self.max_pending:
            self.flush()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._closed or len(self._fds) >= self.max_pending,
                                    timeout=self.interval)
                if self._closed:
                    return
            try:
                self.flush()
            except OSError as exc:
                log.error("disk store: fsync failed, recent objects may not survive a power loss: %s", exc)

    def flush(self) -> None:
        """fsync everything pending; raises the first error after trying every file."""
        with self._wake:
            fds, dirs = self._fds, self._dirs
            self._fds, self._dirs = [], set()
        errors: list[OSError] = []
        for fd in fds:
            try:
                os.fsync(fd)
            except OSError as exc:
                errors.append(exc)
            finally:
                os.close(fd)
        for directory in dirs:
            try:
                fsync_dir(directory)
            except FileNotFoundError:
                pass  # the store's directory is gone: nothing left to make durable
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()

    @property
    def pending(self) -> int:
        return len(self._fds) + len(self._dirs)
