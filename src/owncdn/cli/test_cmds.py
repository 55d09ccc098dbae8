"""``owncdn test``: run scenario files against the edge with your cdn.yaml.

Each scenario gets a scripted origin and a real edge on loopback (nothing
leaves the machine) with a fake clock; see ``owncdn.core.scenario`` for the
file format. Prints one PASS / FAIL line per scenario and ``N passed, M
failed``; exits 1 on any failure, or on a problem in the config or a
scenario file (printed as file:line:column: field: message).
"""

from __future__ import annotations

from pathlib import Path

import typer

from owncdn.cli.config_cmds import load_env_config, read_config_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from owncdn.core.scenario import ScenarioSuite

__all__ = ["DEFAULT_SCENARIOS", "register", "test_command"]

DEFAULT_SCENARIOS = "cdn.scenarios.yaml"
"""The scenario file looked for next to the config when none is given."""


def test_command(
    config: Path = typer.Argument(Path("cdn.yaml"), help="The config file to test."),
    scenarios: list[Path] = typer.Option(
        None, "--scenarios", "-s", help=f"Scenario file (repeatable); default: {DEFAULT_SCENARIOS} next to the config."),
    env: str = typer.Option(None, "--env", "-e", help="Test this environment of the config."),
) -> None:
    """Run edge scenarios (a scripted origin, requests, expected responses) against the config."""
    from owncdn.core.config import ConfigError
    from owncdn.testing.scenario import run_scenarios

    files = scenarios or [config.parent / DEFAULT_SCENARIOS]
    try:
        cfg = load_env_config(config, env)
        names = [service.name for service in cfg.services]
        suites = [_load_suite(path, names) for path in files]
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    passed = failed = 0
    for suite in suites:
        prefix = f"{suite.filename}: " if len(suites) > 1 else ""
        for result in run_scenarios(cfg, suite):
            if result.passed:
                passed += 1
                typer.echo(f"PASS  {prefix}{result.name}")
            else:
                failed += 1
                typer.echo(f"FAIL  {prefix}{result.name}: {result.failure} ({suite.filename}:{result.line})")
    typer.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


def _load_suite(path: Path, services: list[str]) -> ScenarioSuite:
    from owncdn.core.scenario import parse_scenarios

    return parse_scenarios(read_config_text(path), str(path), services)


def register(app: typer.Typer) -> None:
    """Add ``owncdn test`` to ``app``."""
    app.command("test")(test_command)
