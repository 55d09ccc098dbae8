"""JSON for `owncdn push` without importing ``json``: the C parts of ``json`` used directly.

    loads(b'{"number": 3}')             # == json.loads(...)
    dumps({"release": 3, "files": []})  # == json.dumps(...)

Importing ``json`` brings ``re`` (and ``enum`` with it): about 5 ms of a command that
spends about 35 ms in all on a one-file push. ``json`` does its work in ``_json``
(a C module that imports nothing), so the push answers are read and its ``--json``
line written with that module's functions.

Rules:
1. ``loads`` gives what ``json.loads`` gives: the document parsed by ``_json``'s
   scanner with ``json``'s defaults (``float``, ``int``, NaN and the infinities, strict
   strings), whitespace around it allowed. Whatever that scanner does not take (bad
   JSON, extra data, a byte order mark, UTF-16) is handed to ``json.loads``, which
   parses it or raises its own error: errors and edge cases are ``json``'s own.
2. ``dumps`` gives what ``json.dumps(value)`` gives with its defaults (``", "`` and
   ``": "``, ASCII with ``\\u`` escapes, insertion order) for dicts with string keys,
   lists, tuples, strings, ints, floats, booleans and None; anything else is handed to
   ``json.dumps``. It is for small values (a command's result), not large documents.
3. Without ``_json`` (another Python), both are ``json``'s.
"""

from __future__ import annotations

try:
    from _json import encode_basestring_ascii as _quote
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - CPython has it (Rule 3)
    _quote = _make_scanner = None

__all__ = ["dumps", "loads"]

_WHITESPACE = " \t\n\r"


class _Defaults:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder`` (its defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_scan = _make_scanner(_Defaults()) if _make_scanner is not None else None


def loads(data: bytes | bytearray | str):
    """Rule 1."""
    if _scan is not None:
        try:
            text = data if isinstance(data, str) else bytes(data).decode("utf-8")
            start = len(text) - len(text.lstrip(_WHITESPACE))
            value, end = _scan(text, start)
            if end == len(text) or not text[end:].strip(_WHITESPACE):
                return value
        except (StopIteration, ValueError):  # ValueError: JSONDecodeError, UnicodeDecodeError
            pass
    import json

    return json.loads(data)


def dumps(value: object) -> str:
    """Rule 2."""
    if _quote is not None:
        parts: list[str] = []
        if _encode(value, parts):
            return "".join(parts)
    import json

    return json.dumps(value)


def _encode(value: object, out: list[str]) -> bool:
    """Append the encoding of ``value`` to ``out``; False for a value Rule 2 leaves to ``json``."""
    kind = value.__class__
    if kind is str:
        out.append(_quote(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            return False  # NaN and the infinities: json's spellings
        out.append(float.__repr__(value))
    elif kind is list or kind is tuple:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(", ")
            if not _encode(item, out):
                return False
        out.append("]")
    elif kind is dict:
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if key.__class__ is not str:
                return False  # json turns other keys into strings its own way
            out.append(", " if i else "")
            out.append(_quote(key))
            out.append(": ")
            if not _encode(item, out):
                return False
        out.append("}")
    else:
        return False
    return True
