"""Config problems people can act on: file, line, column, field, message.

Rule 1: a :class:`Problem` renders as
``cdn.yaml:12:9: services[0].origins[1].url: expected an http:// or https:// URL, got 'ftp://x'``.

Rule 2: :class:`ConfigError` carries every problem found, sorted by position,
never only the first.

Rule 3: messages never contain a resolved secret: "got ..." shows what the
file says, and a resolved value is a ``Secret`` whose repr is its reference.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem", "ConfigError"]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a config, at a place in a file."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be used, with every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
