"""The edge's TLS session-ticket key: one per epoch, the same in every worker.

Rules (the key schedule itself is `core/tls/tickets.py`):
1. With a key file, the key comes from it: (epoch, key), 40 bytes, mode 0600. A
   missing file is created with a random key for the current epoch (written to a
   temporary file, then hard-linked into place, so two workers starting at once
   cannot both create one: the second reads the first's). `owncdn edge --workers N`
   points every worker at `<state-dir>/tls-tickets` (edge/workers.py); a single
   edge with a state directory uses `<state-dir>/tls-tickets` too, so tickets also
   survive a restart. Without a file (no state directory) the key is random and
   lives in memory, as OpenSSL's own would.
2. `current(now)` ratchets the stored key forward to the epoch of `now` and, when
   that moved it, writes the file forward (temporary file, fsync, rename): keys of
   past epochs are then gone from disk as well as from memory.
3. A file that cannot be read or parsed is replaced by a new random key and
   reported on stderr (tickets issued before then stop resuming; nothing else
   breaks). The key never reaches a log, a repr or an exception message.
4. `apply(ctx, now)` sets the epoch's key on a context (`edge/libssl.py`); it
   returns False when the interpreter does not allow it, and the context keeps
   OpenSSL's per-process key: resumption then works only on the worker that issued
   the ticket.
"""

from __future__ import annotations

import os
import ssl
import sys
import time
from pathlib import Path

from owncdn.core.tls import tickets as schedule
from owncdn.edge import libssl

__all__ = ["TicketKeys"]


class TicketKeys:
    """The session-ticket key schedule of one edge process (Rules 1-4)."""

    def __init__(self, path: Path | str | None = None, period: float = schedule.DEFAULT_PERIOD) -> None:
        self.path = Path(path) if path is not None else None
        self.period = period
        self._epoch: int | None = None
        self._key = b""
        self.shared = libssl.available()

    def __repr__(self) -> str:
        where = self.path or "memory"
        return f"<TicketKeys {where} epoch={self._epoch} period={self.period:g}s shared={self.shared}>"

    def next_change(self, now: float) -> float:
        return schedule.next_change(now, self.period)

    def current(self, now: float) -> bytes:
        """The 80-byte OpenSSL key of the epoch of `now` (Rule 2)."""
        want = schedule.epoch(now, self.period)
        if self.path is not None:
            self._epoch, self._key = self._read(want)
        elif self._epoch is None:
            self._epoch, self._key = want, os.urandom(schedule.KEY_BYTES)
        if self._epoch < want:
            self._key = schedule.ratchet(self._key, self._epoch, want)
            self._epoch = want
            if self.path is not None:
                self._write(self._epoch, self._key)
        return schedule.openssl_key(self._key)

    def apply(self, ctx: ssl.SSLContext, now: float | None = None) -> bool:
        """Rule 4."""
        return libssl.set_ticket_key(ctx, self.current(time.time() if now is None else now))

    # -- the file (Rules 1-3) -----------------------------------------------------
    def _read(self, want: int) -> tuple[int, bytes]:
        try:
            return schedule.load(self.path.read_bytes())
        except FileNotFoundError:
            return self._create(want)
        except (OSError, ValueError) as exc:
            print(f"owncdn edge: TLS ticket key file {self.path.name} unusable ({type(exc).__name__}); "
                  "making a new key", file=sys.stderr)
            key = os.urandom(schedule.KEY_BYTES)
            self._write(want, key)
            return want, key

    def _create(self, want: int) -> tuple[int, bytes]:
        key = os.urandom(schedule.KEY_BYTES)
        tmp = self._tmp(schedule.dump(want, key))
        try:
            os.link(tmp, self.path)
        except FileExistsError:   # another worker made it first: use theirs
            return schedule.load(self.path.read_bytes())
        finally:
            os.unlink(tmp)
        return want, key

    def _write(self, at: int, key: bytes) -> None:
        os.replace(self._tmp(schedule.dump(at, key)), self.path)

    def _tmp(self, data: bytes) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp
