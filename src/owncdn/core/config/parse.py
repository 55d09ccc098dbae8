"""``parse_config`` and ``config_json_schema``: text in, ``Config`` or problems out.

Rule 1: nothing here opens files or reads the environment; the caller passes
the text, the file name used in messages and a secret resolver.

Rule 2: every problem is reported at once: YAML and reference problems,
then (on the same data) every validation problem.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .errors import ConfigError, Problem
from .messages import problems_from_errors
from .hostnames import normalize_hostname
from .model import Config, cross_problems
from .secrets import Resolver
from .source import Source, format_path, read_source

__all__ = ["parse_config", "config_json_schema"]


def parse_config(text: str, filename: str, resolve: Resolver) -> Config:
    """Validate ``text`` (YAML) as a :class:`Config`; raise :class:`ConfigError`."""
    source = read_source(text, filename, resolve)
    problems = list(source.problems)
    if source.root is None and not problems:
        problems.append(Problem(filename, 1, 1, "", "the file is empty; expected a mapping with 'version: 1' and 'services'"))
    if problems and source.root is None:
        raise ConfigError(problems)
    try:
        config = Config.model_validate(source.data)
    except ValidationError as exc:
        taken = {(p.line, p.column) for p in problems}
        more = problems_from_errors(exc.errors(), source, Config) + _raw_cross_problems(source)
        # a value whose reference failed is None now; its "expected ..." is noise
        more = [p for p in dict.fromkeys(more) if (p.line, p.column) not in taken]
        raise ConfigError(problems + more) from None
    if problems:
        raise ConfigError(problems)
    return config


def _raw_cross_problems(source: Source) -> list[Problem]:
    """Uniqueness checks on the raw data, for when ``Config`` did not validate."""
    data = source.data if isinstance(source.data, dict) else {}
    locations = [_raw_name(item) for item in _raw_list(data.get("locations"))]
    services = [
        (_raw_name(item), [_raw_hostname(h) for h in _raw_list(item.get("hostnames") if isinstance(item, dict) else None)])
        for item in _raw_list(data.get("services"))
    ]
    return [
        Problem(source.filename, *source.locate(path), format_path(path), message)
        for path, message in cross_problems(locations, services)
    ]


def _raw_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _raw_name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) else None


def _raw_hostname(value: Any) -> str | None:
    try:
        return normalize_hostname(value) if isinstance(value, str) else None
    except ValueError:
        return None


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``cdn.yaml``, for editors and docs."""
    schema = Config.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "owncdn cdn.yaml"}
