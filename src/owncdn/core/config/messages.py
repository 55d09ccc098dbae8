"""Pydantic validation errors translated into plain :class:`Problem` lines.

Rule 1: each error's ``loc`` is mapped to the YAML node it came from: the
value for most errors, the key for an unknown field, the parent mapping for
a missing one.

Rule 2: "got ..." quotes the file's own text for that value (so a resolved
secret never shows), or names the kind of value ("a mapping", "a list").

Rule 3: an unknown field lists the fields that are allowed there, and the
closest one if it looks like a typo.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import Problem
from .source import Path, Source, format_path

__all__ = ["problems_from_errors"]

_EXPECTED = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "greater than"),
    "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than"),
}


def problems_from_errors(errors: list[ErrorDetails], source: Source, model: type[BaseModel]) -> list[Problem]:
    """One or more problems per pydantic error of validating ``source.data``."""
    problems: list[Problem] = []
    for error in errors:
        path = _path(error["loc"])
        if error["type"] == "config_problems":
            for sub, message in error.get("ctx", {})["problems"]:
                problems.append(_problem(source, path + tuple(sub), message))
        elif error["type"] == "extra_forbidden":
            problems.append(_problem(source, path, _unknown_field(path, model), key=True))
        else:
            problems.append(_problem(source, path, _message(error, path, source)))
    return problems


def _path(loc: tuple[Any, ...]) -> Path:
    # dict-key errors end in "[key]": point at the key itself, which is the previous part
    return tuple(part for part in loc if part != "[key]")


def _problem(source: Source, path: Path, message: str, *, key: bool = False) -> Problem:
    line, column = source.locate(path, key=key)
    return Problem(source.filename, line, column, format_path(path), message)


def _message(error: ErrorDetails, path: Path, source: Source) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    got = _got(source, path, error.get("input"))
    if kind == "missing":
        return "required field is missing"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return f"expected {ctx['expected']}, got {got}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got}"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        bound = ctx[name]
        return f"must be {words} {bound:g}, got {got}" if isinstance(bound, float) else f"must be {words} {bound}, got {got}"
    if kind == "too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"needs at least {ctx['min_length']} items"
    if kind == "too_long":
        return f"allows at most {ctx['max_length']} items"
    return error["msg"]


def _got(source: Source, path: Path, value: Any) -> str:
    node = source.node(path)
    if isinstance(node, ScalarNode):
        if node.tag == "tag:yaml.org,2002:null":
            return "nothing (null)"
        return repr(node.value) if node.tag == "tag:yaml.org,2002:str" else node.value
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return type(value).__name__


def _unknown_field(path: Path, model: type[BaseModel]) -> str:
    name = str(path[-1]) if path else ""
    parent = _model_at(model, path[:-1])
    if parent is None:
        return f"unknown field {name!r}"
    allowed = [field.alias or field_name for field_name, field in parent.model_fields.items()]
    close = difflib.get_close_matches(name, allowed, n=1) or [a for a in allowed if a.startswith(name)][:1]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field {name!r} (expected one of: {', '.join(allowed)}){hint}"


def _model_at(model: type[BaseModel], path: Path) -> type[BaseModel] | None:
    """The model class that validates the value at ``path``, if any."""
    tp: Any = model
    for part in path:
        tp = _unwrap(tp)
        if isinstance(part, str) and isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return None
            tp = tp.model_fields[part].annotation
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _unwrap(tp)
    if typing.get_origin(tp) is list:  # one item written where a list is allowed
        tp = _unwrap(typing.get_args(tp)[0])
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` -> ``X``."""
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else tp
    return tp
