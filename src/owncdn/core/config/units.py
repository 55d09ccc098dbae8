"""Durations and byte sizes as people write them in ``cdn.yaml``.

Rule 1: a duration is a number of seconds (int or float) or a string of one or
more ``<number><unit>`` parts, units ``ms s m h d w``: ``"500ms"``, ``"30s"``,
``"1h30m"``. It becomes a ``float`` of seconds.

Rule 2: a byte size is a whole number of bytes or a string ``<number><unit>``
with decimal units ``B kB MB GB TB`` (powers of 1000) or binary units
``KiB MiB GiB TiB`` (powers of 1024), case-insensitive: ``"64KiB"``,
``"1GB"``. It becomes an ``int`` of bytes.

Rule 3: negative values, NaN, infinity and anything else are errors whose
message says what was expected.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

__all__ = ["Duration", "ByteSize", "parse_duration", "parse_byte_size", "format_duration"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_TEXT = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")
_NUMBER_TEXT = re.compile(r"\d+(?:\.\d+)?")
_DURATION_PATTERN = r"^\s*(\d+(\.\d+)?|(\d+(\.\d+)?(ms|s|m|h|d|w))+)\s*$"

_BYTE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_BYTE_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)", re.IGNORECASE)
_BYTE_PATTERN = r"^\s*\d+(\.\d+)?\s*([bB]|[kKmMgGtT][iI]?[bB])?\s*$"

_DURATION_HINT = "a duration like 500ms, 30s, 5m, 1h30m, 1d or a number of seconds"
_BYTES_HINT = "a size like 512, 64KiB, 256MiB, 1GiB or 10kB"


def _check_number(value: float, hint: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"expected {hint}, got {value!r}")
    if value < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return value


def parse_duration(value: Any) -> float:
    """Seconds as a float from a number or a string such as ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected {_DURATION_HINT}, got {value!r}")
    if isinstance(value, (int, float)):
        return float(_check_number(value, _DURATION_HINT))
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"must not be negative, got {value!r}")
        if _NUMBER_TEXT.fullmatch(text):
            return float(text)
        if _DURATION_TEXT.fullmatch(text):
            return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    raise ValueError(f"expected {_DURATION_HINT}, got {value!r}")


def parse_byte_size(value: Any) -> int:
    """Bytes as an int from a whole number or a string such as ``"256MiB"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected {_BYTES_HINT}, got {value!r}")
    if isinstance(value, (int, float)):
        _check_number(value, _BYTES_HINT)
        if value != int(value):
            raise ValueError(f"expected a whole number of bytes, got {value!r}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"must not be negative, got {value!r}")
        match = _BYTE_TEXT.fullmatch(text)
        if match and match.group(2).lower() in _BYTE_UNITS:
            return round(float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()])
    raise ValueError(f"expected {_BYTES_HINT}, got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest common spelling of ``seconds``: ``90 -> "1m30s"``."""
    if seconds != int(seconds):
        return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
    rest, parts = int(seconds), []
    for unit in ("d", "h", "m", "s"):
        size = int(_DURATION_UNITS[unit])
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({
        "anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": _DURATION_PATTERN},
        ],
    }),
]
"""Seconds (float); accepts numbers and strings like ``"30s"`` or ``"1h30m"``."""

ByteSize = Annotated[
    int,
    BeforeValidator(parse_byte_size),
    WithJsonSchema({
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": _BYTE_PATTERN},
        ],
    }),
]
"""Bytes (int); accepts whole numbers and strings like ``"256MiB"`` or ``"1GB"``."""
