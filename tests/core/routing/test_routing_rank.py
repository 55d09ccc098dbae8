"""Routing as rows, gdnsd style: (sites and their health, client, expected answer).

Coordinates are the edge locations and visitor cities of the simulated world
(shared/data/world-cities.json), copied here so the tests need no files.
"""

import pytest

from owncdn.core.routing import Site, answer_addresses, distance_km, rank_sites

EDGES = {  # name: (lat, lon)
    "fra": (50.11, 8.68),
    "lon": (51.51, -0.13),
    "iad": (38.95, -77.45),
    "pdx": (45.52, -122.68),
    "gru": (-23.55, -46.63),
    "bom": (19.08, 72.88),
    "sin": (1.35, 103.82),
    "nrt": (35.68, 139.69),
    "syd": (-33.87, 151.21),
}
VISITORS = {
    "oregon": (45.84, -119.7),
    "california": (37.35, -121.96),
    "ohio": (39.96, -83.0),
    "virginia": (38.95, -77.45),
    "ireland": (53.35, -6.26),
    "frankfurt": (50.11, 8.68),
    "london": (51.51, -0.13),
    "mumbai": (19.08, 72.88),
    "singapore": (1.35, 103.82),
    "seoul": (37.57, 126.98),
    "tokyo": (35.68, 139.69),
    "sydney": (-33.87, 151.21),
    "sao-paulo": (-23.55, -46.63),
}
V4 = {name: f"192.0.2.{i + 1}" for i, name in enumerate(EDGES)}
V6 = {name: f"2001:db8::{i + 1}" for i, name in enumerate(EDGES)}


def world(spec: str) -> list[Site]:
    """Sites from a compact spec: "fra lon- iad:6 sin:46", in configured order.

    A trailing ``-`` marks the site down; ``:4`` gives it only its IPv4 address,
    ``:6`` only IPv6, ``:46`` both (the default), ``:0`` none; ``*2`` a weight of 2.
    """
    sites = []
    for word in spec.split():
        healthy = not word.endswith("-")
        name, _, fams = word.rstrip("-").partition(":")
        name, _, weight = name.partition("*")
        fams = fams or "46"
        addresses = ((V4[name],) if "4" in fams else ()) + ((V6[name],) if "6" in fams else ())
        sites.append(Site(name, *EDGES[name], addresses=addresses, healthy=healthy, weight=float(weight or 1)))
    return sites


ALL = " ".join(EDGES)

# (sites, client city or None, family, the answering site and any others the answer holds, or None)
ANSWER_ROWS = [
    # every visitor city with an edge of its own is answered by that edge
    (ALL, "frankfurt", "A", "fra"),
    (ALL, "london", "A", "lon"),
    (ALL, "virginia", "A", "iad"),
    (ALL, "sao-paulo", "AAAA", "gru"),
    (ALL, "mumbai", "A", "bom"),
    (ALL, "singapore", "A", "sin"),
    (ALL, "tokyo", "AAAA", "nrt"),
    (ALL, "sydney", "A", "syd"),
    # the others go to the nearest one
    (ALL, "oregon", "A", "pdx"),
    (ALL, "california", "A", "pdx"),
    (ALL, "ohio", "A", "iad"),
    (ALL, "ireland", "A", "lon"),
    (ALL, "seoul", "A", "nrt"),
    # the nearest location down: the next nearest answers
    ("fra lon- iad", "ireland", "A", "fra"),
    ("fra- lon- iad", "ireland", "A", "iad"),
    ("fra lon iad- pdx", "virginia", "A", "pdx"),
    ("sin- nrt- syd bom", "singapore", "A", "bom"),
    # every location down: all of them answer, nearest first, rather than nothing
    ("fra- lon- iad-", "ireland", "A", "lon fra iad"),
    ("fra- lon- iad-", "virginia", "A", "iad lon fra"),
    ("fra:6- lon:4- iad-", "frankfurt", "A", "lon iad"),
    # unknown client location: the first configured healthy location
    ("syd fra iad", None, "A", "syd"),
    ("syd- fra iad", None, "A", "fra"),
    ("syd- fra- iad-", None, "AAAA", "syd fra iad"),
    # address families: an AAAA-only location is skipped for A, and the reverse
    ("fra:6 lon:4", "frankfurt", "A", "lon"),
    ("fra:6 lon:4", "frankfurt", "AAAA", "fra"),
    ("fra:4 lon:4", "london", "AAAA", None),
    # a healthy location that cannot answer the family does not block a down one that can
    ("fra:6 lon:4-", "frankfurt", "A", "lon"),
    # a location without addresses is never answered, even when it is the nearest
    ("fra:0 lon", "frankfurt", "A", "lon"),
    ("fra:0", "frankfurt", "A", None),
    ("", "frankfurt", "A", None),
    ("fra lon*0", "london", "A", "fra"),
    ("fra- lon*0-", "london", "A", "fra lon"),     # every site down: all, standby last
]


@pytest.mark.parametrize(("spec", "city", "family", "expected"), ANSWER_ROWS)
def test_answer(spec, city, family, expected):
    client = VISITORS[city] if city else None
    site, addresses = answer_addresses(world(spec), client, family)
    names = expected.split() if expected else []  # the answering site, then others whose addresses are in the answer
    assert (site.name if site else None) == (names[0] if names else None)
    table = V4 if family == "A" else V6
    assert addresses == [table[name] for name in names]


# (sites, client city or None, expected order)
RANK_ROWS = [
    # iad is 6553 km from Frankfurt, bom 6564 km
    (ALL, "frankfurt", "fra lon iad bom pdx nrt gru sin syd"),
    ("fra lon- iad", "ireland", "fra iad"),
    ("fra- lon- iad-", "ohio", "iad lon fra"),
    ("nrt syd fra", None, "nrt syd fra"),
    ("nrt- syd fra", None, "syd fra"),
    ("nrt- syd- fra-", None, "nrt syd fra"),
    ("fra:0 lon iad:0", "frankfurt", "lon"),
]


# Weights (Rule 4): distance / weight; weight 0 is a standby, last whatever the distance.
# Dublin is about 464 km from London and 1,090 km from Frankfurt.
RANK_ROWS += [
    ("fra lon", "ireland", "lon fra"),
    ("fra*3 lon", "ireland", "fra lon"),           # 1090 / 3 = 363 < 464
    ("fra*2 lon", "ireland", "lon fra"),           # 545 > 464
    ("fra lon*0.4", "ireland", "fra lon"),         # 464 / 0.4 = 1160 > 1090
    ("fra lon*0", "london", "fra lon"),            # the standby in London comes last
    ("fra- lon*0", "london", "lon"),               # ... and answers when fra is down
    ("fra- iad- lon*0", "frankfurt", "lon"),
    ("fra*0 lon*0", "frankfurt", "fra lon"),       # standbys among themselves: nearest first
    ("fra*0 lon iad", None, "lon iad fra"),        # unknown position: configured order, standbys last
]


@pytest.mark.parametrize(("spec", "city", "expected"), RANK_ROWS)
def test_rank(spec, city, expected):
    client = VISITORS[city] if city else None
    assert [s.name for s in rank_sites(world(spec), client)] == expected.split()


def test_ties_are_broken_by_name_whatever_the_configured_order():
    same_place = [Site(n, 50.11, 8.68, ("192.0.2.1",)) for n in ("fra-b", "fra-c", "fra-a")]
    assert [s.name for s in rank_sites(same_place, (48.0, 2.0))] == ["fra-a", "fra-b", "fra-c"]
    # a client exactly half way (on the equator between two meridians) is a tie too
    east, west = Site("east", 0.0, 10.0, ("192.0.2.1",)), Site("west", 0.0, -10.0, ("192.0.2.2",))
    assert answer_addresses([west, east], (0.0, 0.0))[0].name == "east"


def test_several_edges_of_a_location_share_the_answer():
    fra = Site("fra", 50.11, 8.68, ("192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2"))
    assert answer_addresses([fra], (50.0, 8.0), "A") == (fra, ["192.0.2.1", "192.0.2.2"])
    assert answer_addresses([fra], (50.0, 8.0), "AAAA") == (fra, ["2001:db8::1", "2001:db8::2"])


# (from, to, km, relative tolerance)
DISTANCE_ROWS = [
    ("fra", "sin", 10_270, 0.01),
    ("fra", "lon", 637, 0.01),
    ("iad", "pdx", 3_750, 0.01),
    ("nrt", "syd", 7_820, 0.01),
    ("fra", "fra", 0, 0),
]


@pytest.mark.parametrize(("a", "b", "km", "tolerance"), DISTANCE_ROWS)
def test_distance_km(a, b, km, tolerance):
    d = distance_km(*EDGES[a], *EDGES[b])
    assert d == pytest.approx(km, rel=tolerance, abs=1e-6)
    assert distance_km(*EDGES[b], *EDGES[a]) == pytest.approx(d)


def test_distance_km_extremes():
    half_circumference = 3.141592653589793 * 6371
    assert distance_km(0, 0, 0, 180) == pytest.approx(half_circumference)
    assert distance_km(90, 0, -90, 0) == pytest.approx(half_circumference)
    # across the date line
    assert distance_km(0, 179.9, 0, -179.9) == pytest.approx(22.24, rel=0.01)


def test_site_rejects_impossible_values_and_keeps_addresses_a_tuple():
    with pytest.raises(ValueError, match="latitude"):
        Site("x", 91, 0, ())
    with pytest.raises(ValueError, match="longitude"):
        Site("x", 0, 181, ())
    with pytest.raises(ValueError, match="weight"):
        Site("x", 0, 0, (), weight=-1)
    site = Site("x", 0, 0, ["192.0.2.1"])
    assert site.addresses == ("192.0.2.1",)
    hash(site)


def test_unknown_family_is_an_error():
    with pytest.raises(ValueError, match="family"):
        answer_addresses(world("fra"), None, "MX")
