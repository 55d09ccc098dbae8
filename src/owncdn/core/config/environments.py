"""Environments: one ``cdn.yaml``, several deployments (``staging``, ``production``).

    environments:
      staging:
        edge: {memory_cache: 64MiB}
        services:
          - {name: blog, hostnames: [blog.staging.example.com]}
          - {name: old-site, remove: true}

Rule 1: an overlay is a partial config deep-merged over the base document:
mappings merge key by key; the top-level lists ``services`` and ``locations``
merge item by item by ``name`` (a new name is appended, ``remove: true``
removes that name); every other value, lists included, replaces.

Rule 2: merging happens on the YAML nodes, so the merged tree still carries
every value's position: a value from the overlay points at the overlay's
line, everything else at the base's line.

Rule 3: the nodes handed in have been built once (``source.build_source``),
which expands ``<<`` merge keys in place; in a mapping the last entry of a
key wins, as it does in the built data.

Rule 4: the shape of every overlay (names, sections, item names, what is
removed) is checked whichever environment is chosen; the values themselves
are validated when an overlay is applied and the result parsed as a config.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Problem
from .model import SLUG_PATTERN
from .source import Path, Source, format_path

__all__ = ["OVERLAY_SECTIONS", "apply_overlay", "check_environments", "find_environment", "split_environments"]

OVERLAY_SECTIONS = ("edge", "locations", "services", "acme")  # acme: e.g. letsencrypt-staging for staging
"""Top-level keys an overlay may hold (besides ``x-`` keys)."""

NAMED_LISTS = {"services": "service", "locations": "location"}
"""Lists merged item by item by ``name``; the value names one item in messages."""

KEY = "environments"


def split_environments(root: Node) -> tuple[Node, Node | None]:
    """``root`` without its ``environments`` entry, and that entry's value."""
    if not isinstance(root, MappingNode):
        return root, None
    entries = _entries(root)
    if KEY not in entries:
        return root, None
    envs = entries.pop(KEY)[1]
    return _mapping_like(root, list(entries.values())), envs


def find_environment(envs: Node | None, name: str) -> Node | None:
    """The overlay node of environment ``name``; an empty overlay is ``MappingNode([])``."""
    if not isinstance(envs, MappingNode) or name not in _entries(envs):
        return None
    overlay = _entries(envs)[name][1]
    return overlay if isinstance(overlay, MappingNode) else MappingNode("tag:yaml.org,2002:map", [], overlay.start_mark, overlay.end_mark)


def check_environments(full: Source, base: Node) -> list[Problem]:
    """Problems with the shape of every overlay in ``full.data['environments']``."""
    data = full.data if isinstance(full.data, dict) else {}
    if KEY not in data:
        return []
    checker = _ShapeChecker(full)
    checker.environments(data[KEY])
    _, envs = split_environments(full.root)
    if isinstance(envs, MappingNode):
        for _, overlay in _entries(envs).values():
            if isinstance(overlay, MappingNode):
                checker.problems += apply_overlay(base, overlay, full.filename)[1]
    return checker.problems


def apply_overlay(base: Node, overlay: MappingNode, filename: str) -> tuple[Node, list[Problem]]:
    """``base`` with ``overlay`` merged over it, and the problems of merging."""
    merger = _Merger(filename)
    if not isinstance(base, MappingNode):
        return base, []
    return merger.mapping(base, overlay, top=True), merger.problems


class _Merger:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []

    def mapping(self, base: MappingNode, overlay: MappingNode, *, top: bool = False) -> MappingNode:
        entries = _entries(base)
        for key, (key_node, value) in _entries(overlay).items():
            current = entries.get(key, (None, None))[1]
            if top and key in NAMED_LISTS:
                value = self.named_list(current, value, NAMED_LISTS[key])
            elif isinstance(current, MappingNode) and isinstance(value, MappingNode):
                value = self.mapping(current, value)
            entries[key] = (entries.get(key, (key_node, None))[0], value)
        return _mapping_like(base, list(entries.values()))

    def named_list(self, base: Node | None, overlay: Node, what: str) -> Node:
        if not isinstance(overlay, SequenceNode):
            return overlay  # reported by the shape check; validation reports it too
        items: list[Node | None] = list(base.value) if isinstance(base, SequenceNode) else []
        index = {name: i for i, item in enumerate(items) if (name := _name(item)) is not None}
        for item in overlay.value:
            name = _name(item)
            if name is None:
                continue  # reported by the shape check
            if _removes(item):
                if name in index and items[index[name]] is not None:
                    items[index[name]] = None
                else:
                    mark = item.start_mark
                    self.problems.append(Problem(self.filename, mark.line + 1, mark.column + 1, "",
                                                 f"cannot remove {what} {name!r}: the base config has no {what} of that name"))
                continue
            item = _without(item, "remove")
            current = items[index[name]] if name in index else None
            if isinstance(current, MappingNode):
                items[index[name]] = self.mapping(current, item)
            else:
                index[name] = len(items)
                items.append(item)
        like = base if isinstance(base, SequenceNode) else overlay
        return SequenceNode(like.tag, [item for item in items if item is not None], like.start_mark, like.end_mark,
                            flow_style=like.flow_style)


class _ShapeChecker:
    """Checks an ``environments`` value (as built data), reporting at its nodes."""

    def __init__(self, full: Source) -> None:
        self.full = full
        self.problems: list[Problem] = []

    def report(self, path: Path, message: str, *, key: bool = False) -> None:
        line, column = self.full.locate(path, key=key)
        self.problems.append(Problem(self.full.filename, line, column, format_path(path), message))

    def environments(self, value: Any) -> None:
        path: Path = (KEY,)
        if not isinstance(value, dict):
            self.report(path, f"expected a mapping of environment names (like 'staging') to overlays, got {_kind(value)}")
            return
        for name, overlay in value.items():
            if not re.fullmatch(SLUG_PATTERN, name):
                self.report(path + (name,), f"an environment name is lowercase letters, digits and hyphens like 'staging', got {name!r}", key=True)
            self.overlay(path + (name,), overlay)

    def overlay(self, path: Path, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.report(path, f"expected a mapping (a partial config to merge over the base), got {_kind(value)}")
            return
        for key, section in value.items():
            if key in NAMED_LISTS:
                self.named_list(path + (key,), section, NAMED_LISTS[key])
            elif key not in OVERLAY_SECTIONS and not key.startswith("x-"):
                self.report(path + (key,), _unknown_section(key), key=True)

    def named_list(self, path: Path, value: Any, what: str) -> None:
        if not isinstance(value, list):
            self.report(path, f"expected a list of {what}s to add, change or remove by name, got {_kind(value)}")
            return
        seen: set[str] = set()
        for i, item in enumerate(value):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                self.report(path + (i,), f"each item needs a 'name': the {what} to add, change or remove")
                continue
            if name in seen:
                self.report(path + (i, "name"), f"{what} {name!r} appears twice in this overlay")
            seen.add(name)
            remove = item.get("remove", False)
            if not isinstance(remove, bool):
                self.report(path + (i, "remove"), f"expected true or false, got {_kind(remove)}")
            elif remove and set(item) - {"name", "remove"}:
                others = ", ".join(sorted(set(item) - {"name", "remove"}))
                self.report(path + (i,), f"an item with 'remove: true' takes only its name; found also: {others}")


def _unknown_section(key: str) -> str:
    if key == KEY:
        return "environments cannot be nested"
    if key == "version":
        return "an overlay cannot change the version"
    close = difflib.get_close_matches(key, OVERLAY_SECTIONS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field {key!r} in an overlay (expected one of: {', '.join(OVERLAY_SECTIONS)}){hint}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _entries(node: MappingNode) -> dict[str, tuple[Node, Node]]:
    """Key text -> (key node, value node); the last entry of a key wins."""
    entries: dict[str, tuple[Node, Node]] = {}
    for key, value in node.value:
        if isinstance(key, ScalarNode):
            entries[key.value] = (key, value)
    return entries


def _mapping_like(node: MappingNode, value: list[tuple[Node, Node]]) -> MappingNode:
    return MappingNode(node.tag, value, node.start_mark, node.end_mark, flow_style=node.flow_style)


def _name(item: Node | None) -> str | None:
    if not isinstance(item, MappingNode):
        return None
    name = _entries(item).get("name", (None, None))[1]
    return name.value if isinstance(name, ScalarNode) and name.tag == "tag:yaml.org,2002:str" else None


def _removes(item: MappingNode) -> bool:
    flag = _entries(item).get("remove", (None, None))[1]
    return isinstance(flag, ScalarNode) and flag.tag == "tag:yaml.org,2002:bool" and flag.value.lower() == "true"


def _without(item: MappingNode, key: str) -> MappingNode:
    return _mapping_like(item, [(k, v) for k, v in item.value if not (isinstance(k, ScalarNode) and k.value == key)])
