"""Locations from cdn.yaml plus registered edges and their health, as rows."""

from types import SimpleNamespace

import pytest

from owncdn.core.routing import EdgeHealth, answer_addresses, location_sites, unplaced


def loc(name, lat, lon, *addresses):
    return SimpleNamespace(name=name, lat=lat, lon=lon, addresses=list(addresses))


LOCATIONS = [loc("fra", 50.11, 8.68, "192.0.2.1"), loc("iad", 38.95, -77.45), loc("sin", 1.35, 103.82)]
PARIS, NEW_YORK = (48.85, 2.35), (40.71, -74.0)


def edges(spec: str) -> list[EdgeHealth]:
    """ "fra:10.0.0.1 fra:10.0.0.2- iad:10.0.1.1" -> edges; a trailing - is down."""
    out = []
    for i, word in enumerate(spec.split()):
        location, _, host = word.rstrip("-").partition(":")
        out.append(EdgeHealth(f"e{i}", location, f"{host}:8080", healthy=not word.endswith("-")))
    return out


# (edges, down, expected sites as "name=addresses" ("+" healthy, "!" down))
SITE_ROWS = [
    # no edges: configured addresses alone; a location without any is left out
    ("", (), ["fra+192.0.2.1"]),
    # healthy edges add their addresses after the configured ones
    ("fra:10.0.0.1 iad:10.0.1.1", (), ["fra+192.0.2.1,10.0.0.1", "iad+10.0.1.1"]),
    # a down edge leaves the answer while another edge of its location is up
    ("fra:10.0.0.1 fra:10.0.0.2- iad:10.0.1.1", (), ["fra+192.0.2.1,10.0.0.1", "iad+10.0.1.1"]),
    # every edge of a location down: the location is down, keeping every address
    ("fra:10.0.0.1- fra:10.0.0.2- iad:10.0.1.1", (), ["fra!192.0.2.1,10.0.0.1,10.0.0.2", "iad+10.0.1.1"]),
    # an edge on 0.0.0.0 or a host name gives health but no address
    ("fra:0.0.0.0 iad:edge.example.net", (), ["fra+192.0.2.1"]),
    ("fra:0.0.0.0- iad:10.0.1.1", (), ["fra!192.0.2.1", "iad+10.0.1.1"]),
    # IPv6 edges
    ("sin:[2001:db8::5]", (), ["fra+192.0.2.1", "sin+2001:db8::5"]),
    # an operator's `down` on top of the monitor
    ("fra:10.0.0.1 iad:10.0.1.1", ("iad",), ["fra+192.0.2.1,10.0.0.1", "iad!10.0.1.1"]),
    # an edge at an undeclared location is not routed
    ("syd:10.0.9.1", (), ["fra+192.0.2.1"]),
]


@pytest.mark.parametrize(("spec", "down", "expected"), SITE_ROWS)
def test_location_sites(spec, down, expected):
    sites = location_sites(LOCATIONS, edges(spec), down)
    assert [f"{s.name}{'+' if s.healthy else '!'}{','.join(s.addresses)}" for s in sites] == expected


# (edges, client, expected answer): the DNS decision with edge health
ANSWER_ROWS = [
    ("fra:10.0.0.1 iad:10.0.1.1", PARIS, ["192.0.2.1", "10.0.0.1"]),
    ("fra:10.0.0.1- iad:10.0.1.1", PARIS, ["10.0.1.1"]),  # fra's edges down: fall back to iad
    ("fra:10.0.0.1- iad:10.0.1.1", NEW_YORK, ["10.0.1.1"]),
    # everything down: all of them, nearest first
    ("fra:10.0.0.1- iad:10.0.1.1-", NEW_YORK, ["10.0.1.1", "192.0.2.1", "10.0.0.1"]),
]


@pytest.mark.parametrize(("spec", "client", "expected"), ANSWER_ROWS)
def test_answers_follow_edge_health(spec, client, expected):
    assert answer_addresses(location_sites(LOCATIONS, edges(spec)), client, "A")[1] == expected


def test_edge_health_from_the_channel_and_unplaced_edges():
    edge = EdgeHealth.from_dict({"name": "e", "location": "syd", "address": "[2001:db8::1]:443", "healthy": False})
    assert (edge.ip, edge.healthy) == ("2001:db8::1", False)
    assert EdgeHealth("e", "fra", "[::]:80").ip is None
    assert unplaced(LOCATIONS, [edge, *edges("fra:10.0.0.1")]) == [edge]
