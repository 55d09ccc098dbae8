"""A directory that one process at a time may use: an exclusive lock on ``<dir>/lock``.

    key = lock(directory, StoreInUse, "a blob store belongs to one control plane")
    weakref.finalize(owner, unlock, key)

Rules:
1. ``lock`` takes ``flock(LOCK_EX | LOCK_NB)`` on ``<dir>/lock`` (made if missing) and
   writes the process's pid into it. Another process holding it: the error class given
   is raised with a message naming the directory, that pid and the reason given; the
   caller has touched nothing yet.
2. Within one process the lock is shared: each ``lock`` of the same directory (by its
   real path) counts one more user, each ``unlock(key)`` one less, and the last lets
   it go (the descriptor closed). The process ending lets it go too, however it ends,
   so a crash never leaves a directory locked.
3. The descriptor is close-on-exec: a program the process starts does not hold it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

__all__ = ["lock", "unlock"]

_HELD: dict[str, list] = {}  # real path -> [locked descriptor, users] (Rule 2)
_HELD_LOCK = threading.Lock()


def lock(directory: Path, error: type[Exception], reason: str) -> str:
    """Rules 1, 2: the directory held for one more user; the key to ``unlock`` with."""
    key = os.path.realpath(directory)
    with _HELD_LOCK:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
            return key
        fd = os.open(f"{key}/lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 20, 0).decode("ascii", "replace").strip()
            os.close(fd)
            by = f" (pid {holder})" if holder.isdigit() else ""
            raise error(f"{directory} is in use by another process{by}; {reason}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        _HELD[key] = [fd, 1]
        return key


def unlock(key: str) -> None:
    """Rule 2: one user less; the last lets the lock go."""
    with _HELD_LOCK:
        held = _HELD[key]
        held[1] -= 1
        if not held[1]:
            del _HELD[key]
            os.close(held[0])
