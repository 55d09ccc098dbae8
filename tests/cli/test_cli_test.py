"""``owncdn test`` (scenario files against the edge) and ``owncdn validate --env``,
through Typer's runner. Every edge and origin runs in this process on loopback."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from owncdn.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CONFIG = """\
version: 1
edge: {id: edge-t, location: test, access_log: "-"}
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: [https://origin.example.com/app]
    cache: {stale_while_revalidate: 0s}
environments:
  staging:
    services:
      - {name: blog, cache: {default_ttl: 1m}}
"""

PASSING = """\
scenarios:
  - name: cached for a minute
    origin:
      /app/index.html: {headers: {Cache-Control: max-age=60, ETag: '"v1"'}, body: "<h1>hi</h1>"}
    steps:
      - request: {path: /index.html}
        expect: {status: 200, x-cache: MISS, body: "<h1>hi</h1>", origin_requests: 1}
      - request: {path: /index.html}
        expect: {x-cache: HIT, headers: {age: "0"}}
      - advance: 61
      - request: {path: /index.html}
        expect: {x-cache: REVALIDATED, origin_requests: 2}
  - name: other paths are 404 from the origin
    steps:
      - request: {path: /nope}
        expect: {status: 404}
"""

FAILING = """\
scenarios:
  - name: passes
    origin:
      /app/a: {headers: {Cache-Control: max-age=60}, body: a}
    steps:
      - request: {path: /a}
        expect: {x-cache: MISS}
  - name: expects a hit too early
    origin:
      /app/a: {headers: {Cache-Control: max-age=60}, body: a}
    steps:
      - request: {path: /a}
      - advance: 61
      - request: {path: /a}
        expect: {x-cache: HIT}
"""


@pytest.fixture
def runner():
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


@pytest.fixture
def site(tmp_path):
    (tmp_path / "cdn.yaml").write_text(CONFIG)
    return tmp_path


def test_example_scenarios_pass(runner, monkeypatch):
    monkeypatch.setenv("ORIGIN_TOKEN", "t0k3n")
    result = runner.invoke(app, ["test", str(EXAMPLES / "pull-site.yaml")])  # finds examples/cdn.scenarios.yaml
    assert result.exit_code == 0, result.output + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == f"{len(lines) - 1} passed, 0 failed"
    assert len(lines) > 5 and all(line.startswith("PASS  ") for line in lines[:-1])


def test_default_scenario_file_next_to_the_config(runner, site):
    (site / "cdn.scenarios.yaml").write_text(PASSING)
    result = runner.invoke(app, ["test", str(site / "cdn.yaml")])
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.splitlines() == [
        "PASS  cached for a minute",
        "PASS  other paths are 404 from the origin",
        "2 passed, 0 failed",
    ]


def test_a_failing_scenario_names_the_step_and_exits_1(runner, site):
    (site / "edge.scenarios.yaml").write_text(FAILING)
    scenarios = site / "edge.scenarios.yaml"
    result = runner.invoke(app, ["test", str(site / "cdn.yaml"), "--scenarios", str(scenarios)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "PASS  passes",
        f"FAIL  expects a hit too early: step 3: expected X-Cache HIT, got MISS ({scenarios}:14)",
        "1 passed, 1 failed",
    ]


def test_env_applies_the_overlay(runner, site):
    scenarios = site / "ttl.yaml"
    scenarios.write_text("""\
scenarios:
  - name: default_ttl of staging
    origin: {/app/x: {body: x}}
    steps:
      - request: {path: /x}
      - request: {path: /x}
        expect: {x-cache: HIT}
""")
    base = runner.invoke(app, ["test", str(site / "cdn.yaml"), "-s", str(scenarios)])
    staging = runner.invoke(app, ["test", str(site / "cdn.yaml"), "-s", str(scenarios), "--env", "staging"])
    assert (base.exit_code, staging.exit_code) == (1, 0)
    assert "step 2: expected X-Cache HIT, got" in base.stdout


def test_several_scenario_files_are_named(runner, site):
    (site / "a.yaml").write_text(PASSING)
    (site / "b.yaml").write_text(FAILING)
    result = runner.invoke(app, ["test", str(site / "cdn.yaml"), "-s", str(site / "a.yaml"), "-s", str(site / "b.yaml")])
    assert result.exit_code == 1
    assert f"PASS  {site / 'a.yaml'}: cached for a minute" in result.stdout
    assert result.stdout.splitlines()[-1] == "3 passed, 1 failed"


@pytest.mark.parametrize(("content", "expected"), [
    ("scenarios:\n  - name: x\n    steps:\n      - request: {path: /}\n        expect: {x-cache: hit}\n",
     ":5:27: scenarios[0].steps[0].expect.x-cache: expected 'HIT', 'MISS', 'STALE', 'REVALIDATED' or 'PASS', got 'hit'"),
    ("scenarios:\n  - name: x\n    service: shop\n    steps: [{advance: 1}]\n",
     ":3:14: scenarios[0].service: no service 'shop' in the config (services: blog)"),
    ("scenarios: [\n", ":2:1: YAML syntax error"),
    (None, ":1:1: file not found"),
])
def test_a_malformed_scenario_file_exits_1_with_file_and_line(runner, site, content, expected):
    path = site / "cdn.scenarios.yaml"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["test", str(site / "cdn.yaml")])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{path}{expected}")
    assert isinstance(result.exception, SystemExit)


def test_a_config_problem_exits_1_before_running(runner, site):
    (site / "cdn.yaml").write_text(CONFIG.replace("https://origin.example.com/app", "ftp://x"))
    (site / "cdn.scenarios.yaml").write_text(PASSING)
    result = runner.invoke(app, ["test", str(site / "cdn.yaml")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{site / 'cdn.yaml'}:6:15: services[0].origins[0].url: expected an http://")
    unknown = runner.invoke(app, ["test", str(site / "cdn.yaml"), "--env", "prod"])
    assert unknown.exit_code == 1 and "unknown environment 'prod' (known: staging)" in unknown.stderr


# -- owncdn validate with environments (the command lives in config_cmds) -----------

def test_validate_checks_the_base_and_every_environment(runner, site):
    text = CONFIG + "  production:\n    edge: {memory_cache: lots}\n"
    (site / "cdn.yaml").write_text(text)
    path = site / "cdn.yaml"
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{path}: OK (1 service, 0 locations)", f"{path} [staging]: OK (1 service, 0 locations)"]
    assert result.stderr.splitlines() == [
        f"{path}:13:26: edge.memory_cache: expected a size like 512, 64KiB, 256MiB, 1GiB or 10kB, got 'lots'",
        f"{path} [production]: 1 problem",
    ]


def test_validate_one_environment(runner, site):
    path = site / "cdn.yaml"
    result = runner.invoke(app, ["validate", str(path), "--env", "staging"])
    assert result.exit_code == 0
    assert result.stdout == f"{path} [staging]: OK (1 service, 0 locations)\n"
    unknown = runner.invoke(app, ["validate", str(path), "--env", "qa"])
    assert unknown.exit_code == 1
    assert unknown.stderr.splitlines() == [
        f"{path}:8:1: environments: unknown environment 'qa' (known: staging)",
        f"{path} [qa]: 1 problem",
    ]


def test_validate_prints_a_base_problem_once(runner, site):
    path = site / "cdn.yaml"
    path.write_text(CONFIG.replace("https://origin.example.com/app", "ftp://x"))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:6:15: services[0].origins[0].url: expected an http:// or https:// URL, got 'ftp://x'",
        f"{path}: 1 problem",
        f"{path} [staging]: 1 problem (1 shown above)",
    ]
