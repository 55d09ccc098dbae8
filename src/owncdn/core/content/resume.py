"""Where a blob's resumed upload begins: a ``PUT`` with a Content-Range (RFC 9110 §14.5).

    offset, total = resumed_at(headers.get("content-range"), content_length)

Rules:
1. Without Content-Range the body is the whole blob: ``(0, length)``.
2. With one, the body is the rest of a blob whose first bytes the control plane kept
   from an upload that broke: ``bytes N-(T-1)/T``, ``N`` the bytes it holds, ``T``
   the blob's size. Only that form is taken (RFC 9110 §14.5: a partial PUT "depends on
   private agreements"): the range must be valid (§14.4, ``ranges`` Rule 7), run to the
   blob's end, name the blob's size (not ``*``), and cover exactly the body's
   ``length``. Anything else raises ``ResumeError`` saying what is wrong, and nothing
   of the body may be joined to what was kept ("MUST NOT attempt to recombine").
"""

from __future__ import annotations

from owncdn.core.http.ranges import parse_content_range

__all__ = ["ResumeError", "resumed_at"]


class ResumeError(ValueError):
    """A Content-Range a resumed upload cannot have (Rule 2)."""


def resumed_at(content_range: str | None, length: int) -> tuple[int, int]:
    """``(offset, total)``: where the body begins in the blob, and the blob's size."""
    if content_range is None:
        return 0, length
    parsed = parse_content_range(content_range)
    shown = content_range[:80]
    if parsed is None:
        raise ResumeError(f"Content-Range {shown!r} is not a valid byte range (RFC 9110 §14.4: bytes N-M/T)")
    first, last, total = parsed
    if first is None or last is None:
        raise ResumeError(f"Content-Range {shown!r} names no bytes; send the rest of the blob as bytes N-M/T")
    if total is None:
        raise ResumeError(f"Content-Range {shown!r} does not say the blob's size (/*); send bytes N-M/T")
    if last != total - 1:
        raise ResumeError(f"Content-Range {shown!r} stops before the blob's end: a resumed upload sends "
                          f"bytes N-{total - 1}/{total}")
    if last - first + 1 != length:
        raise ResumeError(f"Content-Range {shown!r} covers {last - first + 1} bytes, but the body has {length}")
    return first, total
