"""``owncdn validate`` and ``owncdn schema``: commands about ``cdn.yaml``.

``validate`` checks the base config and every environment of the file
(``environments:``), or one with ``--env``; a problem an environment shares
with the base is printed once.

The config model (pydantic) is imported by the commands that read a config, not when
the command line is parsed: every `owncdn` command started about 150 ms later with it.
"""

from __future__ import annotations

from pathlib import Path

import typer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from owncdn.core.config import Config, Problem

__all__ = ["load_env_config", "read_config_text", "register", "validate", "schema"]


def load_env_config(path: Path, env: str | None) -> Config:
    """``load_config`` for one environment of the file (``None``: the base)."""
    from owncdn.configfile import load_config

    return load_config(path, environment=env)


def read_config_text(path: Path) -> str:
    """``configfile.read_config_text``."""
    from owncdn.configfile import read_config_text as read

    return read(path)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def validate(
    path: Path = typer.Argument(Path("cdn.yaml"), help="The config file to check.", show_default=True),
    env: str = typer.Option(None, "--env", "-e", help="Check only this environment (default: the base and every environment)."),
) -> None:
    """Check a config file; print every problem as file:line:column: field: message."""
    import os

    from owncdn.configfile import make_resolver
    from owncdn.core.config import ConfigError, environment_names, parse_config

    try:
        text = read_config_text(path)
    except ConfigError as exc:
        _report(str(path), exc.problems, set())
        raise typer.Exit(1) from None
    resolve = make_resolver(path.resolve().parent, os.environ)
    targets = [env] if env is not None else [None, *environment_names(text)]
    failed = False
    shown: set[tuple[int, int, str]] = set()
    for target in targets:
        label = str(path) if target is None else f"{path} [{target}]"
        try:
            config = parse_config(text, str(path), resolve, env=target)
        except ConfigError as exc:
            failed = True
            _report(label, exc.problems, shown)
            continue
        typer.echo(f"{label}: OK ({_plural(len(config.services), 'service')}, {_plural(len(config.locations), 'location')})")
    if failed:
        raise typer.Exit(1)


def _report(label: str, problems: list[Problem], shown: set[tuple[int, int, str]]) -> None:
    """Print the problems not printed yet (an environment repeats its base's) and a count."""
    repeated = 0
    for problem in problems:
        key = (problem.line, problem.column, problem.message)
        if key in shown:
            repeated += 1
            continue
        shown.add(key)
        typer.echo(str(problem), err=True)
    also = f" ({repeated} shown above)" if repeated else ""
    typer.echo(f"{label}: {_plural(len(problems), 'problem')}{also}", err=True)


def schema() -> None:
    """Print the JSON Schema of cdn.yaml (for editors: yaml-language-server)."""
    import json

    from owncdn.core.config import config_json_schema

    typer.echo(json.dumps(config_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(validate)
    app.command()(schema)
