"""W3C Trace Context: the ``traceparent`` field an edge continues or starts.

``traceparent: 00-<trace-id>-<parent-id>-<trace-flags>`` (W3C Recommendation
"Trace Context", section 3.2). The edge is one span of the visitor's trace: it
keeps the trace id a client sent, gives the origin request a parent id of its own,
and logs both, so one trace id follows a request through client, edge and origin.

Rules (the numbers of the spec's parsing rules are in the tests' table):

1. A field is valid when it has the four parts: a version of two lowercase hex
   digits other than ``ff``; a trace id of 32 lowercase hex digits, not all zero; a
   parent id of 16 lowercase hex digits, not all zero; flags of two lowercase hex
   digits. Uppercase hex is invalid.
2. Version ``00`` is exactly 55 characters. A higher (future) version may be longer,
   but then character 56 is ``-``; its first four parts are read as version 00's.
3. Several ``traceparent`` fields in one request are invalid (the caller passes all
   of them); surrounding whitespace is ignored.
4. A valid field is continued: same trace id, this edge's new parent id, version
   ``00``, and only the ``sampled`` flag (bit 0) is kept, since version 00 defines
   no other.
5. A missing or invalid field is replaced by a new trace: the new trace id, this
   edge's parent id, flags ``01`` (the edge records every request in its access
   log). A ``tracestate`` field belongs to the trace it came with: when the trace is
   restarted it is dropped (``Trace.restarted``).
6. Nothing here draws random numbers: the caller passes fresh ids (``new_ids``
   makes them), so tests are tables of inputs and expected outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Trace", "continue_trace", "new_ids", "parse_traceparent"]

_HEX = frozenset("0123456789abcdef")
ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class Trace:
    """What the edge sends on (``header``) and logs."""

    trace_id: str
    parent_id: str
    """This edge's span id: the origin request's parent."""
    flags: str
    restarted: bool
    """True when no valid field came in (Rule 5)."""

    @property
    def header(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"


def _hex(text: str, size: int) -> bool:
    return len(text) == size and _HEX.issuperset(text)


def parse_traceparent(values: list[str] | str | None) -> tuple[str, str, str, str] | None:
    """(version, trace id, parent id, flags) of a valid field, else None (Rules 1-3)."""
    if values is None:
        return None
    if isinstance(values, list):
        if len(values) != 1:
            return None
        values = values[0]
    text = values.strip(" \t")
    if len(text) < 55:
        return None
    version = text[:2]
    if not _hex(version, 2) or version == "ff":
        return None
    if version == "00" and len(text) != 55:
        return None
    if len(text) > 55 and text[55] != "-":
        return None
    if text[2] != "-" or text[35] != "-" or text[52] != "-":
        return None
    trace_id, parent_id, flags = text[3:35], text[36:52], text[53:55]
    if not (_hex(trace_id, 32) and _hex(parent_id, 16) and _hex(flags, 2)):
        return None
    if trace_id == ZERO_TRACE or parent_id == ZERO_SPAN:
        return None
    return version, trace_id, parent_id, flags


def continue_trace(values: list[str] | str | None, new_trace_id: str, new_parent_id: str) -> Trace:
    """The trace this edge's request belongs to (Rules 4-5); the ids come from ``new_ids``."""
    parsed = parse_traceparent(values)
    if parsed is None:
        return Trace(new_trace_id, new_parent_id, "01", True)
    _, trace_id, _, flags = parsed
    return Trace(trace_id, new_parent_id, "%02x" % (int(flags, 16) & 0x01), False)


def new_ids() -> tuple[str, str]:
    """A fresh (trace id, parent id), never all zeros (the caller's side of Rule 6)."""
    raw = os.urandom(24)
    trace_id, parent_id = raw[:16].hex(), raw[16:].hex()
    if trace_id == ZERO_TRACE or parent_id == ZERO_SPAN:  # 2**-64: draw again
        return new_ids()
    return trace_id, parent_id
