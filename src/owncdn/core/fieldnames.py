"""Header names and values in header rules (``cdn.yaml``'s, and a pushed site's ``_headers`` file).

Rule 1: a header name is an RFC 9110 token (letters, digits and
``!#$%&'*+-.^_`|~``).

Rule 2: a header value must not contain CR, LF or NUL (they would split or
truncate the header); error messages never repeat the value, which may be
a secret.

Rule 3: rules may not set the headers that frame a message or a connection
(``Content-Length``, ``Transfer-Encoding``, ``Connection`` ...): the edge
owns those. ``Host`` towards the origin is chosen by ``origin_host``.

Rule 4: a pushed site's header rules may not set the fields the edge derives from the
file it sends either (``SITE_MANAGED``: ``Content-Encoding``, ``ETag``, ``Vary`` ...).

Rule 5: a leaf module (only ``re``), so `owncdn push` checks a ``_headers`` file without
loading the config model.
"""

from __future__ import annotations

import re

__all__ = ["check_header_name", "check_header_value", "FRAMING_HEADERS", "SITE_MANAGED"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

FRAMING_HEADERS = frozenset({
    "connection", "content-length", "keep-alive", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})
SITE_MANAGED = FRAMING_HEADERS | {"content-encoding", "content-range", "etag", "date", "vary"}  # Rule 4


def check_header_name(name: str) -> str:
    """``name`` unchanged if it is a valid header name, else ``ValueError``."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)")
    return name


def check_header_value(value: str) -> str:
    """``value`` unchanged if it has no CR, LF or NUL, else ``ValueError``."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("a header value must not contain CR, LF or NUL characters")
    return value
