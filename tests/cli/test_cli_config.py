"""``owncdn validate``, ``owncdn schema`` and ``owncdn --version`` through Typer's runner."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owncdn.cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pull-site.yaml"

BROKEN = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: [ftp://x]
    cache: {ttl: 5m}
"""


@pytest.fixture
def runner():
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


def test_validate_ok(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("ORIGIN_TOKEN", "t")
    result = runner.invoke(app, ["validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{EXAMPLE}: OK (1 service, 2 locations)\n"


def test_validate_reports_every_problem_on_stderr(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("cdn.yaml").write_text(BROKEN)
    result = runner.invoke(app, ["validate"])  # defaults to ./cdn.yaml
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "cdn.yaml:5:15: services[0].origins[0].url: expected an http:// or https:// URL, got 'ftp://x'",
        "cdn.yaml:6:13: services[0].cache.ttl: unknown field 'ttl' (expected one of: enabled, default_ttl, min_ttl,"
        " max_ttl, stale_while_revalidate, stale_if_error, max_object_size, honor_client_no_cache, query_string,"
        " cookies); did you mean 'min_ttl'?",
        "cdn.yaml: 2 problems",
    ]


def test_validate_missing_secret_exits_1_without_traceback(runner, monkeypatch):
    monkeypatch.delenv("ORIGIN_TOKEN", raising=False)
    result = runner.invoke(app, ["validate", str(EXAMPLE)])
    assert result.exit_code == 1
    assert "ORIGIN_TOKEN" in result.stderr and "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("content", [None, "version: [\n", "\xff"])
def test_validate_bad_files_exit_1(runner, tmp_path, content):
    path = tmp_path / "cdn.yaml"
    if content is not None:
        path.write_bytes(content.encode("latin-1"))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:")
    assert isinstance(result.exception, SystemExit)


def test_schema_is_json_with_services(runner):
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "services" in schema["properties"]
    assert schema["$schema"].startswith("https://json-schema.org/")


def test_version(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("owncdn ")


def test_no_arguments_shows_help(runner):
    result = runner.invoke(app, [])
    assert "validate" in result.output and "schema" in result.output


def test_every_command_says_what_it_does_in_one_line():
    """`owncdn --help` lists each command with its help's first paragraph, keeping its line
    breaks (Typer's rich mode): one written over two lines showed broken mid-sentence."""
    import inspect

    import typer

    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            yield path + [name], inspect.cleandoc(sub.help or "").split("\n\n")[0]
            yield from walk(sub, path + [name])

    summaries = list(walk(typer.main.get_command(app), []))
    assert len(summaries) > 30
    assert [(path, first) for path, first in summaries if not first or "\n" in first] == []
