"""Carrying the W3C ``traceparent`` from the visitor through the edge to the origin.

Rules:
1. Every request the edge sends to an origin for a visitor (a fill, a revalidation,
   a pass) carries ``traceparent``: the visitor's trace continued with a new span id
   of this edge, or a new trace (``owncdn.core.http.tracecontext``). It also carries
   ``X-Request-Id``, the id in the response and the access log.
2. The trace is kept on the request (``req.traceparent``) and written to its access
   log line, so the origin's logs and the edge's join on the trace id.
3. The hit path computes nothing: a request that never goes to an origin gets a
   trace only when it is logged, and only if the visitor sent a ``traceparent``
   (``log_traceparent``); otherwise its log line has ``null``.
4. A restarted trace drops the visitor's ``tracestate`` (it described another trace).
"""

from __future__ import annotations

from owncdn.core.http.tracecontext import continue_trace, new_ids, parse_traceparent

__all__ = ["log_traceparent", "trace_origin_request"]


def trace_origin_request(req, fields) -> str:
    """Set ``traceparent`` on the origin request's ``fields`` (Rules 1, 2, 4)."""
    known = getattr(req, "traceparent", None)  # None until an origin request is made
    if known is None:
        trace_id, parent_id = new_ids()
        trace = continue_trace(req.headers.get_all("traceparent") or None, trace_id, parent_id)
        known = trace.header
        if trace.restarted:
            fields.remove("tracestate")
        try:
            req.traceparent = known
        except AttributeError:  # a request object without the slot (tests' stand-ins)
            pass
    fields.set("traceparent", known)
    return known


def log_traceparent(req) -> str | None:
    """The trace for the log line of a request that had none yet (Rule 3)."""
    known = getattr(req, "traceparent", None)  # None until an origin request is made
    if known is not None:
        return known
    values = req.headers.get_all("traceparent")
    if not values or parse_traceparent(values) is None:
        return None
    trace_id, parent_id = new_ids()
    return continue_trace(values, trace_id, parent_id).header
