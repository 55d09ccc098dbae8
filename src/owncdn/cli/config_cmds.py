"""``owncdn validate`` and ``owncdn schema``: commands about ``cdn.yaml``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from owncdn.configfile import load_config
from owncdn.core.config import ConfigError, config_json_schema

__all__ = ["register", "validate", "schema"]


def validate(
    path: Path = typer.Argument(Path("cdn.yaml"), help="The config file to check.", show_default=True),
) -> None:
    """Check a config file; print every problem as file:line:column: field: message."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        count = len(exc.problems)
        typer.echo(f"{path}: {count} problem{'s' if count != 1 else ''}", err=True)
        raise typer.Exit(1) from None
    services, locations = len(config.services), len(config.locations)
    typer.echo(
        f"{path}: OK ({services} service{'s' if services != 1 else ''}, "
        f"{locations} location{'s' if locations != 1 else ''})"
    )


def schema() -> None:
    """Print the JSON Schema of cdn.yaml (for editors: yaml-language-server)."""
    typer.echo(json.dumps(config_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(validate)
    app.command()(schema)
