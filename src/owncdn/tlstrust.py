"""TLS contexts for owncdn's own httpx clients, made once and shared.

    async with httpx.AsyncClient(verify=verified(), ...) as http:   # as verify=True
    async with httpx.AsyncClient(verify=unverified(), ...) as http: # as verify=False

httpx makes a new ``SSLContext`` for every client made with ``verify=True``, loading
certifi's bundle each time: about 20 ms of CPU on this machine, on the event loop of
the code that makes the client. The control plane's origin checks made a verified
client every round (every 2 s by default), and the edges' probes and the control
plane's calls to edges one per call.

Rules:
1. ``verified()`` is the context httpx makes for ``verify=True`` (certifi's bundle, or
   ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, as httpx reads them), made once per
   value of those two variables; ``unverified()`` is ``verify=False``'s, made once.
2. Shared contexts are for HTTP/1.1 clients only: httpcore sets the context's ALPN
   protocols as it connects, the same ``http/1.1`` for every such client, and nothing
   else changes a context after it is made.
"""

from __future__ import annotations

import os
import ssl
from functools import lru_cache

import httpx

__all__ = ["unverified", "verified"]


def verified() -> ssl.SSLContext:
    """Rule 1: httpx's ``verify=True`` context for the current trust variables."""
    return _made(True, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


def unverified() -> ssl.SSLContext:
    """Rule 1: httpx's ``verify=False`` context."""
    return _made(False, None, None)


@lru_cache(maxsize=8)
def _made(verify: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context(verify=verify)
