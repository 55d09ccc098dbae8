"""The Config model: defaults, host lookup, secrets, policies, schema."""

import copy
import json
import pickle
from pathlib import Path

import pytest

from owncdn.core.config import Config, Secret, config_json_schema, parse_config

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

HOSTS = """\
version: 1
services:
  - name: apex
    hostnames: [example.com, www.example.com]
    origins: [http://o1]
  - name: cdn
    hostnames: ["*.example.com"]
    origins: [http://o2]
  - name: img
    hostnames: ["*.img.example.com", "IMG.example.com."]
    origins: [http://o3]
"""


def resolve(kind, name):
    return {"TOKEN": "s3cr3t-value"}.get(name) if kind == "env" else None


@pytest.fixture(scope="module")
def hosts():
    return parse_config(HOSTS, "cdn.yaml", resolve)


@pytest.mark.parametrize(("host", "service"), [
    ("example.com", "apex"),
    ("WWW.Example.COM:8080", "apex"),          # case and port ignored
    ("www.example.com.", "apex"),              # trailing dot ignored
    ("static.example.com", "cdn"),             # wildcard: one label
    ("img.example.com", "img"),                # exact beats wildcard
    ("a.img.example.com", "img"),              # the wildcard one label up
    ("a.b.example.com", None),                 # *.example.com matches exactly one label
    ("example.org", None),
    ("", None),
    ("[::1]:443", None),
])
def test_service_for_host(hosts, host, service):
    found = hosts.service_for_host(host)
    assert (found.name if found else None) == service


def test_minimal_config_gets_documented_defaults():
    config = parse_config("version: 1\n", "cdn.yaml", resolve)
    assert config.services == [] and config.locations == []
    edge = config.edge
    assert (edge.id, edge.location, edge.memory_cache, edge.access_log) == ("edge-1", "local", 256 * 2**20, "-")
    assert (edge.header_timeout, edge.keepalive_timeout) == (10.0, 75.0)
    assert (edge.max_request_line, edge.max_header_bytes, edge.trusted_proxies) == (8192, 65536, [])


def test_service_defaults_and_origin_parts():
    config = parse_config(HOSTS.replace("http://o1", "{url: 'https://Origin.example.com:8443/base/'}"), "c", resolve)
    svc = config.service("apex")
    assert (svc.origin_host, svc.retries) == ("origin", 1)
    assert (svc.timeouts.connect, svc.timeouts.first_byte, svc.timeouts.idle) == (5.0, 30.0, 30.0)
    cache = svc.cache
    assert (cache.enabled, cache.default_ttl, cache.min_ttl, cache.max_ttl) == (True, None, 0.0, None)
    assert (cache.stale_while_revalidate, cache.stale_if_error, cache.max_object_size) == (0.0, 86400.0, 2**30)
    assert cache.query_string.mode == "keep" and cache.cookies.share_set_cookie is False
    origin = svc.origins[0]
    assert (origin.scheme, origin.host, origin.port, origin.path_prefix) == ("https", "origin.example.com", 8443, "/base")
    assert origin.host_header == "origin.example.com:8443"
    assert config.services[1].origins[0].host_header == "o2"


def test_models_are_frozen_and_copyable():
    config = parse_config("version: 1\n", "c", resolve)
    with pytest.raises(ValueError):
        config.edge.id = "other"
    assert config.model_copy(update={"edge": config.edge.model_copy(update={"id": "edge-7"})}).edge.id == "edge-7"


SECRET = HOSTS + "    headers:\n      request:\n        set: {X-Auth: 'Bearer ${env:TOKEN}', X-Lit: '$${env:TOKEN}'}\n"


def test_secret_values_are_usable_but_not_in_repr():
    config = parse_config(SECRET, "c", resolve)
    headers = config.service("img").headers.request.set
    assert headers["X-Auth"] == "Bearer s3cr3t-value"
    assert isinstance(headers["X-Auth"], Secret) and headers["X-Auth"].reference == "Bearer ${env:TOKEN}"
    assert headers["X-Lit"] == "${env:TOKEN}" and not isinstance(headers["X-Lit"], Secret)
    for text in (repr(config), str(config), repr(headers), repr(copy.deepcopy(config)), repr(config.model_dump())):
        assert "s3cr3t" not in text
    assert "Secret('Bearer ${env:TOKEN}')" in repr(headers)
    assert "s3cr3t-value" in config.model_dump_json()  # what the edge is sent
    assert pickle.loads(pickle.dumps(headers["X-Auth"])).reference == "Bearer ${env:TOKEN}"


def test_cache_policy():
    policy_mod = pytest.importorskip("owncdn.core.http.policy")
    config = parse_config(HOSTS + "    cache: {default_ttl: 10m, max_ttl: 1d, max_object_size: 1MiB, stale_if_error: 1h}\n", "c", resolve)
    policy = config.service("img").cache_policy()
    assert isinstance(policy, policy_mod.CachePolicy)
    assert (policy.default_ttl, policy.min_ttl, policy.max_ttl) == (600.0, 0.0, 86400.0)
    assert (policy.stale_if_error, policy.max_object_size, policy.share_set_cookie) == (3600.0, 2**20, False)


def test_key_policy():
    cachekey = pytest.importorskip("owncdn.core.http.cachekey")
    text = HOSTS + "    cache:\n      query_string: {mode: sort, exclude: [utm_source]}\n      cookies: {key: [lang]}\n"
    key = parse_config(text, "c", resolve).service("img").key_policy()
    assert isinstance(key, cachekey.KeyPolicy)
    assert (key.query, key.include, key.exclude, key.cookies) == ("sort", (), ("utm_source",), ("lang",))


def test_example_pull_site_is_valid():
    config = parse_config((EXAMPLES / "pull-site.yaml").read_text(), "pull-site.yaml", lambda k, n: "x")
    assert [s.name for s in config.services] == ["blog"]
    assert config.service_for_host("eu.cdn.example.com").name == "blog"


def test_json_schema_documents_every_field():
    schema = config_json_schema()
    json.dumps(schema)
    assert schema["required"] == ["version"]
    assert set(schema["properties"]) == {"version", "edge", "locations", "dns", "services", "acme", "environments"}
    assert "remove: true" in schema["properties"]["environments"]["description"]
    for name, model in schema["$defs"].items():
        assert model.get("additionalProperties") is False, name
        for field, spec in model["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"
    assert schema["$defs"]["CacheSettings"]["properties"]["stale_if_error"]["default"] == "1d"
    assert Config.model_fields["version"].description


def test_top_level_x_keys_hold_anchors():
    text = """\
version: 1
x-origin: &origin {origins: [http://o], retries: 2}
services:
  - {<<: *origin, name: a, hostnames: [a.com]}
  - {<<: *origin, name: b, hostnames: [b.com], retries: 0}
"""
    config = parse_config(text, "c", resolve)
    assert [(s.name, s.retries, s.origins[0].url) for s in config.services] == [("a", 2, "http://o"), ("b", 0, "http://o")]
    assert config_json_schema()["patternProperties"] == {"^x-": {}}
