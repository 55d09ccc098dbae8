"""Uploads of single blobs under way, so that one whose client went quiet is given up
for the client that comes back to resume it.

    upload = inflight(app).begin(sha, scope)   # a PUT reading its body (None: no socket)
    inflight(app).end(upload)                  # its handler done, however it ended
    await inflight(app).take_over(names)       # the quiet uploads of names cut, and kept

Rules:
1. Each ``PUT /v1/blobs/{name}`` on a connection with a socket (served by uvicorn:
   ``sendfile`` Rule 1; plain or TLS) is registered for its blob while its body is
   read; ``end`` removes it once its handler is done, after what it brought was kept or
   dropped (``api/blobs.py`` Rule 7).
2. An upload is quiet when its connection has brought no byte for ``QUIET_SECONDS``
   (the kernel's ``tcpi_last_data_recv``) and none waits unread in the socket
   (``FIONREAD``): the client stopped sending, not the control plane reading.
3. ``take_over(names)`` cuts every quiet upload of those blobs (its socket shut down
   both ways, so the reader sees the connection's end, as when the client closes it,
   and keeps the bytes: ``dirblobs`` Rule 9) and waits until each has ended, at most
   ``WAIT_SECONDS`` in all. The missing answer asks it first (``api/blobs.py`` Rule 7),
   so a client that comes back after a break the control plane has not seen (its
   address changed, a middlebox dropped the connection without a reset) is told what
   was kept and resumes, instead of sending the blob whole beside an upload that
   waits ``rawbody.STALL_SECONDS`` for bytes that never come. An upload still receiving
   is left alone: a second push of the same blob then uploads it too.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import termios
import time

from .sendfile import TRANSPORT

__all__ = ["QUIET_SECONDS", "WAIT_SECONDS", "Inflight", "Upload", "inflight"]

QUIET_SECONDS = 0.5
WAIT_SECONDS = 5.0
_LAST_DATA_RECV = 52  # offset of tcpi_last_data_recv (ms) in struct tcp_info (linux/tcp.h)
_TCP_INFO = getattr(socket, "TCP_INFO", None)  # Linux


class Upload:
    """One PUT of a blob reading its body, on ``transport``'s connection, whose
    descriptor is ``fd``."""

    __slots__ = ("sha", "transport", "fd", "ended", "cut")

    def __init__(self, sha: str, transport, fd: int) -> None:
        self.sha, self.transport, self.fd = sha, transport, fd
        self.ended = asyncio.Event()
        self.cut = False

    def __repr__(self) -> str:
        return f"<Upload {self.sha[:12]} fd={self.fd}{' cut' if self.cut else ''}{' ended' if self.ended.is_set() else ''}>"

    def quiet(self) -> bool:
        """Rule 2 (False when the socket cannot say, or is closed: its descriptor's number
        may be another connection's by now)."""
        if _TCP_INFO is None or self.transport.is_closing():
            return False
        try:
            with socket.socket(fileno=os.dup(self.fd)) as sock:
                info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
                unread = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
        except OSError:
            return False
        if len(info) < _LAST_DATA_RECV + 4:
            return False
        idle_ms = struct.unpack_from("I", info, _LAST_DATA_RECV)[0]
        return idle_ms >= QUIET_SECONDS * 1000 and struct.unpack("i", unread)[0] == 0

    def shut(self) -> None:
        """Rule 3: the connection shut down both ways (the handler closes it)."""
        self.cut = True
        try:
            with socket.socket(fileno=os.dup(self.fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # closed meanwhile: it ends by itself
            pass


class Inflight:
    """The app's uploads under way, by blob (Rule 1)."""

    def __init__(self) -> None:
        self.uploads: dict[str, list[Upload]] = {}

    def begin(self, sha: str, scope: dict) -> Upload | None:
        transport = scope.get("extensions", {}).get(TRANSPORT)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None or sock.type != socket.SOCK_STREAM:
            return None
        upload = Upload(sha, transport, sock.fileno())
        self.uploads.setdefault(sha, []).append(upload)
        return upload

    def end(self, upload: Upload | None) -> None:
        if upload is None:
            return
        upload.ended.set()
        same = self.uploads.get(upload.sha, [])
        if upload in same:
            same.remove(upload)
        if not same:
            self.uploads.pop(upload.sha, None)

    async def take_over(self, names) -> list[Upload]:
        """Rule 3: the uploads cut, once ended (or ``WAIT_SECONDS`` passed)."""
        if not self.uploads:
            return []
        cut = [u for sha in names for u in self.uploads.get(sha, ()) if not u.cut and u.quiet()]
        for upload in cut:
            upload.shut()
        if cut:
            deadline = time.monotonic() + WAIT_SECONDS
            for upload in cut:
                try:
                    await asyncio.wait_for(upload.ended.wait(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
        return cut


def inflight(app) -> Inflight:
    """The app's ``Inflight``, made on first use (on the event loop)."""
    state = app.state
    found = getattr(state, "inflight_uploads", None)
    if found is None:
        found = state.inflight_uploads = Inflight()
    return found
