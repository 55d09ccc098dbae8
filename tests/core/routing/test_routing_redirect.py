"""Redirect routing as rows: (mirrors, peer, X-Forwarded-For, trusted proxies, expected Location).

Positions come from a dict standing in for the GeoIP database; coordinates are the
cities of the simulated world (shared/data/world-cities.json).
"""

import ipaddress

import pytest

from owncdn.core.routing.redirect import (
    Mirror,
    Visitor,
    locate_visitor,
    plan_redirect,
    rank_mirrors,
    redirect_url,
    request_scheme,
    visitor_address,
)

FRA = Mirror("fra", "fra.mirror.test", 50.11, 8.68, "Frankfurt", "DE")
IAD = Mirror("iad", "iad.mirror.test", 38.95, -77.45, "Ashburn", "US")
SIN = Mirror("sin", "sin.mirror.test", 1.35, 103.82, "Singapore", "SG")
NOWHERE = Mirror("lab", "lab.mirror.test")  # no coordinates
ALL = [FRA, IAD, SIN]

POSITIONS = {  # the "database"
    "198.51.100.7": (48.86, 2.35),     # Paris
    "203.0.113.9": (35.68, 139.69),    # Tokyo
    "192.0.2.44": (40.71, -74.01),     # New York
    "2001:db8:5::1": (-33.87, 151.21),  # Sydney
    "10.0.0.5": (52.52, 13.40),        # Berlin: a proxy's own position, never the visitor's
}


def locate(address):
    return POSITIONS.get(address)


def trust(*networks):
    nets = [ipaddress.ip_network(n) for n in networks]
    return lambda a: any(ipaddress.ip_address(a) in n for n in nets)


ROWS = [
    # (mirrors, peer, X-Forwarded-For values, trusted networks, expected Location)
    (ALL, "198.51.100.7", [], [], "https://fra.mirror.test/pub/x.iso"),
    (ALL, "203.0.113.9", [], [], "https://sin.mirror.test/pub/x.iso"),
    (ALL, "192.0.2.44", [], [], "https://iad.mirror.test/pub/x.iso"),
    (ALL, "2001:db8:5::1", [], [], "https://sin.mirror.test/pub/x.iso"),
    # an untrusted peer's X-Forwarded-For is ignored: the peer (Paris) decides
    (ALL, "198.51.100.7", ["203.0.113.9"], [], "https://fra.mirror.test/pub/x.iso"),
    (ALL, "198.51.100.7", ["203.0.113.9"], ["10.0.0.0/8"], "https://fra.mirror.test/pub/x.iso"),
    # a trusted load balancer's X-Forwarded-For names the visitor (Tokyo)
    (ALL, "10.0.0.5", ["203.0.113.9"], ["10.0.0.0/8"], "https://sin.mirror.test/pub/x.iso"),
    # a spoofed entry left of the real visitor does not count: the rightmost untrusted one does
    (ALL, "10.0.0.5", ["192.0.2.44, 203.0.113.9"], ["10.0.0.0/8"], "https://sin.mirror.test/pub/x.iso"),
    # trusted hops are skipped from the right, across several field lines
    (ALL, "10.0.0.5", ["192.0.2.44", "10.0.0.7, 10.1.2.3"], ["10.0.0.0/8"], "https://iad.mirror.test/pub/x.iso"),
    # garbage ends the walk at the hop before it (a trusted proxy: unknown position, fallback)
    (ALL, "10.0.0.5", ["203.0.113.9, junk, 10.0.0.9"], ["10.0.0.0/8"], "https://fra.mirror.test/pub/x.iso"),
    # with ports and brackets
    (ALL, "10.0.0.5", ["[2001:db8:5::1]:4711"], ["10.0.0.0/8"], "https://sin.mirror.test/pub/x.iso"),
    (ALL, "10.0.0.5", ["192.0.2.44:1234"], ["10.0.0.0/8"], "https://iad.mirror.test/pub/x.iso"),
    # unknown position: the first configured mirror
    (ALL, "233.252.0.1", [], [], "https://fra.mirror.test/pub/x.iso"),
    ([SIN, IAD, FRA], "233.252.0.1", [], [], "https://sin.mirror.test/pub/x.iso"),
    # mirrors without coordinates come after placed ones, but can be the fallback
    ([NOWHERE, IAD], "198.51.100.7", [], [], "https://iad.mirror.test/pub/x.iso"),
    ([NOWHERE, IAD], "233.252.0.1", [], [], "https://lab.mirror.test/pub/x.iso"),
]


@pytest.mark.parametrize("mirrors, peer, xff, trusted, expected", ROWS)
def test_redirect_location(mirrors, peer, xff, trusted, expected):
    visitor = locate_visitor(peer, xff, trust(*trusted), locate)
    decision = plan_redirect(mirrors, visitor, scheme="https", request_host="mirror.test",
                             target="/pub/x.iso", max_age=60)
    assert decision.location == expected
    fields = dict(decision.fields)
    assert fields["cache-control"] == "private, max-age=60"
    assert ("vary" in fields) == visitor.via_forwarded_for


@pytest.mark.parametrize("peer, xff, trusted, expected", [
    ("192.0.2.1", [], [], ("192.0.2.1", False)),
    ("192.0.2.1", ["203.0.113.9"], [], ("192.0.2.1", False)),
    ("10.0.0.1", ["203.0.113.9"], ["10.0.0.0/8"], ("203.0.113.9", True)),
    ("10.0.0.1", ["10.0.0.2, 10.0.0.3"], ["10.0.0.0/8"], ("10.0.0.2", True)),  # all trusted: leftmost
    ("10.0.0.1", ["junk"], ["10.0.0.0/8"], ("10.0.0.1", False)),
    ("10.0.0.1", ["  "], ["10.0.0.0/8"], ("10.0.0.1", False)),
    ("10.0.0.1", ["2001:DB8::1"], ["10.0.0.0/8"], ("2001:db8::1", True)),  # normalised
])
def test_visitor_address(peer, xff, trusted, expected):
    assert visitor_address(peer, xff, trust(*trusted)) == expected


@pytest.mark.parametrize("host, target, expected", [
    ("mirror.test", "/a?b=1&c", "http://fra.mirror.test/a?b=1&c"),   # path and query kept as sent
    ("mirror.test:8080", "/a", "http://fra.mirror.test:8080/a"),      # the Host's port too
    ("[2001:db8::1]:8080", "/", "http://fra.mirror.test:8080/"),
    ("mirror.test:", "/", "http://fra.mirror.test/"),
    ("mirror.test", "*", "http://fra.mirror.test/"),
])
def test_redirect_url(host, target, expected):
    assert redirect_url("http", "fra.mirror.test", host, target) == expected


def test_the_fallback_wins_for_unknown_positions_only():
    assert rank_mirrors(ALL, None, fallback="iad")[0] is IAD
    assert rank_mirrors(ALL, POSITIONS["198.51.100.7"], fallback="iad")[0] is FRA


def test_an_unparseable_visitor_has_no_position():
    def strict(address):
        ipaddress.ip_address(address)
        return POSITIONS.get(address)
    assert locate_visitor("local", [], trust(), strict) == Visitor("local", None, False)


def test_no_mirrors_is_an_error():
    with pytest.raises(ValueError):
        plan_redirect([], Visitor("192.0.2.1", None), scheme="https", request_host="m", target="/", max_age=1)


@pytest.mark.parametrize("tls, proto, trusted, expected", [
    (False, None, False, "http"),
    (True, None, False, "https"),
    (False, "https", False, "http"),   # an untrusted peer cannot claim https
    (False, "https", True, "https"),
    (True, "http", True, "http"),
    (False, "HTTPS, http", True, "https"),
    (False, "gopher", True, "http"),
])
def test_request_scheme(tls, proto, trusted, expected):
    assert request_scheme(tls, proto, trusted) == expected
