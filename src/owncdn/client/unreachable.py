"""The error of a control plane that could not be reached, said so a person can act on it.

    raise unreachable(base_url, exc) from None

Rules:
1. The message names the URL and what went wrong, as the transport said it.
2. A port that speaks only TLS and gives a plain request no answer (a control plane
   of an older owncdn, a TLS proxy in front of one; this one answers 400
   ``https_required``, ``control/httpsport.py``, unless the connection breaks before
   the answer is read) ends an ``http://`` request with the connection closed. When
   an ``http://`` URL failed so (not refused,
   not timed out), the port is asked for a TLS handshake (certificates not checked:
   nothing is sent but the handshake, and it only decides the hint), and if it
   answers, the message says to use the ``https://`` URL (``https_instead``; an edge
   asks at each such failure before it retries, ``edge/sync.py``).
"""

from __future__ import annotations

from owncdn.client.errors import ApiError

__all__ = ["https_instead", "speaks_tls", "unreachable"]

PROBE_SECONDS = 2.0


def unreachable(base_url: str, exc: BaseException) -> ApiError:
    """Rules 1-2: the ``ApiError`` (code ``unreachable``) for ``exc``."""
    message = f"cannot reach the control plane at {base_url}: {str(exc) or type(exc).__name__}"
    https = https_instead(base_url, exc)
    if https is not None:
        message = f"{message.rstrip('.')}; it speaks HTTPS there: use {https}"
    return ApiError(0, "unreachable", message)


def https_instead(base_url: str, exc: BaseException) -> str | None:
    """Rule 2: the https:// form of ``base_url`` when its port answers TLS, else None."""
    if not base_url.startswith("http://") or isinstance(exc, (ConnectionRefusedError, TimeoutError)):
        return None
    if "refused" in str(exc).lower() or "timed out" in str(exc).lower():  # httpx's words for those
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(base_url)
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        return None
    if host is None or not speaks_tls(host, port):
        return None
    return "https://" + base_url[len("http://"):]


def speaks_tls(host: str, port: int, timeout: float = PROBE_SECONDS) -> bool:
    """Whether ``host:port`` completes a TLS handshake (its certificate not checked)."""
    import socket
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return True
    except (OSError, ssl.SSLError, ValueError):
        return False
