"""Config problems name the line, the field and what was expected.

Each row: (YAML text, expected line, expected field, fragment of the message).
The text is complete; ``S`` is a valid minimal service to build on.
"""

import textwrap

import pytest

from owncdn.core.config import ConfigError, Problem, parse_config

S = """\
version: 1
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: [https://origin.example.com]
"""

ENV = {"TOKEN": "s3cr3t-value", "MULTI": "a\r\nInjected: 1"}


def resolve(kind, name):
    return ENV.get(name) if kind == "env" else {"token.txt": "from-file\n"}.get(name)


def problems(text):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cdn.yaml", resolve)
    return info.value.problems


ROWS = [
    # YAML itself
    ("", 1, "", "the file is empty"),
    ("version: 1\nservices: [\n", 3, "", "YAML syntax error"),
    ("version: 1\nversion: 1\n", 2, "version", "duplicate key 'version' (first on line 1)"),
    ("- version: 1\n", 1, "", "expected a mapping, got a list"),
    # top level
    ("services: []\n", 1, "version", "required field is missing"),
    ("version: 2\n", 1, "version", "expected 1, got 2"),
    ("version: 1\nservice: []\n", 2, "service", "unknown field 'service' (expected one of: version, edge, locations, dns, services, acme); did you mean 'services'?"),
    # edge
    ("version: 1\nedge:\n  memory_cache: lots\n", 3, "edge.memory_cache", "expected a size like"),
    ("version: 1\nedge:\n  header_timeout: -1s\n", 3, "edge.header_timeout", "must not be negative, got '-1s'"),
    ("version: 1\nedge:\n  keepalive_timeout: 0\n", 3, "edge.keepalive_timeout", "must be greater than 0"),
    ("version: 1\nedge:\n  trusted_proxies: [10.0.0.1/8]\n", 3, "edge.trusted_proxies[0]", "did you mean '10.0.0.0/8'?"),
    ("version: 1\nedge:\n  trusted_proxies: [nope]\n", 3, "edge.trusted_proxies[0]", "expected an IP network"),
    ("version: 1\nedge:\n  max_request_line: 10\n", 3, "edge.max_request_line", "must be at least 256, got 10"),
    ("version: 1\nedge:\n  id: null\n", 3, "edge.id", "expected a string, got nothing (null)"),
    # locations
    ("version: 1\nlocations:\n  - name: FRA\n", 3, "locations[0].name", "expected a lowercase name"),
    ("version: 1\nlocations:\n  - name: fra\n    lat: 91\n    lon: 0\n", 4, "locations[0].lat", "must be at most 90, got 91"),
    ("version: 1\nlocations:\n  - name: fra\n    lon: 8\n", 3, "locations[0].lat", "set both lat and lon"),
    ("version: 1\nlocations:\n  - name: fra\n    country: Germany\n", 4, "locations[0].country", "two-letter ISO country code"),
    ("version: 1\nlocations:\n  - name: fra\n  - name: fra\n", 4, "locations[1].name", "location name 'fra' is used twice"),
    ("version: 1\nlocations:\n  - city: Paris\n", 3, "locations[0].name", "required field is missing"),
    # services
    (S.replace("name: blog", "name: Blog"), 3, "services[0].name", "got 'Blog'"),
    (S.replace("[blog.example.com]", "[]"), 4, "services[0].hostnames", "must not be empty"),
    (S.replace("[blog.example.com]", "[blog..example.com]"), 4, "services[0].hostnames[0]", "not a valid hostname"),
    (S.replace("[blog.example.com]", "['a.*.example.com']"), 4, "services[0].hostnames[0]", "single leading '*.'"),
    (S.replace("[blog.example.com]", "[a.com, A.com]"), 4, "services[0].hostnames[1]", "listed twice"),
    (S.replace("[https://origin.example.com]", "[ftp://x]"), 5, "services[0].origins[0].url", "expected an http:// or https:// URL, got 'ftp://x'"),
    (S.replace("[https://origin.example.com]", "[{url: 'http://o/?a=1'}]"), 5, "services[0].origins[0].url", "no query or fragment"),
    (S.replace("[https://origin.example.com]", "[https://u:p@o]"), 5, "services[0].origins[0].url", "credentials"),
    (S.replace("[https://origin.example.com]", "[{url: http://o, tls: false}]"), 5, "services[0].origins[0].tls", "did you mean 'tls_verify'?"),
    (S.replace("[https://origin.example.com]", "[]"), 5, "services[0].origins", "needs at least one origin"),
    (S + "    origin_host: visitor\n", 6, "services[0].origin_host", "expected 'origin' or 'client', got 'visitor'"),
    (S + "    retries: 9\n", 6, "services[0].retries", "must be at most 5, got 9"),
    (S + "    retries: many\n", 6, "services[0].retries", "expected a whole number, got 'many'"),
    (S + "    timeouts: {connect: 0s}\n", 6, "services[0].timeouts.connect", "must be greater than 0"),
    (S + "    cache:\n      ttl: 5m\n", 7, "services[0].cache.ttl", "unknown field 'ttl' (expected one of: enabled, default_ttl, min_ttl"),
    (S + "    cache:\n      min_ttl: 1h\n      max_ttl: 1m\n", 7, "services[0].cache.min_ttl", "must not exceed max_ttl"),
    (S + "    cache:\n      enabled: maybe\n", 7, "services[0].cache.enabled", "expected true or false"),
    (S + "    cache:\n      query_string: {mode: shuffle}\n", 7, "services[0].cache.query_string.mode", "expected 'keep', 'sort' or 'ignore'"),
    (S + "    cache:\n      query_string: {mode: ignore, include: [a]}\n", 7, "services[0].cache.query_string.include", "no effect"),
    (S + "  - name: blog\n    hostnames: [other.example.com]\n    origins: [http://o]\n", 6, "services[1].name", "service name 'blog' is used twice"),
    (S + "  - name: shop\n    hostnames: [BLOG.example.com.]\n    origins: [http://o]\n", 7, "services[1].hostnames[0]", "already belongs to service 'blog'"),
    # headers
    (S + "    headers:\n      request:\n        set: {'Bad Name': x}\n", 8, "services[0].headers.request.set['Bad Name']", "not a valid header name"),
    (S + "    headers:\n      request:\n        set: {Host: x}\n", 8, "services[0].headers.request.set.Host", "origin_host"),
    (S + "    headers:\n      response:\n        set: {Content-Length: 3}\n", 8, "services[0].headers.response.set.Content-Length", "managed by the edge"),
    (S + "    headers:\n      response:\n        set: {X-A: 1, x-a: 2}\n", 8, "services[0].headers.response.set.x-a", "set twice"),
    (S + "    headers:\n      response:\n        remove: ['a b']\n", 8, "services[0].headers.response.remove[0]", "not a valid header name"),
    (S + "    headers:\n      response:\n        set: {X-A: \"a\\nb\"}\n", 8, "services[0].headers.response.set.X-A", "CR, LF or NUL"),
    # secret references
    (S + "    headers:\n      request:\n        set: {X-A: '${env:NOPE}'}\n", 8, "services[0].headers.request.set.X-A", "cannot resolve '${env:NOPE}': environment variable is not set"),
    (S + "    headers:\n      request:\n        set: {X-A: '${file:missing.txt}'}\n", 8, "services[0].headers.request.set.X-A", "cannot resolve '${file:missing.txt}'"),
    (S + "    headers:\n      request:\n        set: {X-A: '${vault:x}'}\n", 8, "services[0].headers.request.set.X-A", "unknown reference '${vault:x}'"),
    (S + "    headers:\n      request:\n        set: {X-A: 'a ${env:TOKEN'}\n", 8, "services[0].headers.request.set.X-A", "unclosed '${'"),
    (S + "    headers:\n      request:\n        set: {X-A: '${env:MULTI}'}\n", 8, "services[0].headers.request.set.X-A", "CR, LF or NUL"),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"), ROWS)
def test_problem(text, line, field, fragment):
    found = problems(text)
    assert any(p.line == line and p.field == field and fragment in p.message for p in found), found


def test_every_problem_is_reported_in_file_order():
    text = textwrap.dedent("""\
        version: 1
        edge: {memory_cache: lots}
        locations: [{name: fra}, {name: fra}]
        services:
          - name: blog
            hostnames: [a.example.com]
            origins: [ftp://x]
            cache: {ttl: 1}
          - name: shop
            hostnames: [A.example.com]
            origins: [http://o]
        """)
    found = problems(text)
    assert [(p.line, p.field) for p in found] == [
        (2, "edge.memory_cache"),
        (3, "locations[1].name"),
        (7, "services[0].origins[0].url"),
        (8, "services[0].cache.ttl"),
        (10, "services[1].hostnames[0]"),
    ]


def test_problem_renders_file_line_column_field_message():
    found = problems(S.replace("[https://origin.example.com]", "\n      - url: ftp://x"))
    assert str(found[0]) == "cdn.yaml:6:14: services[0].origins[0].url: expected an http:// or https:// URL, got 'ftp://x'"
    assert str(Problem("cdn.yaml", 1, 1, "", "the file is empty")) == "cdn.yaml:1:1: the file is empty"


def test_unknown_field_points_at_the_key_and_missing_field_at_the_parent():
    found = problems("version: 1\nedge:\n  memroy_cache: 1\nlocations:\n  - city: x\n")
    by_field = {p.field: (p.line, p.column) for p in found}
    assert by_field["edge.memroy_cache"] == (3, 3)
    assert by_field["locations[0].name"] == (5, 5)


def test_messages_never_contain_resolved_secrets():
    text = S + "    headers:\n      request:\n        set: {X-A: '${env:TOKEN}', X-B: '${env:MULTI}', 'Bad Name': '${env:TOKEN}'}\n    retries: '${env:TOKEN}'\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cdn.yaml", resolve)
    assert "s3cr3t" not in str(info.value)
    assert "Injected" not in str(info.value)
    assert "'${env:TOKEN}'" in str(info.value)  # "got" quotes the file's text


def test_yes_no_on_off_stay_strings():
    config = parse_config("version: 1\nedge: {access_log: off}\nlocations: [{name: osl, country: NO}]\n", "c", resolve)
    assert config.edge.access_log == "off"
    assert config.locations[0].country == "NO"
