"""The access-log line, version 1: every field, its type, and the check at ingest.

Rules:
1. A line is one JSON object. ``schema_version`` says which field set it follows;
   readers accept any version up to ``SCHEMA_VERSION`` and fill fields a line lacks
   with null. A field is never renamed or retyped within a version: a change makes
   the next version.
2. ``request_id`` identifies the request fleet-wide (a random per-process prefix and
   a counter on the edge); it is the de-duplication key of every sink that can
   de-duplicate, so a batch sent twice is stored once.
3. ``normalize`` turns a decoded line into a tuple in ``COLUMNS`` order with each
   value of its declared type, or raises ``ValueError`` naming the field. Strings
   are cut to ``MAX_TEXT`` characters so one odd request cannot bloat the store.
4. ``country`` is not written by the edge: the control plane adds it at ingest from
   the client address when it has a GeoIP database (``owncdn.dns.geo``), else null.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
MAX_TEXT = 4096

# (name, type, nullable, meaning) — the order is the column order of the store.
FIELDS: tuple[tuple[str, str, bool, str], ...] = (
    ("schema_version", "int", False, "Version of this field set (1)."),
    ("time", "timestamp", False, "When the response was complete, UTC, RFC 3339 with milliseconds: `2026-11-22T02:33:59.123Z`."),
    ("request_id", "string", False, "The request's id, also sent as `X-Request-Id` to the client and the origin; unique across the fleet."),
    ("service", "string", False, "The service that answered, `-` when none did (unknown host, bad request)."),
    ("client", "string", False, "The client's IP address (from X-Forwarded-For only for trusted proxies)."),
    ("scheme", "string", False, "`http` or `https`."),
    ("protocol", "string", False, "HTTP version of the request: `1.0`, `1.1` or `2`."),
    ("method", "string", False, "Request method."),
    ("host", "string", False, "The Host (or :authority) the client asked for."),
    ("path", "string", False, "The request target: path and query, as sent."),
    ("status", "int", False, "Response status code."),
    ("bytes", "int", False, "Body bytes sent to the client."),
    ("cache", "string", False, "X-Cache: HIT, MISS, STALE, REVALIDATED, PASS, PUSH, REDIRECT, `-ABORTED` forms when the client left early, `-` when none applied."),
    ("edge", "string", False, "Id of the edge that answered."),
    ("location", "string", False, "The edge's location."),
    ("user_agent", "string", True, "User-Agent, or null."),
    ("referrer", "string", True, "Referer, or null."),
    ("range", "string", True, "Range asked for, or null."),
    ("ttfb_ms", "float", True, "Milliseconds from the request head to the first response byte written; null if nothing was written."),
    ("duration_ms", "float", False, "Milliseconds from the request head to the last response byte written."),
    ("origin_ms", "float", True, "Milliseconds the origin took to answer the head (misses and passes), else null."),
    ("origin_bytes", "int", False, "Body bytes this request fetched from an origin (the request that led a coalesced fetch carries them; hits 0)."),
    ("traceparent", "string", True, "The W3C `traceparent` the request carried to the origin, or null."),
    ("country", "string", True, "ISO 3166 country of `client`, added by the control plane at ingest when it has a GeoIP database; null otherwise."),
)
COLUMNS = tuple(f[0] for f in FIELDS)
_TYPES = {f[0]: (f[1], f[2]) for f in FIELDS}
CACHED = ("HIT", "STALE", "REVALIDATED", "PUSH")
"""Cache statuses that count as answered from the cache in the hit ratio."""


def _coerce(name: str, kind: str, value: Any) -> Any:
    if kind == "string" or kind == "timestamp":
        if not isinstance(value, str):
            raise ValueError(f"field {name!r}: expected a string, got {type(value).__name__}")
        return value[:MAX_TEXT]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"field {name!r}: expected an integer, got {type(value).__name__}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field {name!r}: expected a number, got {type(value).__name__}")
    return float(value)


def normalize(record: Any) -> tuple:
    """One decoded line as a tuple in ``COLUMNS`` order (Rule 3)."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object per line, got {type(record).__name__}")
    version = record.get("schema_version", 1)
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"schema_version {version!r} is not one this control plane reads (1..{SCHEMA_VERSION})")
    out = []
    for name in COLUMNS:
        kind, nullable = _TYPES[name]
        value = record.get(name)
        if value is None:
            if not nullable and name not in ("schema_version", "origin_bytes"):
                raise ValueError(f"field {name!r} is missing")
            value = {"schema_version": version, "origin_bytes": 0}.get(name)
            out.append(value)
            continue
        out.append(_coerce(name, kind, value))
    return tuple(out)
