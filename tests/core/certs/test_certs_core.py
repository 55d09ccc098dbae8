"""owncdn.core.certs: renewal time, backoff, the order ledger and wanted certificates, as tables."""

from __future__ import annotations

import pytest

from owncdn.core.certs import QuotaExceeded, backoff_seconds, check_quota, is_due, renew_at, wanted_certs
from owncdn.core.config import ConfigError, parse_config

DAY = 86400.0


@pytest.mark.parametrize("not_before, not_after, ari, expected", [
    (0, 90 * DAY, None, 60 * DAY),               # two thirds of a 90-day certificate
    (0, 6 * DAY, None, 4 * DAY),                 # of a 6-day one
    (1000, 1000 + 30 * DAY, None, 1000 + 20 * DAY),
    (0, 90 * DAY, 30 * DAY, 30 * DAY),           # RFC 9773: the CA's window starts earlier: it wins
    (0, 90 * DAY, 70 * DAY, 60 * DAY),           # a window after two thirds never delays renewal
    (0, 90 * DAY, 60 * DAY, 60 * DAY),
])
def test_renew_at(not_before, not_after, ari, expected):
    assert renew_at(not_before, not_after, ari) == pytest.approx(expected)


@pytest.mark.parametrize("failures, expected", [(0, 0), (1, 60), (2, 120), (3, 240), (8, 7680), (9, 15360), (10, 6 * 3600), (20, 6 * 3600)])
def test_backoff_doubles_up_to_a_cap(failures, expected):
    assert backoff_seconds(failures) == expected


@pytest.mark.parametrize("source, issued, renew, force, next_attempt, now, due", [
    ("acme", False, None, False, 0, 10, True),      # never issued: order it
    ("acme", False, None, False, 50, 10, False),    # ... but not during backoff
    ("acme", True, 100, False, 0, 99, False),       # not yet
    ("acme", True, 100, False, 0, 100, True),       # renewal time
    ("acme", True, 100, True, 500, 10, True),       # forced: even during backoff
    ("upload", False, None, True, 0, 10, False),    # uploads are never ordered
])
def test_is_due(source, issued, renew, force, next_attempt, now, due):
    assert is_due(source, issued, renew, force, next_attempt, now) is due


def test_ledger_allows_up_to_the_limit_then_says_when():
    week = 7 * DAY
    orders = {"example.com": [float(i) for i in range(50)]}
    check_quota(["example.org"], orders, now=100.0, limit=50)  # another domain is unaffected
    check_quota(["example.com"], {"example.com": orders["example.com"][:49]}, now=100.0, limit=50)
    with pytest.raises(QuotaExceeded) as err:
        check_quota(["example.com", "example.org"], orders, now=100.0, limit=50)
    assert "example.com" in str(err.value) and "50" in str(err.value)
    assert err.value.retry_at == pytest.approx(0.0 + week)
    check_quota(["example.com"], orders, now=week + 0.5, limit=50)  # the oldest left the window


def _config(text: str):
    return parse_config(text, "cdn.yaml", lambda kind, name: None)


def test_wanted_one_certificate_per_service_with_every_hostname():
    config = _config("""
version: 1
acme: {directory: letsencrypt-staging, email: ops@example.com, challenge: http-01}
services:
  - {name: blog, hostnames: [www.example.com, example.com], origins: [http://o.test], tls: {acme: true}}
  - {name: wild, hostnames: ["*.example.net"], origins: [http://o.test], tls: {acme: true}}
  - {name: api, hostnames: [api.example.com], origins: [http://o.test]}
""")
    wanted = {w.id: w for w in wanted_certs(config, "staging")}
    assert set(wanted) == {"blog@staging", "wild@staging"}
    assert wanted["blog@staging"].names == ("example.com", "www.example.com")
    assert wanted["blog@staging"].challenge == "http-01"
    assert wanted["wild@staging"].challenge == "dns-01"  # a wildcard is only provable through DNS-01
    assert wanted["blog@staging"].directory == "https://acme-staging-v02.api.letsencrypt.org/directory"


def test_all_services_and_opting_out():
    config = _config("""
version: 1
acme: {all_services: true, directory: "https://ca.internal/dir"}
services:
  - {name: a, hostnames: [a.example.com], origins: [http://o.test]}
  - {name: b, hostnames: [b.example.com], origins: [http://o.test], tls: {acme: false}}
""")
    assert [w.id for w in wanted_certs(config, "production")] == ["a@production"]


def test_wildcard_with_http01_is_a_config_error_at_the_hostname():
    with pytest.raises(ConfigError) as err:
        _config("""
version: 1
services:
  - name: wild
    hostnames: ["*.example.net"]
    origins: [http://o.test]
    tls: {acme: true, challenge: http-01}
""")
    assert any("dns-01" in str(p) and p.line == 5 for p in err.value.problems), err.value.problems


def test_staging_overlay_uses_another_ca():
    text = """
version: 1
acme: {directory: letsencrypt}
services:
  - {name: blog, hostnames: [blog.example.com], origins: [http://o.test], tls: {acme: true}}
environments:
  staging:
    acme: {directory: letsencrypt-staging}
  production: {}
"""
    staging = parse_config(text, "cdn.yaml", lambda kind, name: None, env="staging")
    production = parse_config(text, "cdn.yaml", lambda kind, name: None, env="production")
    assert wanted_certs(staging, "staging")[0].directory.startswith("https://acme-staging-v02.")
    assert wanted_certs(production, "production")[0].directory == "https://acme-v02.api.letsencrypt.org/directory"
