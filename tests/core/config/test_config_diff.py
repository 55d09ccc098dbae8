"""``diff_configs`` and ``render_plan``: what a plan says about two configs.

Rows of (edit applied to the base text, expected plan lines). Configs are
parsed with ``keep_references``, as a plan does.
"""

import pytest

from owncdn.core.config import Change, Config, diff_configs, keep_references, parse_config, render_plan

BASE = """\
version: 1
edge: {id: edge-1, trusted_proxies: [10.0.0.0/8]}
locations:
  - {name: fra, city: Frankfurt, country: DE}
services:
  - name: blog
    hostnames: [blog.example.com, www.example.com]
    origins: [https://o.example.com]
    cache: {query_string: {exclude: [utm_source]}}
    headers:
      request: {set: {X-Auth: '${env:TOKEN}'}}
      response: {remove: [server]}
"""

SHOP = "  - {name: shop, hostnames: [shop.example.com], origins: [https://s.example.com, https://s2.example.com]}\n"


def config(text: str) -> Config:
    return parse_config(text, "cdn.yaml", keep_references)


def plan(old: str | None, new: str) -> list[str]:
    return render_plan(diff_configs(config(old) if old is not None else None, config(new))).splitlines()


ROWS = [
    # (old text -> new text, expected lines)
    (BASE, ["No changes."]),
    (BASE.replace("cache: {", "cache: {default_ttl: 10m, "), ["~ services[blog].cache.default_ttl: null -> 600.0"]),
    (BASE + SHOP, ["+ service shop (hostnames: shop.example.com; origins: https://s.example.com, https://s2.example.com)"]),
    (BASE + "  - {name: docs, hostnames: [docs.example.com], mode: push}\n",
     ["+ service docs (hostnames: docs.example.com; mode: push)"]),
    (BASE.replace("blog", "news"), ["+ service news (hostnames: news.example.com, www.example.com; origins: https://o.example.com)", "- service blog"]),
    # hostnames and other unordered lists: one line per item
    (BASE.replace("[blog.example.com, www.example.com]", "[www.example.com, blog.example.com, m.example.com]"),
     ['+ services[blog].hostnames: "m.example.com"']),
    (BASE.replace("[blog.example.com, www.example.com]", "[blog.example.com]"), ['- services[blog].hostnames: "www.example.com"']),
    (BASE.replace("[10.0.0.0/8]", "[10.0.0.0/8, 192.168.0.0/16]"), ['+ edge.trusted_proxies: "192.168.0.0/16"']),
    (BASE.replace("exclude: [utm_source]", "exclude: [fbclid]"),
     ['+ services[blog].cache.query_string.exclude: "fbclid"', '- services[blog].cache.query_string.exclude: "utm_source"']),
    # origins are ordered: the whole list changes
    (BASE.replace("[https://o.example.com]", "[https://b.example.com, https://o.example.com]"),
     ['~ services[blog].origins: [{"url": "https://o.example.com", "tls_verify": true}] -> '
      '[{"url": "https://b.example.com", "tls_verify": true}, {"url": "https://o.example.com", "tls_verify": true}]']),
    # free mappings (header rules) by key
    (BASE.replace("remove: [server]}", "remove: [server], set: {X-Frame-Options: DENY}}"),
     ['+ services[blog].headers.response.set.X-Frame-Options: "DENY"']),
    (BASE.replace("{set: {X-Auth: '${env:TOKEN}'}}", "{}"), ['- services[blog].headers.request.set.X-Auth: "${env:TOKEN}"']),
    # secrets by reference, never by value
    (BASE.replace("${env:TOKEN}", "${env:TOKEN_V2}"),
     ['~ services[blog].headers.request.set.X-Auth: "${env:TOKEN}" -> "${env:TOKEN_V2}"']),
    # locations by name; units in seconds and bytes
    (BASE.replace("city: Frankfurt", "city: Frankfurt am Main"), ['~ locations[fra].city: "Frankfurt" -> "Frankfurt am Main"']),
    (BASE.replace("- {name: fra, city: Frankfurt, country: DE}", "- {name: ams, country: NL, lat: 52.37, lon: 4.9}"),
     ["+ location ams (country: NL; lat: 52.37; lon: 4.9)", "- location fra"]),
    (BASE.replace("edge: {id: edge-1,", "edge: {id: edge-1, memory_cache: 1GiB, keepalive_timeout: 2m,"),
     ["~ edge.memory_cache: 268435456 -> 1073741824", "~ edge.keepalive_timeout: 75.0 -> 120.0"]),
    # services matched by name, not position
    (BASE.replace("services:\n", "services:\n" + SHOP) , ["+ service shop (hostnames: shop.example.com; origins: https://s.example.com, https://s2.example.com)"]),
]


@pytest.mark.parametrize(("new", "expected"), ROWS)
def test_plan(new, expected):
    assert plan(BASE, new) == expected


def test_reordered_services_are_no_change():
    assert diff_configs(config(BASE + SHOP), config(BASE.replace("services:\n", "services:\n" + SHOP))) == []


def test_first_plan_adds_everything():
    assert plan(None, BASE) == [
        "+ edge (id: edge-1; location: local; memory_cache: 268435456; header_timeout: 10.0; keepalive_timeout: 75.0;"
        " max_request_line: 8192; max_header_bytes: 65536; access_log: -)",
        "+ location fra (city: Frankfurt; country: DE)",
        "+ dns (zone: cdn.test; ttl: 30.0; hostmaster: hostmaster.cdn.test)",
        "+ service blog (hostnames: blog.example.com, www.example.com; origins: https://o.example.com)",
        "+ acme (directory: letsencrypt; challenge: dns-01; all_services: False; orders_per_week: 50;"
        " expiry_warning: 604800.0)",
    ]


def test_changes_carry_paths_and_plain_values():
    changes = diff_configs(config(BASE), config(BASE.replace("cache: {", "cache: {max_ttl: 1h, ")))
    assert changes == [Change("change", "services[blog].cache.max_ttl", None, 3600.0)]


def test_a_changed_secret_value_behind_the_same_reference_is_no_change():
    old = parse_config(BASE, "c", lambda kind, name: "old-value")
    new = parse_config(BASE, "c", lambda kind, name: "new-value")
    assert diff_configs(old, new) == []
    assert "new-value" not in repr(diff_configs(None, new))


def test_keep_references():
    assert keep_references("env", "TOKEN") == "${env:TOKEN}"
    assert config(BASE).service("blog").headers.request.set["X-Auth"] == "${env:TOKEN}"
