"""``parse_config`` and ``config_json_schema``: text in, ``Config`` or problems out.

Rule 1: nothing here opens files or reads the environment; the caller passes
the text, the file name used in messages and a secret resolver.

Rule 2: every problem is reported at once: YAML and reference problems,
then (on the same data) every validation problem.

Rule 3: the file is built twice. First whole, with no secret resolved, for
duplicate keys, reference syntax and the shape of every environment overlay;
then the base, with the chosen environment's overlay merged over it on the
YAML nodes (``environments``), with secrets resolved, for validation. Only
the chosen environment's secrets are resolved, and a problem both builds
find is reported once.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .environments import apply_overlay, check_environments, find_environment, split_environments
from .errors import ConfigError, Problem
from .hostnames import normalize_hostname
from .messages import problems_from_errors
from .model import Config, ConfigFile, cross_problems
from .secrets import Resolver
from .source import Source, build_source, compose, format_path, read_source

__all__ = ["parse_config", "config_json_schema", "environment_names"]


def parse_config(text: str, filename: str, resolve: Resolver, env: str | None = None) -> Config:
    """Validate ``text`` (YAML) as a :class:`Config`; raise :class:`ConfigError`.

    ``env`` names an environment of the file's ``environments`` mapping whose
    overlay is merged over the base first (see ``environments``); with
    ``None`` the overlays' shape is checked and the base is validated. A file
    without ``environments`` is the same in every environment; a file with them
    must define ``env``.
    """
    root, problems = compose(text, filename)
    if root is None:
        if not problems:
            problems.append(Problem(filename, 1, 1, "", "the file is empty; expected a mapping with 'version: 1' and 'services'"))
        raise ConfigError(problems)
    # once over the whole file without secrets: duplicate keys, bad references, overlay shapes
    full = build_source(root, filename, _unresolved)
    base, envs = split_environments(root)
    problems = _unique(full.problems + check_environments(full, base))
    if env is not None:
        overlay = find_environment(envs, env)
        if overlay is not None:
            base = apply_overlay(base, overlay, filename)[0]
        elif _names(full):  # a file with environments must name this one (typos)
            raise ConfigError(problems + [_unknown_environment(full, env)])
    source = build_source(base, filename, resolve, check_keys=False)
    problems = _unique(problems + source.problems)
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


def environment_names(text: str) -> list[str]:
    """Names of the environments ``text`` defines, in file order; ``[]`` if none
    (or if the file cannot be read: :func:`parse_config` reports why)."""
    return _names(read_source(text, "", None))


def _unresolved(kind: str, name: str) -> str:
    return ""


def _unique(problems: list[Problem]) -> list[Problem]:
    """The first problem of each (line, column, message): a node built twice reports twice."""
    seen: dict[tuple[int, int, str], Problem] = {}
    for problem in problems:
        seen.setdefault((problem.line, problem.column, problem.message), problem)
    return list(seen.values())


def _unknown_environment(full: Source, env: str) -> Problem:
    names = _names(full)
    line, column = full.locate(("environments",), key=True)
    known = f"known: {', '.join(names)}" if names else "the file defines no environments"
    return Problem(full.filename, line, column, "environments", f"unknown environment {env!r} ({known})")


def _names(source: Source) -> list[str]:
    envs = source.data.get("environments") if isinstance(source.data, dict) else None
    return [name for name in envs if isinstance(name, str)] if isinstance(envs, dict) else []


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
    schema = ConfigFile.model_json_schema(mode="validation")
    schema["description"] = Config.model_json_schema(mode="validation")["description"]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "owncdn cdn.yaml"}
