"""HTTPS for the control plane's API: its certificate and key, loaded and kept fresh.

    tls = ServerTls.load(cert_path, key_path)   # TlsFilesError: a clear reason, before serving
    config.ssl = tls.context                    # uvicorn serves HTTPS with it
    task = loop.create_task(tls.watch())        # a renewed certificate is used without a restart

Edges in other places reach the control plane over the network (`owncdn edge --control
https://...`), and so do `owncdn push` and the other commands: their tokens and a push's
bytes must not travel in clear.

Rules:
1. ``load`` reads the certificate chain (PEM, the leaf first) and its private key
   (PEM, unencrypted) into a server context that offers TLS 1.2 and 1.3 only. A file
   that is missing or unreadable, is not PEM, an encrypted key (nothing ever prompts
   for a password), or a key that is not the certificate's raises ``TlsFilesError``
   naming the file and what is wrong with it.
   The key's bytes are never put in a message.
2. ``watch()`` looks at both files every ``interval`` seconds (size, modification time,
   inode: a renewal written in place or renamed over the old file) and, when either
   changed, loads them again into the same context: connections made after that
   get the new certificate, those open keep theirs. Both files are read once and the
   pair is first loaded into a scratch context from those bytes (a memory file, never
   a file on disk): OpenSSL keeps a certificate it loaded even when the key after it
   does not match, so only a pair that loaded whole goes into the live context, from
   the same bytes. A pair that does not load (a renewal half-written: the chain new,
   the key still old) is tried again when a file changes next, and the old
   certificate stays in use meanwhile; the reason is said once per change, on stderr.
3. The listener speaks only TLS to the app; a plain HTTP request to it is answered 400
   ``https_required``, naming the ``https://`` URL (``httpsport.py``), and a command or
   edge that got no answer at all asks the port for TLS (``client/unreachable.py``). The
   fast paths that write a connection's socket directly (``api/rawbody.py``,
   ``api/sendfile.py``) see the TLS transport and use ASGI instead, so every endpoint
   answers the same over HTTPS.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from pathlib import Path

__all__ = ["ServerTls", "TlsFilesError", "WATCH_SECONDS"]

WATCH_SECONDS = 30.0


class TlsFilesError(Exception):
    """The certificate or key cannot be used (Rule 1)."""


_REASONS = {"PEM_LIB": "not a PEM certificate chain and its private key",
            "KEY_VALUES_MISMATCH": "the key is not the certificate's (key values mismatch)"}


def _no_password() -> bytes:
    return b""  # never a prompt on the terminal: an encrypted key is refused before (Rule 1)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


class ServerTls:
    """Rules 1-2: the server context of one certificate and key pair."""

    def __init__(self, cert: Path, key: Path, context: ssl.SSLContext) -> None:
        self.cert, self.key, self.context = cert, key, context
        self.stamps = (_stamp(cert), _stamp(key))
        self.reloads = 0  # times a changed pair was loaded (Rule 2)
        self.refused: tuple | None = None  # the stamps of a changed pair that did not load

    def __repr__(self) -> str:
        return f"<ServerTls {self.cert} reloads={self.reloads}>"

    @classmethod
    def load(cls, cert: str | Path, key: str | Path) -> ServerTls:
        """Rule 1."""
        cert, key = Path(cert), Path(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        _load_pair(context, cert, key)
        return cls(cert, key, context)

    def reload_if_changed(self) -> bool:
        """Rule 2, once: True when a changed pair was loaded."""
        stamps = (_stamp(self.cert), _stamp(self.key))
        if stamps == self.stamps or stamps == self.refused:
            return False
        try:
            _reload(self.context, self.cert, self.key)
        except TlsFilesError as exc:
            self.refused = stamps
            print(f"owncdn control: the changed TLS certificate was not loaded ({exc}); the one loaded before "
                  "is still in use", file=sys.stderr, flush=True)
            return False
        self.stamps, self.refused = stamps, None
        self.reloads += 1
        return True

    async def watch(self, interval: float = WATCH_SECONDS) -> None:
        """Rule 2, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()


def _load_pair(context: ssl.SSLContext, cert: Path, key: Path, names: tuple[Path, Path] | None = None) -> None:
    """Rule 1 into ``context``; ``names``: the files to name in errors, when ``cert`` and
    ``key`` are copies of them (Rule 2)."""
    shown_cert, shown_key = names or (cert, key)
    for what, path, shown in (("certificate", cert, shown_cert), ("key", key, shown_key)):
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError as exc:
            raise TlsFilesError(f"cannot read the TLS {what} {shown}: {exc.strerror or exc}") from None
        if b"-----BEGIN " not in head:
            raise TlsFilesError(f"the TLS {what} {shown} is not PEM (no -----BEGIN line)")
        if what == "key" and b"ENCRYPTED" in head:
            raise TlsFilesError(f"the TLS key {shown} is encrypted; give it unencrypted (`openssl pkey -in KEY -out "
                                "KEY.plain`), readable by this user only")
        if what == "key" and b"PRIVATE KEY-----" not in head:
            raise TlsFilesError(f"the TLS key {shown} holds no private key (no -----BEGIN ... PRIVATE KEY----- line)")
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as exc:
        reason = _REASONS.get(exc.reason or "", (exc.reason or str(exc)).lower().replace("_", " "))
        raise TlsFilesError(f"the TLS certificate {shown_cert} and key {shown_key} do not load: {reason}") from None
    except OSError as exc:
        raise TlsFilesError(f"the TLS certificate {shown_cert} and key {shown_key} do not load: "
                            f"{exc.strerror or exc}") from None


def _reload(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    """Rule 2: the pair read once, loaded into a scratch context, then into ``context``."""
    pems = []
    for what, path in (("certificate", cert), ("key", key)):
        try:
            pems.append(path.read_bytes())
        except OSError as exc:
            raise TlsFilesError(f"cannot read the TLS {what} {path}: {exc.strerror or exc}") from None
    fds = [_memory_file(name, data) for name, data in zip(("cert", "key"), pems)]
    try:
        paths = [Path(f"/proc/self/fd/{fd}") for fd in fds]
        _load_pair(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), *paths, names=(cert, key))
        _load_pair(context, *paths, names=(cert, key))
    finally:
        for fd in fds:
            os.close(fd)


def _memory_file(name: str, data: bytes) -> int:
    fd = os.memfd_create(f"owncdn-tls-{name}", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd
