"""Environments: overlays deep-merged over the base, problems at the right lines.

Rows of (overlay YAML under ``environments.staging``, what to read from the
merged config, expected value); problem rows name the line in the one file.
"""

import textwrap

import pytest

from owncdn.core.config import ConfigError, environment_names, parse_config

BASE = """\
version: 1
edge: {id: edge-1, memory_cache: 256MiB, trusted_proxies: [10.0.0.0/8]}
locations:
  - {name: fra, city: Frankfurt}
  - {name: iad, city: Ashburn}
services:
  - name: blog
    hostnames: [blog.example.com]
    origins: [https://origin.example.com]
    cache: {default_ttl: 10m, query_string: {mode: sort, exclude: [utm_source]}}
  - name: shop
    hostnames: [shop.example.com]
    origins: [https://shop-origin.example.com]
"""  # 13 lines; "environments:" is line 14, "staging:" 15, the overlay starts on line 16


def with_overlay(overlay: str, name: str = "staging") -> str:
    return BASE + f"environments:\n  {name}:\n" + textwrap.indent(textwrap.dedent(overlay), "    ")


def resolve(kind, name):
    return {"TOKEN": "t0k3n"}.get(name) if kind == "env" else None


def staging(overlay: str):
    return parse_config(with_overlay(overlay), "cdn.yaml", resolve, env="staging")


def problems(text: str, env: str | None = "staging"):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cdn.yaml", resolve, env=env)
    return info.value.problems


MERGES = [
    # mappings merge key by key
    ("edge: {memory_cache: 64MiB}\n", lambda c: (c.edge.id, c.edge.memory_cache), ("edge-1", 64 * 2**20)),
    ("services:\n  - {name: blog, cache: {max_ttl: 1h}}\n",
     lambda c: (c.service("blog").cache.default_ttl, c.service("blog").cache.max_ttl), (600.0, 3600.0)),
    ("services:\n  - {name: blog, cache: {query_string: {mode: keep}}}\n",
     lambda c: (c.service("blog").cache.query_string.mode, c.service("blog").cache.query_string.exclude), ("keep", ["utm_source"])),
    # other lists replace
    ("services:\n  - {name: blog, hostnames: [blog.staging.example.com]}\n",
     lambda c: c.service("blog").hostnames, ["blog.staging.example.com"]),
    ("edge: {trusted_proxies: []}\n", lambda c: c.edge.trusted_proxies, []),
    ("services:\n  - {name: shop, origins: [http://a, http://b]}\n",
     lambda c: [o.url for o in c.service("shop").origins], ["http://a", "http://b"]),
    # named lists: new names are appended, remove: true removes, order is kept
    ("services:\n  - {name: api, hostnames: [api.example.com], origins: [http://api]}\n",
     lambda c: [s.name for s in c.services], ["blog", "shop", "api"]),
    ("services:\n  - {name: blog, remove: true}\n", lambda c: [s.name for s in c.services], ["shop"]),
    ("services:\n  - {name: blog, remove: false, retries: 3}\n", lambda c: c.service("blog").retries, 3),
    ("locations:\n  - {name: fra, remove: true}\n  - {name: ams, city: Amsterdam}\n",
     lambda c: [loc.name for loc in c.locations], ["iad", "ams"]),
    ("locations:\n  - {name: iad, city: Washington}\n", lambda c: [loc.city for loc in c.locations], ["Frankfurt", "Washington"]),
    # an empty overlay is the base; secrets resolve in the overlay
    ("{}\n", lambda c: [s.name for s in c.services], ["blog", "shop"]),
    ("services:\n  - {name: blog, headers: {request: {set: {X-Auth: '${env:TOKEN}'}}}}\n",
     lambda c: repr(c.service("blog").headers.request.set["X-Auth"]), "Secret('${env:TOKEN}')"),
    # x- keys hold anchors inside an overlay too
    ("x-short: &short {max_ttl: 1m}\nservices:\n  - {name: shop, cache: *short}\n",
     lambda c: c.service("shop").cache.max_ttl, 60.0),
]


@pytest.mark.parametrize(("overlay", "read", "expected"), MERGES)
def test_overlay_merges(overlay, read, expected):
    assert read(staging(overlay)) == expected


def test_without_env_the_overlays_are_ignored():
    config = parse_config(with_overlay("services:\n  - {name: blog, remove: true}\n"), "cdn.yaml", resolve)
    assert [s.name for s in config.services] == ["blog", "shop"]


def test_null_overlay_and_several_environments():
    text = BASE + "environments:\n  staging:\n  production:\n    edge: {id: prod-1}\n"
    assert environment_names(text) == ["staging", "production"]
    assert parse_config(text, "c", resolve, env="staging").edge.id == "edge-1"
    assert parse_config(text, "c", resolve, env="production").edge.id == "prod-1"


def test_secrets_of_other_environments_are_not_resolved():
    text = BASE + "environments:\n  staging: {}\n  production:\n    services:\n      - {name: blog, headers: {request: {set: {X-A: '${env:PROD_ONLY}'}}}}\n"
    assert parse_config(text, "c", resolve, env="staging").service("blog").headers.request.set == {}
    assert parse_config(text, "c", resolve).service("blog").headers.request.set == {}
    found = problems(text, "production")
    assert [(p.line, p.field) for p in found] == [(18, "services[0].headers.request.set.X-A")]
    assert "PROD_ONLY" in found[0].message


@pytest.mark.parametrize(("text", "names"), [
    (BASE, []),
    (with_overlay("{}\n"), ["staging"]),
    (BASE + "environments: {qa: {}, staging: {}, production: {}}\n", ["qa", "staging", "production"]),
    (BASE + "environments: [staging]\n", []),
    ("version: [\n", []),
    ("", []),
])
def test_environment_names(text, names):
    assert environment_names(text) == names


PROBLEMS = [
    # (text, env, line, field, fragment)
    # values from the overlay are reported at the overlay's line ...
    (with_overlay("services:\n  - {name: blog, cache: {default_ttl: soon}}\n"), "staging", 17, "services[0].cache.default_ttl", "expected a duration"),
    (with_overlay("edge:\n  memory_cache: lots\n"), "staging", 17, "edge.memory_cache", "expected a size"),
    (with_overlay("services:\n  - name: api\n    hostnames: [api.example.com]\n    origins: [ftp://x]\n"), "staging", 19, "services[2].origins[0].url", "got 'ftp://x'"),
    (with_overlay("services:\n  - {name: api, hostnames: [blog.example.com], origins: [http://o]}\n"), "staging", 17, "services[2].hostnames[0]", "already belongs to service 'blog'"),
    (with_overlay("services:\n  - {name: api, origins: [http://o]}\n"), "staging", 17, "services[2].hostnames", "required field is missing"),
    (with_overlay("services:\n  - {name: blog, cahce: {}}\n"), "staging", 17, "services[0].cahce", "did you mean 'cache'?"),
    # ... and values from the base at the base's line
    (with_overlay("edge: {id: e2}\n").replace("default_ttl: 10m", "default_ttl: never"), "staging", 10, "services[0].cache.default_ttl", "expected a duration"),
    (with_overlay("services:\n  - {name: shop, remove: true}\n").replace("[https://origin.example.com]", "[ftp://y]"), "staging", 9, "services[0].origins[0].url", "got 'ftp://y'"),
    # unknown environment
    (with_overlay("{}\n"), "prod", 14, "environments", "unknown environment 'prod' (known: staging)"),
    # the shape of overlays, checked with or without env
    (BASE + "environments: [staging]\n", None, 14, "environments", "expected a mapping of environment names"),
    (with_overlay("{}\n", name="Staging"), None, 15, "environments.Staging", "lowercase letters"),
    (BASE + "environments:\n  staging: 3\n", None, 15, "environments.staging", "expected a mapping (a partial config"),
    (with_overlay("service: []\n"), None, 16, "environments.staging.service", "did you mean 'services'?"),
    (with_overlay("version: 2\n"), None, 16, "environments.staging.version", "cannot change the version"),
    (with_overlay("environments: {}\n"), None, 16, "environments.staging.environments", "cannot be nested"),
    (with_overlay("services: {blog: {}}\n"), None, 16, "environments.staging.services", "expected a list of services"),
    (with_overlay("services:\n  - {hostnames: [a.example.com]}\n"), None, 17, "environments.staging.services[0]", "each item needs a 'name'"),
    (with_overlay("services:\n  - {name: blog, remove: yes}\n"), None, 17, "environments.staging.services[0].remove", "expected true or false"),
    (with_overlay("services:\n  - {name: blog, remove: true, retries: 2}\n"), None, 17, "environments.staging.services[0]", "takes only its name; found also: retries"),
    (with_overlay("services:\n  - {name: blog}\n  - {name: blog}\n"), None, 18, "environments.staging.services[1].name", "appears twice"),
    (with_overlay("services:\n  - {name: nope, remove: true}\n"), None, 17, "", "cannot remove service 'nope'"),
    (with_overlay("locations:\n  - {name: nope, remove: true}\n"), "staging", 17, "", "cannot remove location 'nope'"),
    (with_overlay("edge: {id: a}\nedge: {id: b}\n"), None, 17, "environments.staging.edge", "duplicate key 'edge'"),
    (with_overlay("services:\n  - {name: blog, headers: {request: {set: {X-A: '${nope}'}}}}\n"), None, 17, "environments.staging.services[0].headers.request.set.X-A", "unknown reference"),
]


@pytest.mark.parametrize(("text", "env", "line", "field", "fragment"), PROBLEMS)
def test_problem(text, env, line, field, fragment):
    found = problems(text, env)
    assert any(p.line == line and p.field == field and fragment in p.message for p in found), found


def test_a_problem_is_reported_once():
    text = with_overlay("services:\n  - {name: blog, headers: {request: {set: {X-A: '${nope}'}}}}\n")
    found = problems(text, "staging")
    assert len([p for p in found if "unknown reference" in p.message]) == 1


def test_anchors_and_merge_keys_in_the_base_still_work():
    text = textwrap.dedent("""\
        version: 1
        x-svc: &svc {origins: [http://o], retries: 2}
        services:
          - {<<: *svc, name: a, hostnames: [a.com]}
        environments:
          staging:
            services:
              - {name: a, retries: 0}
        """)
    assert parse_config(text, "c", resolve).service("a").retries == 2
    assert parse_config(text, "c", resolve, env="staging").service("a").retries == 0


def test_a_file_without_environments_is_the_same_in_every_environment():
    # Users who keep one plain cdn.yaml can still `apply --env staging`; once the file
    # defines environments, a name it lacks is an error (see the unknown-environment row).
    plain = parse_config(BASE, "cdn.yaml", lambda kind, name: f"${{{kind}:{name}}}").model_dump(mode="json")
    for env in ("staging", "production"):
        config = parse_config(BASE, "cdn.yaml", lambda kind, name: f"${{{kind}:{name}}}", env=env)
        assert config.model_dump(mode="json") == plain
