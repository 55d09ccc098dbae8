"""Header fields: an ordered multi-map, list and Cache-Control parsing, HTTP dates.

Rules of this module:

Rule 1: field names are case-insensitive (RFC 9110 §5.1); :class:`Headers` stores them
        lowercased, and every lookup lowercases its argument.
Rule 2: order is kept, and so are repeated field lines; a list-based field's lines are
        combined by splitting each line on commas outside quoted strings (RFC 9110 §5.3).
Rule 3: parsers never raise on what a peer sent. Garbage is skipped (Cache-Control
        directives) or reported as ``None`` (dates).
Rule 4: the clock is never read here. Dates convert between text and Unix seconds.
"""

from __future__ import annotations

import calendar
import re
import time
from functools import lru_cache
from typing import Iterable, Iterator

__all__ = [
    "HOP_BY_HOP",
    "Headers",
    "format_http_date",
    "parse_cache_control",
    "parse_http_date",
    "split_list",
    "strip_hop_by_hop",
]


class Headers:
    """An ordered multi-map of header fields with lowercased names.

    ``first`` maps each lowercase name to its first value: a read-only view for hot
    paths that look up lowercase constants (``"range" in h.first``). ``notes`` is
    for callers to remember facts derived from the fields (``None`` until one does;
    cleared by every change and by ``copy``).

    >>> h = Headers([("Content-Type", "text/html"), ("Vary", "Accept"), ("vary", "Cookie")])
    >>> h.get("content-type"), h.get_list("Vary")
    ('text/html', ['Accept', 'Cookie'])
    """

    __slots__ = ("_items", "first", "notes")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(n.lower(), v) for n, v in items]
        self.notes: dict | None = None
        self._reindex()

    def _reindex(self) -> None:
        self.first: dict[str, str] = dict(reversed(self._items))

    @classmethod
    def from_raw(cls, items: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from raw (name, value) byte pairs as a parser delivers them (latin-1)."""
        h = cls.__new__(cls)
        h._items = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in items]
        h.first = dict(reversed(h._items))
        h.notes = None
        return h

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        return self.first.get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Every field line's value for ``name``, in order."""
        name = name.lower()
        if name not in self.first:
            return []
        return [v for n, v in self._items if n == name]

    def get_list(self, name: str) -> list[str]:
        """All members of a list-based field, over every field line (RFC 9110 §5.6.1)."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(split_list(value))
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.first

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def set(self, name: str, value: str) -> None:
        self.notes = None
        """Replace every line of ``name`` by one line, kept at the first one's place."""
        name = name.lower()
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self._items:
            if n != name:
                out.append((n, v))
            elif not placed:
                out.append((name, value))
                placed = True
        if not placed:
            out.append((name, value))
        self._items = out
        self._reindex()

    def add(self, name: str, value: str) -> None:
        self.notes = None
        name = name.lower()
        self._items.append((name, value))
        self.first.setdefault(name, value)

    def remove(self, name: str) -> None:
        self.notes = None
        name = name.lower()
        if name in self.first:
            self._items = [(n, v) for n, v in self._items if n != name]
            del self.first[name]

    def copy(self) -> Headers:
        h = Headers.__new__(Headers)
        h._items = list(self._items)
        h.first = dict(self.first)
        h.notes = None
        return h

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def split_list(value: str) -> list[str]:
    """Split one field value on commas outside quoted strings; strip; drop empties."""
    if '"' not in value:
        return [p for p in (s.strip() for s in value.split(",")) if p]
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return [p for p in (s.strip() for s in parts) if p]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_cache_control(values: list[str]) -> dict[str, str | None]:
    """Parse Cache-Control field lines into {directive: argument or None}.

    Directive names are lowercased, quoted-string arguments unquoted, the first
    occurrence of a directive wins (RFC 9111 §4.2.1), and members that are not
    ``token[=value]`` are skipped.
    """
    out: dict[str, str | None] = {}
    for line in values:
        for member in split_list(line):
            name, eq, arg = member.partition("=")
            name = name.strip().lower()
            if not name or " " in name or '"' in name or name in out:
                continue
            out[name] = _unquote(arg.strip()) if eq else None
    return out


# --- HTTP dates (RFC 9110 §5.6.7) -------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TIME = r"(\d\d):(\d\d):(\d\d)"
_IMF_FIXDATE = re.compile(r"[A-Za-z]{3}, (\d\d) ([A-Za-z]{3}) (\d{4}) " + _TIME + r" GMT$")
_RFC850 = re.compile(r"[A-Za-z]{6,9}, (\d\d)-([A-Za-z]{3})-(\d\d) " + _TIME + r" GMT$")
_ASCTIME = re.compile(r"[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) " + _TIME + r" (\d{4})$")


def parse_http_date(value: str | None) -> float | None:
    """Unix seconds for an IMF-fixdate, RFC 850 or asctime date; None if invalid.

    A two-digit RFC 850 year is read as 1970-2069 (RFC 9110 §5.6.7 asks for "the most
    recent year with those digits that is not more than 50 years in the future"; this
    fixed window agrees with that rule until 2019+50 and needs no clock).
    """
    if value is None:
        return None
    return _parse_http_date(value.strip())


@lru_cache(maxsize=1024)
def _parse_http_date(value: str) -> float | None:
    if m := _IMF_FIXDATE.match(value):
        day, mon, year, hh, mm, ss = m.groups()
    elif m := _RFC850.match(value):
        day, mon, yy, hh, mm, ss = m.groups()
        year = str(1900 + int(yy) if int(yy) >= 70 else 2000 + int(yy))
    elif m := _ASCTIME.match(value):
        mon, day, hh, mm, ss, year = m.groups()
    else:
        return None
    return _to_timestamp(int(year), mon, int(day), int(hh), int(mm), int(ss))


def _to_timestamp(year: int, mon: str, day: int, hh: int, mm: int, ss: int) -> float | None:
    month = _MONTHS.get(mon.lower())
    if month is None or hh > 23 or mm > 59 or ss > 60:
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return float(calendar.timegm((year, month, day, hh, mm, min(ss, 59), 0, 0, 0)))


def format_http_date(t: float) -> str:
    """The IMF-fixdate for Unix seconds ``t`` (fractions dropped)."""
    tm = time.gmtime(int(t))
    return (f"{_DAYS[tm.tm_wday]}, {tm.tm_mday:02d} {_MONTH_NAMES[tm.tm_mon - 1]} "
            f"{tm.tm_year:04d} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} GMT")


# --- hop-by-hop fields (RFC 9110 §7.6.1) ------------------------------------------

HOP_BY_HOP: frozenset[str] = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization",
})


def strip_hop_by_hop(headers: Headers) -> Headers:
    """A copy without hop-by-hop fields and without the fields Connection names."""
    drop = HOP_BY_HOP | {n.lower() for n in headers.get_list("connection")}
    return Headers([(n, v) for n, v in headers if n not in drop])
