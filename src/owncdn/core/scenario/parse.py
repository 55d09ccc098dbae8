"""``parse_scenarios``: scenario file text in, a :class:`ScenarioSuite` or problems out.

Rule 1: problems are the config's :class:`~owncdn.core.config.Problem`: file,
line, column, field, message, every one reported at once.

Rule 2: strings stay as written: a scenario file has no ``${env:..}``
references (a body may well contain ``${``).

Rule 3: given the config's service names, a scenario must name one of them,
or may leave ``service`` out when there is exactly one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode

from owncdn.core.config.errors import ConfigError, Problem
from owncdn.core.config.messages import problems_from_errors
from owncdn.core.config.source import Source, format_path, read_source

from .model import Scenario, ScenarioFile

__all__ = ["ScenarioSuite", "parse_scenarios"]


@dataclass(frozen=True)
class ScenarioSuite:
    """The scenarios of one file, with the line of each scenario and step."""

    filename: str
    scenarios: list[Scenario]
    lines: list[tuple[int, list[int]]]

    def line(self, scenario: int, step: int | None = None) -> int:
        """1-based line of scenario ``scenario`` (0-based), or of its step ``step`` (0-based)."""
        first, steps = self.lines[scenario]
        return first if step is None else steps[step]


def parse_scenarios(text: str, filename: str, services: Sequence[str] | None = None) -> ScenarioSuite:
    """Validate ``text`` as a scenario file; raise :class:`ConfigError`.

    ``services`` (the config's service names) enables the check of each
    scenario's ``service``.
    """
    source = read_source(text, filename, None)
    problems = list(source.problems)
    if source.root is None:
        raise ConfigError(problems or [Problem(filename, 1, 1, "", "the file is empty; expected 'scenarios:' and a list of scenarios")])
    try:
        parsed = ScenarioFile.model_validate(source.data)
    except ValidationError as exc:
        errors = [_on_nodes(error, source) for error in exc.errors()]
        raise ConfigError(problems + list(dict.fromkeys(problems_from_errors(errors, source, ScenarioFile)))) from None
    if services is not None:
        problems += _service_problems(parsed.scenarios, list(services), source)
    if problems:
        raise ConfigError(problems)
    lines = [
        (source.locate(("scenarios", i))[0], [source.locate(("scenarios", i, "steps", j))[0] for j in range(len(s.steps))])
        for i, s in enumerate(parsed.scenarios)
    ]
    return ScenarioSuite(filename, parsed.scenarios, lines)


def _on_nodes(error: ErrorDetails, source: Source) -> ErrorDetails:
    """``error`` with list indexes dropped where the file has a mapping (one reply for a list)."""
    loc: list[str | int] = []
    for part in error["loc"]:
        if isinstance(part, int) and isinstance(source.node(tuple(loc)), MappingNode):
            continue
        loc.append(part)
    return {**error, "loc": tuple(loc)}


def _service_problems(scenarios: list[Scenario], services: list[str], source: Source) -> list[Problem]:
    known = ", ".join(services) if services else "none"
    problems = []
    for i, scenario in enumerate(scenarios):
        if scenario.service is not None and scenario.service not in services:
            path: tuple[str | int, ...] = ("scenarios", i, "service")
            message = f"no service {scenario.service!r} in the config (services: {known})"
        elif scenario.service is None and len(services) != 1:
            path = ("scenarios", i)
            message = f"name the service to test with 'service:'; the config has {len(services)} (services: {known})"
        else:
            continue
        line, column = source.locate(path)
        problems.append(Problem(source.filename, line, column, format_path(path), message))
    return problems
