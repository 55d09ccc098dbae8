"""What changes between two configs: the data of ``owncdn plan``.

    changes = diff_configs(running, wanted)
    print(render_plan(changes))
    + service shop (hostnames: shop.example.com; origins: https://o.example.com)
    ~ services[blog].cache.default_ttl: null -> 600.0
    + services[blog].hostnames: "www.example.com"
    - service old

Rule 1: both configs are compared as ``model_dump(mode="json")``, so values
compare as the edge sees them (durations in seconds, sizes in bytes).

Rule 2: ``services`` and ``locations`` are matched by ``name``, never by
position: a path reads ``services[blog].cache.default_ttl``. A new name is one
"add" of the whole item, a missing name one "remove".

Rule 3: lists whose order means nothing (``SET_LIKE``: hostnames, trusted
proxies, query-string include / exclude, cookie keys, header removals) give
one "add" or "remove" per item. Every other value, ordered lists such as
``origins`` included, is one "change" of the whole value.

Rule 4: a secret is shown by its reference (``${env:TOKEN}``), never its
value, and two secrets with the same reference are equal. Control-plane
snapshots hold placeholder secrets, so a plan compares configs parsed from
their YAML source with :func:`keep_references` as the resolver. (A
reference in a field with a format of its own, such as an origin URL, does
not validate that way; keep references to header values and free text.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from .model import Config
from .secrets import Secret

__all__ = ["Change", "NAMED_LISTS", "SET_LIKE", "diff_configs", "keep_references", "render_plan"]

NAMED_LISTS = {"services": "service", "locations": "location"}
"""Top-level lists matched by ``name``; the value is the word used in the plan."""

SET_LIKE = frozenset({"hostnames", "trusted_proxies", "include", "exclude", "key", "remove"})
"""Fields holding lists whose order has no meaning: diffed item by item."""


@dataclass(frozen=True)
class Change:
    """One difference: ``add`` (``old`` is None), ``remove`` (``new`` is None) or ``change``."""

    kind: Literal["add", "remove", "change"]
    path: str
    old: Any
    new: Any


def keep_references(kind: str, name: str) -> str:
    """A resolver for plans: every reference resolves to its own text."""
    return f"${{{kind}:{name}}}"


def diff_configs(old: Config | None, new: Config) -> list[Change]:
    """Every difference from ``old`` (``None``: nothing runs yet) to ``new``."""
    after = _dump(new)
    before = _dump(old) if old is not None else {"version": after["version"], "locations": [], "services": []}
    changes: list[Change] = []
    _diff_mapping(before, after, "", changes, top=True)
    return changes


def _dump(config: Config) -> Any:
    return _with_references(config.model_dump(mode="python"), config.model_dump(mode="json"))


def _with_references(python: Any, plain: Any) -> Any:
    """The JSON dump with every ``Secret`` of the python dump replaced by its reference."""
    if isinstance(python, Secret):
        return python.reference
    if isinstance(python, dict) and isinstance(plain, dict):
        return {key: _with_references(python.get(key), value) for key, value in plain.items()}
    if isinstance(python, list) and isinstance(plain, list) and len(python) == len(plain):
        return [_with_references(p, v) for p, v in zip(python, plain)]
    return plain


def _diff_mapping(old: dict, new: dict, path: str, out: list[Change], *, top: bool = False) -> None:
    for key, value in new.items():
        sub = _join(path, key)
        if key not in old:
            out.append(Change("add", sub, None, value))
        elif top and key in NAMED_LISTS:
            _diff_named(old[key], value, key, out)
        else:
            _diff_value(old[key], value, sub, key, out)
    for key, value in old.items():
        if key not in new:
            out.append(Change("remove", _join(path, key), value, None))


def _diff_value(old: Any, new: Any, path: str, field: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        _diff_mapping(old, new, path, out)
    elif isinstance(old, list) and isinstance(new, list) and field in SET_LIKE:
        out.extend(Change("add", path, None, item) for item in new if item not in old)
        out.extend(Change("remove", path, item, None) for item in old if item not in new)
    elif old != new or type(old) is not type(new):
        out.append(Change("change", path, old, new))


def _diff_named(old: list[dict], new: list[dict], section: str, out: list[Change]) -> None:
    before = {item["name"]: item for item in old}
    after = {item["name"]: item for item in new}
    for name, item in after.items():
        path = f"{section}[{name}]"
        if name in before:
            _diff_mapping(before[name], item, path, out)
        else:
            out.append(Change("add", path, None, item))
    out.extend(Change("remove", f"{section}[{name}]", item, None) for name, item in before.items() if name not in after)


def _join(path: str, key: str) -> str:
    if all(c.isalnum() or c in "_-" for c in key) and key:
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def render_plan(changes: list[Change]) -> str:
    """One line per change (``+`` add, ``-`` remove, ``~`` change); ``"No changes."`` if none."""
    if not changes:
        return "No changes."
    return "\n".join(_line(change) for change in changes)


def _line(change: Change) -> str:
    section, _, name = change.path.partition("[")
    if section in NAMED_LISTS and name.endswith("]") and "]" not in name[:-1]:
        what = f"{NAMED_LISTS[section]} {name[:-1]}"
        if change.kind == "remove":
            return f"- {what}"
        return f"+ {what} ({_summary(change.new, section)})"
    if change.kind == "add":
        return f"+ {change.path}: {_value(change.new)}" if not isinstance(change.new, dict) else \
            f"+ {change.path} ({_summary(change.new, '')})"
    if change.kind == "remove":
        return f"- {change.path}: {_value(change.old)}"
    return f"~ {change.path}: {_value(change.old)} -> {_value(change.new)}"


def _summary(item: dict, section: str) -> str:
    """The parts of an added item a reader looks for first."""
    if section == "services":
        hostnames = f"hostnames: {', '.join(item.get('hostnames', []))}"
        if item.get("mode") == "push" and not item.get("origins"):
            return f"{hostnames}; mode: push"  # served from pushed releases: no origin to name
        origins = [o.get("url") if isinstance(o, dict) else o for o in item.get("origins", [])]
        return f"{hostnames}; origins: {', '.join(map(str, origins))}"
    shown = {k: v for k, v in item.items() if v is not None and k != "name" and not isinstance(v, (dict, list))
             and not (section == "locations" and k == "weight" and v == 1)}  # the default weight says nothing
    return "; ".join(f"{k}: {v}" for k, v in shown.items()) or "defaults"


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
