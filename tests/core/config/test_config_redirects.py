"""Redirect services (download mirrors) in cdn.yaml: what they need, and the hostnames
they add. Problem rows: (YAML, expected line, field, message fragment)."""

from pathlib import Path

import pytest

from owncdn.configfile import load_config
from owncdn.core.config import ConfigError, parse_config

EXAMPLE = Path(__file__).parents[3] / "examples" / "mirror.yaml"

BASE = """\
version: 1
locations:
  - {name: fra, lat: 50.11, lon: 8.68, hostname: fra.mirror.test}
  - {name: iad, lat: 38.95, lon: -77.45, hostname: iad.mirror.test}
services:
  - name: mirror
    mode: redirect
    hostnames: [mirror.test]
    origins: ["http://origin.test"]
"""


def parse(text):
    return parse_config(text, "cdn.yaml", lambda kind, name: None)


def problems(text):
    with pytest.raises(ConfigError) as info:
        parse(text)
    return [(p.line, p.field, p.message) for p in info.value.problems]


ROWS = [
    (BASE.replace(", hostname: iad.mirror.test", ""), 4, "locations[1].hostname",
     "location 'iad' needs a hostname: redirect service 'mirror' sends visitors to it (e.g. iad.mirror.test)"),
    (BASE.replace("iad.mirror.test", "fra.mirror.test"), 4, "locations[1].hostname",
     "hostname 'fra.mirror.test' already belongs to location 'fra'"),
    (BASE.replace("iad.mirror.test", "mirror.test"), 4, "locations[1].hostname",
     "hostname 'mirror.test' already belongs to service 'mirror'"),
    (BASE.replace("fra.mirror.test", "FRA..test"), 3, "locations[0].hostname", "is not a valid hostname"),
    (BASE + "    redirect: {locations: [fra, ams]}\n", 10, "services[0].redirect.locations[1]",
     "no location is called 'ams'"),
    (BASE + "    redirect: {locations: [fra, fra]}\n", 10, "services[0].redirect.locations[1]",
     "location 'fra' is listed twice"),
    (BASE + "    redirect: {fallback: ams}\n", 10, "services[0].redirect.fallback", "no location is called 'ams'"),
    (BASE + "    redirect: {locations: [fra], fallback: iad}\n", 10, "services[0].redirect.fallback",
     "location 'iad' is not one of redirect.locations"),
    (BASE + "    redirect: {status: 200}\n", 10, "services[0].redirect.status", "302"),
    (BASE + "    redirect: {mirror_list: mirrors}\n", 10, "services[0].redirect.mirror_list", "pattern"),
    (BASE.replace("locations:\n  - {name: fra", "locations: []\nx-old:\n  - {name: fra"), 7,
     "services[0].redirect.locations", "a redirect service needs at least one location"),
    (BASE.replace("    origins: [\"http://origin.test\"]\n", ""), 6, "services[0].origins",
     "a redirect service needs at least one origin"),
    (BASE + """\
  - name: other
    mode: redirect
    hostnames: [other.test]
    origins: ["http://origin.test"]
    redirect: {locations: [iad]}
""", 4, "locations[1].hostname", "the hostname of location 'iad' already serves redirect service 'mirror'"),
]


@pytest.mark.parametrize("text, line, field, fragment", ROWS)
def test_problem(text, line, field, fragment):
    found = problems(text)
    assert any(ln == line and f == field and fragment in m for ln, f, m in found), found


def test_location_hostnames_route_to_the_redirect_service():
    config = parse(BASE)
    assert config.service_for_host("fra.mirror.test:8080").name == "mirror"
    assert config.service_for_host("iad.mirror.test").name == "mirror"
    assert config.service_for_host("ams.mirror.test") is None


def test_a_location_hostname_without_a_redirect_service_routes_nowhere():
    config = parse(BASE.replace("mode: redirect", "mode: pull"))
    assert config.service_for_host("fra.mirror.test") is None
    assert config.service_for_host("mirror.test").name == "mirror"


def test_only_the_used_locations_need_hostnames():
    config = parse(BASE.replace(", hostname: iad.mirror.test", "") + "    redirect: {locations: [fra]}\n")
    assert config.service_for_host("fra.mirror.test").name == "mirror"


def test_defaults():
    settings = parse(BASE).services[0].redirect
    assert (settings.status, settings.scheme, settings.max_age, settings.mirror_list, settings.fallback) == (
        302, "request", 60.0, "/.mirrors", None)


def test_the_example_is_valid():
    config = load_config(EXAMPLE)
    svc = config.service("downloads")
    assert svc.mode == "redirect"
    assert {loc.hostname for loc in config.locations} == {
        "fra.downloads.example.com", "iad.downloads.example.com", "sin.downloads.example.com"}
    assert config.service_for_host("sin.downloads.example.com") is svc
