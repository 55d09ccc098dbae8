"""HTTP/2 request field lists as a server receives them (RFC 9113 §8.1-§8.3).

Rules:
1. Field names hold no character in 0x00-0x20, 0x41-0x5a (uppercase) or 0x7f-0xff,
   and no colon except the leading one of a pseudo-header; values hold no NUL, CR or
   LF and neither start nor end with SP or HTAB (§8.2.1).
2. Connection-specific fields (Connection, Keep-Alive, Proxy-Connection,
   Transfer-Encoding, Upgrade) are not allowed, and TE only as "trailers" (§8.2.2).
3. Pseudo-headers: only :method, :scheme, :authority and :path in a request, each at
   most once and all before the regular fields; none in trailers (§8.3). A request
   has :method, :scheme and a non-empty :path, except CONNECT, which has :authority
   and neither :scheme nor :path (§8.5). A Host field that differs from :authority
   makes the request malformed (§8.3.1).
4. Content-Length is digits, the same value each time it appears (RFC 9110 §8.6).
5. A list that breaks any rule is malformed: the answer is a reason string, and the
   caller resets the stream with PROTOCOL_ERROR (§8.1.1). Otherwise the answer is a
   `RequestHead`: the pseudo-headers, and the regular fields as HTTP/1.1 would carry
   them: Host first, from :authority when there is one (§8.3.1), the rest in order,
   cookie fields joined by "; " at the end (§8.2.3); their size counted as HTTP/1.1
   would ("name: value" plus CRLF), and the Content-Length, if any. `memo` is the
   caller's, to remember what it derived from a head it sees again.
6. Regular fields that passed Rules 1-2 are remembered (up to 4096, then forgotten
   all at once): a client repeats most of its fields on every request, and a
   repeated one costs one set lookup.
"""

from __future__ import annotations

import re

from .hpack_out import CONNECTION_SPECIFIC

__all__ = ["RequestHead", "check_request", "check_trailers", "CONNECTION_SPECIFIC"]

_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
_BAD_NAME = re.compile(rb"[^\x21-\x39\x3b-\x40\x5b-\x7e]")  # Rule 1, colon included
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]\Z")
_GOOD_NAMES: set[bytes] = set()  # names already checked (bounded, see _name_ok)
_GOOD_FIELDS: set[tuple[bytes, bytes]] = set()  # regular fields already checked (Rule 6)
_MEMORY = 4096


class RequestHead:
    """A well-formed request's fields (Rule 5)."""

    __slots__ = ("method", "scheme", "authority", "path", "fields", "size", "content_length", "memo")

    def __init__(self, pseudo: dict, fields: list, size: int, content_length: int | None) -> None:
        self.method: bytes = pseudo.get(b":method", b"")
        self.scheme: bytes | None = pseudo.get(b":scheme")
        self.authority: bytes | None = pseudo.get(b":authority")
        self.path: bytes | None = pseudo.get(b":path")
        self.fields: list[tuple[bytes, bytes]] = fields
        self.size = size
        self.content_length = content_length
        self.memo = None

    def __repr__(self) -> str:
        return f"<RequestHead {self.method!r} {self.path!r} fields={len(self.fields)}>"


def _name_ok(name: bytes) -> bool:
    if name in _GOOD_NAMES:
        return True
    if not name or _BAD_NAME.search(name):
        return False
    if len(_GOOD_NAMES) < _MEMORY:
        _GOOD_NAMES.add(name)
    return True


def _regular(name: bytes, value: bytes) -> str | None:
    """Rules 1-2 for one regular field: None when it is allowed."""
    if not _name_ok(name):
        return f"field name {name[:40]!r} is not a lowercase token"
    if value and _BAD_VALUE.search(value):
        return f"field {name[:40]!r} has a NUL, CR, LF or surrounding whitespace in its value"
    if name in CONNECTION_SPECIFIC:
        return f"connection-specific field {name!r}"
    if name == b"te" and value != b"trailers":
        return "TE other than trailers"
    return None


def check_request(fields) -> RequestHead | str:
    """A decoded request field list -> RequestHead, or why it is malformed (Rules 1-5)."""
    pseudo: dict[bytes, bytes] = {}
    regular: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    size = 0
    length: bytes | None = None
    hosts: list[bytes] = []
    good = _GOOD_FIELDS
    for field in fields:
        name, value = field
        size += len(name) + len(value) + 4
        if field in good:
            pass
        elif name[:1] == b":":
            if regular or cookies:
                return f"pseudo-header {name!r} after a regular field"
            if name not in _REQUEST_PSEUDO:
                return f"pseudo-header {name[:40]!r} is not a request's"
            if name in pseudo:
                return f"pseudo-header {name!r} twice"
            if value and _BAD_VALUE.search(value):
                return f"pseudo-header {name!r} has a NUL, CR, LF or surrounding whitespace in its value"
            pseudo[name] = value
            continue
        else:
            error = _regular(name, value)
            if error is not None:
                return error
            if len(good) >= _MEMORY:
                good.clear()
            good.add((name, value))
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"content-length":
            if not value.isdigit() or (length is not None and value != length):
                return "invalid Content-Length"
            length = value
        elif name == b"host":
            hosts.append(value)
        regular.append(field)
    error = _pseudo_error(pseudo, hosts)
    if error is not None:
        return error
    if cookies:
        regular.append((b"cookie", b"; ".join(cookies)))
    authority = pseudo.get(b":authority")
    if authority is not None:
        if hosts:
            regular = [field for field in regular if field[0] != b"host"]
        regular.insert(0, (b"host", authority))
    return RequestHead(pseudo, regular, size, int(length) if length is not None else None)


def _pseudo_error(pseudo: dict, hosts: list) -> str | None:
    method = pseudo.get(b":method")
    if not method:
        return "no :method"
    if method == b"CONNECT":
        if b":scheme" in pseudo or b":path" in pseudo or b":authority" not in pseudo:
            return "CONNECT needs :authority and neither :scheme nor :path"
    elif b":scheme" not in pseudo or not pseudo.get(b":path"):
        return "no :scheme or an empty :path"
    if hosts:
        authority = pseudo.get(b":authority")
        if authority is not None and hosts.count(authority) != len(hosts):
            return "Host differs from :authority"
    return None


def check_trailers(fields) -> str | None:
    """A trailer section: no pseudo-headers, Rules 1-2 for the rest; None when allowed."""
    for name, value in fields:
        if name[:1] == b":":
            return f"pseudo-header {name[:40]!r} in trailers"
        error = _regular(name, value)
        if error is not None:
            return error
    return None
