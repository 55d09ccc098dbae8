"""The world model of `owncdn world`: latencies, nearest edge, floors, addresses, tables, chart."""

import xml.etree.ElementTree as ET

import pytest

from owncdn.core.world import CITIES, EDGE_LOCATIONS, LatencyModel, address, by_key, city_of, pick, subnet
from owncdn.core.world.chart import bar_chart
from owncdn.core.world.report import table

MODEL = LatencyModel()


@pytest.mark.parametrize("a, b, one_way_ms", [
    # great-circle km / 200,000 km/s x 1.5 + 1 ms (latency.py rule 1)
    ("fra", "fra", 1.0),
    ("fra", "lon", 5.8),     # 638 km
    ("fra", "vir", 50.1),    # 6,549 km
    ("fra", "syd", 124.6),   # 16,483 km
    ("sin", "syd", 48.3),    # 6,306 km
    ("ore", "cal", 7.9),     # 920 km
    ("tyo", "sel", 9.6),     # 1,153 km
])
def test_one_way_delay_follows_distance(a, b, one_way_ms):
    assert MODEL.one_way(by_key(a), by_key(b)) * 1000 == pytest.approx(one_way_ms, abs=0.5)
    assert MODEL.one_way(by_key(b), by_key(a)) == MODEL.one_way(by_key(a), by_key(b))


def test_scale_multiplies_every_delay():
    fra, syd = by_key("fra"), by_key("syd")
    assert LatencyModel(scale=3).one_way(fra, syd) == pytest.approx(3 * MODEL.one_way(fra, syd))
    assert MODEL.rtt(fra, syd) == pytest.approx(2 * MODEL.one_way(fra, syd))


@pytest.mark.parametrize("visitor, locations, nearest", [
    ("syd", ["fra", "sin"], "sin"),
    ("vir", ["fra", "sin"], "fra"),
    ("cal", ["fra", "sin", "vir", "ore"], "ore"),
    ("sel", list(EDGE_LOCATIONS), "tyo"),
    ("dub", list(EDGE_LOCATIONS), "lon"),
    ("ohi", list(EDGE_LOCATIONS), "vir"),
    ("fra", list(EDGE_LOCATIONS), "fra"),
])
def test_nearest_edge_location(visitor, locations, nearest):
    assert MODEL.nearest(by_key(visitor), [by_key(k) for k in locations]).key == nearest


@pytest.mark.parametrize("steps, round_trips", [
    (("tcp", "http"), 2),
    (("dns", "tcp", "http"), 3),
    (("dns", "tcp", "tls", "http"), 4),
    (("http",), 1),
])
def test_floor_is_rtt_times_round_trips(steps, round_trips):
    syd, sin = by_key("syd"), by_key("sin")
    assert MODEL.floor(syd, sin, steps) == pytest.approx(round_trips * MODEL.rtt(syd, sin))


@pytest.mark.parametrize("key, role, ip", [
    ("ore", "visitor", "10.1.0.10"),
    ("fra", "edge", "10.6.0.20"),
    ("fra", "origin", "10.6.0.30"),
    ("fra", "control", "10.6.0.40"),
    ("gru", "visitor", "10.13.0.10"),
])
def test_address_plan(key, role, ip):
    city = by_key(key)
    assert address(city, role) == ip
    assert city_of(ip) == city
    assert subnet(city) == f"10.{city.index}.0.0/24"


@pytest.mark.parametrize("ip", ["10.255.0.1", "10.14.0.10", "192.0.2.1", "10.1.1.10"])
def test_addresses_outside_the_plan_have_no_city(ip):
    assert city_of(ip) is None


def test_cities_and_small_worlds():
    assert len(CITIES) == 13 and len(EDGE_LOCATIONS) == 9
    assert set(EDGE_LOCATIONS) <= {c.key for c in CITIES}
    visitors, locations = pick(3, 2)
    assert [c.key for c in visitors] == ["fra", "syd", "vir"]
    assert [c.key for c in locations] == ["fra", "sin"]
    visitors, locations = pick(13, 9)
    assert {c.key for c in visitors} == {c.key for c in CITIES}
    assert {c.key for c in locations} == set(EDGE_LOCATIONS)
    with pytest.raises(ValueError):
        pick(14, 2)


ROWS = [
    {"city": "Sydney", "server": "Singapore", "dns": 0.101, "connect": 0.098, "ttfb": 0.199, "page": 0.597,
     "floor": 0.193, "cache": "HIT"},
    {"city": "Frankfurt", "server": "Frankfurt", "dns": None, "connect": 0.003, "ttfb": 0.006, "page": 0.017,
     "floor": 0.004, "cache": ""},
]


def test_table_shows_milliseconds_and_ratio_to_floor():
    text = table(ROWS)
    assert text.splitlines()[1].split() == ["Sydney", "Singapore", "101", "98", "-", "199", "597", "193", "1.03", "HIT"]
    assert text.splitlines()[2].split() == ["Frankfurt", "Frankfurt", "-", "3.0", "-", "6.0", "17", "4.0", "1.50", "-"]
    md = table(ROWS, markdown=True).splitlines()
    assert md[0].startswith("| city |") and md[1].startswith("|---|")
    assert md[2] == "| Sydney | Singapore | 101 | 98 | - | 199 | 597 | 193 | 1.03 | HIT |"


def test_chart_is_valid_svg_with_one_bar_per_value():
    svg = bar_chart("TTFB <ms>", ["Sydney", "Frankfurt & co"], {"origin": [500.0, 6.0], "warm": [199.0, None]},
                    floors=[193.0, 4.0])
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in root.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    assert len(bars) == 3
    assert max(float(r.get("height")) for r in bars) == pytest.approx(250.0)
    assert "TTFB &lt;ms&gt;" in svg and "Frankfurt &amp; co" in svg
