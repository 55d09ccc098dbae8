"""Verdicts of `owncdn check` (owncdn.core.check), table-driven; names from RFC 6125 §6.4."""

from datetime import UTC, datetime, timedelta

import pytest

from owncdn.core.check import (Check, cache_verdict, certificate_verdict, exit_status, forwarding_verdicts,
                               hostname_matches, purge_verdict, render)

# RFC 6125 §6.4.1 (exact, case-insensitive) and §6.4.3 (wildcard: whole left-most label,
# one label only, not the parent domain itself).
NAMES = [
    ("www.example.com", ["www.example.com"], True),
    ("WWW.Example.COM", ["www.example.com"], True),
    ("www.example.com.", ["www.example.com"], True),
    ("foo.example.com", ["*.example.com"], True),
    ("bar.foo.example.com", ["*.example.com"], False),
    ("example.com", ["*.example.com"], False),
    ("www.example.com", ["example.com"], False),
    ("www.example.com", ["w*.example.com"], False),
    ("www.example.com", ["*.*.com"], False),
    ("www.example.com", ["other.test", "www.example.com"], True),
    ("www.example.com", [], False),
]


@pytest.mark.parametrize("host,names,ok", NAMES)
def test_hostname_matching(host, names, ok):
    assert hostname_matches(host, names) is ok


NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("before,after,ok,says", [
    (NOW - timedelta(days=10), NOW + timedelta(days=80), True, "80 days"),
    (NOW + timedelta(days=1), NOW + timedelta(days=90), False, "not valid before"),
    (NOW - timedelta(days=90), NOW - timedelta(days=1), False, "expired"),
    (NOW - timedelta(days=85), NOW + timedelta(days=5), False, "expires in 5.0 days"),
])
def test_certificate_validity(before, after, ok, says):
    check = certificate_verdict("www.example.com", ["www.example.com"], before, after, NOW)
    assert check.ok is ok and says in check.detail


def test_certificate_name_mismatch():
    check = certificate_verdict("www.example.com", ["other.test"], NOW - timedelta(days=1), NOW + timedelta(days=60), NOW)
    assert not check.ok and "www.example.com is not among its names" in check.detail


@pytest.mark.parametrize("first,second,ok", [
    ("MISS", "HIT", True), ("HIT", "HIT", True), ("MISS", "MISS", False), ("PASS", "PASS", False),
    (None, None, False), ("STALE", "HIT", True),
])
def test_cache_pairs(first, second, ok):
    assert cache_verdict(first, second).ok is ok


@pytest.mark.parametrize("echoed,expected_host,local,edge,ok", [
    ([("Host", "o:80"), ("X-Forwarded-For", "127.0.0.1")], None, "127.0.0.1", "127.0.1.1", (True, True)),
    ([("Host", "o:80"), ("X-Forwarded-For", "127.0.0.1")], "origin:80", "127.0.0.1", "127.0.1.1", (False, True)),
    ([("Host", "o:80"), ("X-Forwarded-For", "192.0.2.1, 127.0.0.5")], None, "127.0.0.1", "127.0.1.1", (True, False)),
    ([("Host", "o:80")], None, "127.0.0.1", "127.0.1.1", (True, False)),
    # behind NAT (private source, public edge): any address the edge saw
    ([("Host", "o"), ("X-Forwarded-For", "8.8.4.4")], None, "192.168.1.20", "8.8.8.8", (True, True)),
    ([("Host", "o"), ("X-Forwarded-For", "garbage")], None, "192.168.1.20", "8.8.8.8", (True, False)),
])
def test_forwarding(echoed, expected_host, local, edge, ok):
    host, xff = forwarding_verdicts(echoed, expected_host, local, edge)
    assert (host.ok, xff.ok) == ok


def test_no_echo_fails_both_and_render_marks_lines():
    checks = forwarding_verdicts(None, None, "127.0.0.1", "127.0.0.1")
    checks += [purge_verdict("MISS", "acked by 3"), Check("DNS", "skip", "not asked")]
    assert exit_status(checks) == 1
    assert exit_status(checks[2:]) == 0
    assert render(checks).splitlines()[0].startswith("✗ Host at origin")
    assert render(checks).splitlines()[2].startswith("✓ purge")
    assert render(checks).splitlines()[3].startswith("- DNS")
