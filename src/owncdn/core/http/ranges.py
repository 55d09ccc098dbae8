"""Byte ranges: Range, If-Range, Content-Range and multipart/byteranges (RFC 9110 §14).

Rules of this module:

Rule 1: ``parse_range`` answers one of three things: None (ignore Range, send the whole
        representation with 200), "unsatisfiable" (416), or the ranges to send (206).
Rule 2: a Range that is absent, not in bytes, syntactically invalid anywhere, or has
        more than MAX_RANGES members is ignored (RFC 9110 §14.2 "MAY ignore").
Rule 3: a range is satisfiable when first-pos < size, or when it is a suffix range with
        a non-zero length (RFC 9110 §14.1.1); ends past the representation are clamped.
        Unsatisfiable members are dropped; if none remain the answer is "unsatisfiable".
        A zero-length representation has nothing to slice: suffix ranges are ignored.
Rule 4: overlapping or adjacent ranges are coalesced and then sent in ascending order
        (RFC 9110 §14.2 allows coalescing "regardless of the order"); otherwise ranges
        keep the order the client asked for (RFC 9110 §14.6).
Rule 5: If-Range holds only for a strong ETag match, or an exact Last-Modified date that
        is a strong validator (at least 60 s before Date, RFC 9110 §8.8.2.2, §13.1.5).
Rule 6: multipart bodies are planned, not built: the plan holds each part's header bytes
        and its range, so the server can send slices of a file without copying.
        The boundary is an argument; nothing here is random.
Rule 7: ``parse_content_range`` reads a Content-Range value (RFC 9110 §14.4) as
        ``(first, last, complete)``: ``complete`` is None for ``/*``, ``first`` and
        ``last`` None for an unsatisfied range (``bytes */1234``). A value that does
        not match the grammar, is not in bytes, or is invalid (last-pos before
        first-pos, complete-length not past last-pos: "MUST NOT attempt to recombine")
        gives None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .etags import parse_etag, strong_match
from .headers import Headers, parse_http_date

__all__ = [
    "MAX_RANGES",
    "ByteRange",
    "MultipartPlan",
    "content_range",
    "parse_content_range",
    "if_range_allows",
    "multipart_body",
    "multipart_plan",
    "parse_range",
    "unsatisfied_range",
]

MAX_RANGES = 16
STRONG_LAST_MODIFIED_MARGIN = 60.0


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int
    """Inclusive."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1


Unsatisfiable = Literal["unsatisfiable"]


def parse_range(value: str | None, size: int) -> list[ByteRange] | None | Unsatisfiable:
    """The ranges of a ``size``-byte representation that Range ``value`` asks for (Rule 1)."""
    if value is None:
        return None
    unit, eq, spec = value.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None
    members = spec.split(",")
    if len(members) > MAX_RANGES:
        return None
    parsed = [_parse_spec(m.strip()) for m in members if m.strip()]
    if not parsed or None in parsed:
        return None
    return _satisfiable(parsed, size)  # type: ignore[arg-type]


def _parse_spec(spec: str) -> tuple[int | None, int | None] | None:
    """(first, last) of an int-range, (None, suffix-length) of a suffix-range."""
    first, dash, last = spec.partition("-")
    if not dash or not _digits(last, allow_empty=bool(first)) or not _digits(first, True):
        return None
    if not first:
        return None, int(last)
    if last and int(last) < int(first):
        return None
    return int(first), int(last) if last else None


def _digits(text: str, allow_empty: bool) -> bool:
    return (allow_empty and text == "") or (text.isascii() and text.isdigit())


def _satisfiable(parsed: list[tuple[int | None, int | None]],
                 size: int) -> list[ByteRange] | None | Unsatisfiable:
    ranges = []
    for first, last in parsed:
        if first is None:
            assert last is not None
            if last > 0 and size == 0:
                return None
            if last > 0:
                ranges.append(ByteRange(max(0, size - last), size - 1))
        elif first < size:
            ranges.append(ByteRange(first, size - 1 if last is None else min(last, size - 1)))
    if not ranges:
        return "unsatisfiable"
    return _coalesce(ranges)


def _coalesce(ranges: list[ByteRange]) -> list[ByteRange]:
    ordered = sorted(ranges, key=lambda r: r.start)
    merged = [ordered[0]]
    for r in ordered[1:]:
        last = merged[-1]
        if r.start <= last.end + 1:
            merged[-1] = ByteRange(last.start, max(last.end, r.end))
        else:
            merged.append(r)
    return merged if len(merged) < len(ranges) else ranges


def if_range_allows(req_headers: Headers, resp_headers: Headers) -> bool:
    """Whether Range may be honoured given If-Range (Rule 5); True without If-Range."""
    value = req_headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        tag, current = parse_etag(value), parse_etag(resp_headers.get("etag"))
        return tag is not None and current is not None and strong_match(tag, current)
    return _strong_date_match(parse_http_date(value), resp_headers)


def _strong_date_match(date: float | None, resp_headers: Headers) -> bool:
    last_modified = parse_http_date(resp_headers.get("last-modified"))
    response_date = parse_http_date(resp_headers.get("date"))
    if date is None or last_modified is None or response_date is None:
        return False
    return (date == last_modified
            and response_date - last_modified >= STRONG_LAST_MODIFIED_MARGIN)


def content_range(r: ByteRange, size: int) -> str:
    """Content-Range for a 206 part: "bytes 0-499/10000"."""
    return f"bytes {r.start}-{r.end}/{size}"


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None] | None:
    """Rule 7: ``(first, last, complete)`` of a Content-Range value, or None."""
    if value is None:
        return None
    unit, sp, rest = value.strip().partition(" ")
    if not sp or unit.lower() != "bytes":
        return None
    spans, slash, complete = rest.partition("/")
    if not slash or not (complete == "*" or _digits(complete, False)):
        return None
    size = None if complete == "*" else int(complete)
    if spans == "*":
        return (None, None, size) if size is not None else None
    first, dash, last = spans.partition("-")
    if not dash or not _digits(first, False) or not _digits(last, False):
        return None
    start, end = int(first), int(last)
    if end < start or (size is not None and size <= end):
        return None
    return start, end, size


def unsatisfied_range(size: int) -> str:
    """Content-Range for a 416: "bytes */10000"."""
    return f"bytes */{size}"


@dataclass(frozen=True, slots=True)
class MultipartPlan:
    """A multipart/byteranges body as (part header, range) pairs and a closing line."""

    content_type: str
    parts: tuple[tuple[bytes, ByteRange], ...]
    trailer: bytes

    @property
    def content_length(self) -> int:
        return (sum(len(head) + r.length for head, r in self.parts) + len(self.trailer))


def multipart_plan(ranges: list[ByteRange], size: int, content_type: str | None,
                   boundary: str) -> MultipartPlan:
    """Plan a multipart/byteranges body (RFC 9110 §14.6) with the given boundary."""
    parts = []
    for i, r in enumerate(ranges):
        lines = [("--" if i == 0 else "\r\n--") + boundary]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Range: {content_range(r, size)}")
        parts.append((("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), r))
    return MultipartPlan(
        content_type=f"multipart/byteranges; boundary={boundary}",
        parts=tuple(parts),
        trailer=f"\r\n--{boundary}--\r\n".encode("latin-1"),
    )


def multipart_body(plan: MultipartPlan, body: bytes) -> bytes:
    """The whole multipart body for an in-memory representation."""
    chunks = []
    for head, r in plan.parts:
        chunks.append(head)
        chunks.append(body[r.start:r.end + 1])
    chunks.append(plan.trailer)
    return b"".join(chunks)
