"""Scenario files: what they mean, and problems at their file lines.

Rows of (YAML text, expected line, field, fragment of the message); ``S`` is a
valid one-scenario file to build on.
"""

import pytest

from owncdn.core.config import ConfigError
from owncdn.core.scenario import ScenarioSuite, parse_scenarios

S = """\
scenarios:
  - name: html is cached
    origin:
      /index.html: {headers: {Cache-Control: max-age=60}, body: hi}
    steps:
      - request: {path: /index.html}
        expect: {status: 200, x-cache: MISS}
"""


def problems(text, services=None):
    with pytest.raises(ConfigError) as info:
        parse_scenarios(text, "s.yaml", services)
    return info.value.problems


def test_a_full_scenario():
    text = """\
scenarios:
  - name: one
    service: blog
    origin:
      /a: {status: 201, headers: {ETag: '"v1"', X-N: 5}, body: "${not a reference}"}
      /api/*: [{status: 200}, {status: 503}]
    steps:
      - request: {method: post, path: "/a?x=1", host: blog.test, headers: {Accept: "*/*"}, body: data}
        expect:
          x-cache: PASS
          headers: {age: 0, server: null}
          body_contains: ok
          origin_requests: 1
          origin_headers: {x-auth: secret}
      - advance: 1m30s
      - request: {path: /a}
"""
    suite = parse_scenarios(text, "s.yaml", ["blog", "shop"])
    assert isinstance(suite, ScenarioSuite) and suite.filename == "s.yaml"
    (scenario,) = suite.scenarios
    assert scenario.origin["/a"][0].headers == {"ETag": '"v1"', "X-N": "5"}
    assert scenario.origin["/a"][0].body == "${not a reference}"
    assert [r.status for r in scenario.origin["/api/*"]] == [200, 503]
    first, advance, last = scenario.steps
    assert (first.request.method, first.request.path, first.request.host, first.request.body) == ("POST", "/a?x=1", "blog.test", "data")
    assert first.expect.x_cache == "PASS" and first.expect.headers == {"age": "0", "server": None}
    assert (advance.advance, advance.request, last.expect) == (90.0, None, None)
    assert suite.line(0) == 2 and [suite.line(0, i) for i in range(3)] == [8, 15, 16]


def test_service_may_be_left_out_with_one_service():
    assert parse_scenarios(S, "s.yaml", ["blog"]).scenarios[0].service is None
    assert parse_scenarios(S, "s.yaml").scenarios[0].name == "html is cached"


ROWS = [
    ("", 1, "", "the file is empty"),
    ("scenarios: [\n", 2, "", "YAML syntax error"),
    ("scenarios: []\n", 1, "scenarios", "must not be empty"),
    ("scenario: []\n", 1, "scenario", "did you mean 'scenarios'?"),
    ("scenarios:\n  - name: a\n", 2, "scenarios[0].steps", "required field is missing"),
    ("scenarios:\n  - name: ''\n    steps: [{advance: 1}]\n", 2, "scenarios[0].name", "at least 1"),
    (S + S.removeprefix("scenarios:\n"), 8, "scenarios[1].name", "scenario name 'html is cached' is used twice"),
    # origin
    (S.replace("/index.html: {", "index.html: {"), 4, "scenarios[0].origin['index.html']", "starts with '/'"),
    (S.replace("{headers:", "{status: 99, headers:"), 4, "scenarios[0].origin['/index.html'].status", "at least 100, got 99"),
    (S.replace("body: hi}", "bodi: hi}"), 4, "scenarios[0].origin['/index.html'].bodi", "did you mean 'body'?"),
    (S.replace("{headers: {Cache-Control: max-age=60}, body: hi}", "[]"), 4, "scenarios[0].origin['/index.html']", "must not be empty"),
    (S.replace("{headers: {Cache-Control: max-age=60}, body: hi}", "[{}, {status: x}]"), 4, "scenarios[0].origin['/index.html'][1].status", "expected a whole number"),
    (S.replace("{Cache-Control: max-age=60}", "{'Bad Name': x}"), 4, "scenarios[0].origin['/index.html'].headers", "not a valid header name"),
    # steps
    (S.replace("{path: /index.html}", "{path: index.html}"), 6, "scenarios[0].steps[0].request.path", "starting with '/'"),
    (S.replace("{path: /index.html}", "{method: 'GE T', path: /}"), 6, "scenarios[0].steps[0].request.method", "like GET or POST"),
    (S.replace("{path: /index.html}", "{url: /}"), 6, "scenarios[0].steps[0].request.url", "unknown field 'url'"),
    (S.replace("x-cache: MISS", "x-cache: miss"), 7, "scenarios[0].steps[0].expect.x-cache", "expected 'HIT', 'MISS', 'STALE', 'REVALIDATED' or 'PASS', got 'miss'"),
    (S.replace("x-cache: MISS", "xcache: MISS"), 7, "scenarios[0].steps[0].expect.xcache", "did you mean 'x-cache'?"),
    (S.replace("status: 200", "status: ok"), 7, "scenarios[0].steps[0].expect.status", "expected a whole number"),
    (S.replace("status: 200", "origin_requests: -1"), 7, "scenarios[0].steps[0].expect.origin_requests", "at least 0"),
    (S + "      - advance: soon\n", 8, "scenarios[0].steps[1].advance", "expected a duration"),
    (S + "      - {advance: 1, request: {path: /}}\n", 8, "scenarios[0].steps[1]", "either 'request' (and 'expect') or 'advance'"),
    (S + "      - expect: {status: 200}\n", 8, "scenarios[0].steps[1]", "either 'request'"),
    (S + "      - {}\n", 8, "scenarios[0].steps[1]", "either 'request'"),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"), ROWS)
def test_problem(text, line, field, fragment):
    found = problems(text)
    assert any(p.line == line and p.field == field and fragment in p.message for p in found), found


@pytest.mark.parametrize(("text", "services", "line", "field", "fragment"), [
    (S.replace("  - name: html is cached\n", "  - name: x\n    service: blgo\n"), ["blog", "shop"], 3, "scenarios[0].service",
     "no service 'blgo' in the config (services: blog, shop)"),
    (S, ["blog", "shop"], 2, "scenarios[0]", "name the service to test with 'service:'; the config has 2 (services: blog, shop)"),
    (S, [], 2, "scenarios[0]", "the config has 0 (services: none)"),
])
def test_service_problems(text, services, line, field, fragment):
    found = problems(text, services)
    assert any(p.line == line and p.field == field and fragment in p.message for p in found), found


def test_problems_render_like_config_problems():
    (problem,) = problems(S.replace("x-cache: MISS", "x-cache: miss"))
    assert str(problem).startswith("s.yaml:7:40: scenarios[0].steps[0].expect.x-cache: expected 'HIT'")
