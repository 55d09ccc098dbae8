"""YAML text to plain data, keeping every node's position.

Rule 1: the text is composed into PyYAML nodes (each with a ``start_mark``),
checked for duplicate keys, then turned into Python data by hand, so every
value can be traced back to its line and column (:meth:`Source.locate`).

Rule 2: scalars follow YAML 1.2's core schema for booleans: only
``true``/``false`` are booleans, so ``country: NO`` and ``access_log: off``
stay strings. Mapping keys are always their text as written.

Rule 3: secret references in string scalars are resolved here (see
``secrets``); a failing reference is reported at its scalar, and the data
gets ``None`` in its place so validation can report everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Problem
from .secrets import Resolver, interpolate

__all__ = ["Source", "build_source", "compose", "format_path", "read_source"]

Path = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (no yes/no/on/off)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass
class Source:
    """The data of one YAML document and the node tree it came from."""

    filename: str
    data: Any
    root: Node | None
    problems: list[Problem] = field(default_factory=list)

    def node(self, path: Path) -> Node | None:
        """The node at ``path``, or ``None`` if the path leaves the tree."""
        node, complete = self._walk(path, key=False)
        return node if complete else None

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the deepest node along ``path``.

        A path that leaves the tree (a missing field) stops at the last node
        found, i.e. the parent mapping. ``key=True`` gives the key of the last
        mapping entry instead of its value (for unknown fields).
        """
        node, _ = self._walk(path, key=key)
        if node is None:
            return (1, 1)
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def _walk(self, path: Path, *, key: bool) -> tuple[Node | None, bool]:
        node = self.root
        if node is None:
            return None, False
        for i, part in enumerate(path):
            found = _child(node, part, key=key and i == len(path) - 1)
            if found is None:
                return node, False
            node = found
        return node, True


def _child(node: Node, part: str | int, *, key: bool) -> Node | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        for k, v in reversed(node.value):  # the last entry wins, as in the data
            if isinstance(k, ScalarNode) and k.value == part:
                return k if key else v
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None


def read_source(text: str, filename: str, resolve: Resolver | None) -> Source:
    """Compose, check and convert ``text``; syntax errors become problems.

    ``resolve=None`` keeps strings as written (no ``${...}`` references).
    """
    root, problems = compose(text, filename)
    if root is None:
        return Source(filename, None, None, problems)
    return build_source(root, filename, resolve)


def compose(text: str, filename: str) -> tuple[Node | None, list[Problem]]:
    """The node tree of ``text``, or ``None`` and the syntax problem."""
    loader = _Loader(text)
    try:
        return loader.get_single_node(), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(p for p in (exc.context, exc.problem) if p)
        return None, [Problem(filename, line, col, "", f"YAML syntax error: {message}")]
    except yaml.YAMLError as exc:
        return None, [Problem(filename, 1, 1, "", f"YAML error: {exc}")]
    finally:
        loader.dispose()


def build_source(root: Node, filename: str, resolve: Resolver | None, *, check_keys: bool = True) -> Source:
    """Turn a node tree into data, reporting problems at their nodes.

    Building flattens ``<<`` merge keys in place, so a tree is built with
    ``check_keys=True`` once; a tree assembled from already built nodes
    (an environment overlay over its base) is built with ``check_keys=False``.
    """
    source = Source(filename, None, root)
    source.data = _Builder(source, _Loader(""), resolve, check_keys=check_keys).build(root, ())
    return source


class _Builder:
    """Turns nodes into data, reporting duplicate keys and bad references."""

    def __init__(self, source: Source, loader: _Loader, resolve: Resolver | None, *, check_keys: bool = True) -> None:
        self.source, self.loader, self.resolve, self.check_keys = source, loader, resolve, check_keys
        self.active: set[int] = set()

    def report(self, node: Node, path: Path, message: str) -> None:
        mark = node.start_mark
        self.source.problems.append(
            Problem(self.source.filename, mark.line + 1, mark.column + 1, format_path(path), message)
        )

    def build(self, node: Node, path: Path) -> Any:
        if id(node) in self.active:
            self.report(node, path, "an alias refers to itself")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return self.scalar(node, path)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        seen: dict[str, int] = {}
        for k, _ in node.value if self.check_keys else ():
            if isinstance(k, ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                if k.value in seen:
                    self.report(k, path + (k.value,), f"duplicate key {k.value!r} (first on line {seen[k.value]})")
                seen.setdefault(k.value, k.start_mark.line + 1)
        try:
            self.loader.flatten_mapping(node)  # expands "<<" merge keys in place
        except yaml.MarkedYAMLError as exc:
            self.report(node, path, f"bad merge key: {exc.problem}")
        result: dict[str, Any] = {}
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                self.report(k, path, "a mapping key must be a plain string")
                continue
            result[k.value] = self.build(v, path + (k.value,))
        return result

    def scalar(self, node: Node, path: Path) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.report(node, path, f"cannot read value: {exc.problem}")
            return None
        if isinstance(value, str) and self.resolve is not None:
            try:
                return interpolate(value, self.resolve)
            except ValueError as exc:
                self.report(node, path, str(exc))
                return None
        return value


def format_path(path: Path) -> str:
    """``("services", 0, "origins", 1, "url")`` -> ``"services[0].origins[1].url"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out
