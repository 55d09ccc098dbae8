"""GeoDatabase against a small .mmdb built in the test: locations, prefixes, cache."""

import pytest

from owncdn.dns.geo import GeoDatabase
from owncdn.testing.geodb import write_test_db

FRANKFURT, SINGAPORE = (50.11, 8.68), (1.35, 103.82)
VIRGINIA, LONDON = (38.95, -77.45), (51.51, -0.13)

NETWORKS = {
    "198.51.100.0/24": FRANKFURT,
    "203.0.113.0/24": SINGAPORE,
    "2001:db8:1::/48": VIRGINIA,
    "100.64.0.0/16": LONDON,
    "100.64.7.0/28": FRANKFURT,  # more specific than the /24 the cache keys on
}


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("geo") / "city.mmdb"
    write_test_db(path, NETWORKS)
    return path


@pytest.fixture
def geo(db_path):
    with GeoDatabase(db_path) as db:
        yield db


# (address, location, prefix length of the network it was found in)
LOCATE_ROWS = [
    ("198.51.100.7", FRANKFURT, 24),
    ("198.51.100.255", FRANKFURT, 24),
    ("203.0.113.1", SINGAPORE, 24),
    ("::ffff:203.0.113.1", SINGAPORE, 24),  # IPv4-mapped: looked up as IPv4
    ("2001:db8:1::53", VIRGINIA, 48),
    ("2001:db8:1:ffff::1", VIRGINIA, 48),
    # the /28 splits the /16 around it: London answers from the pieces that are left
    ("100.64.200.1", LONDON, 17),
    ("100.64.0.1", LONDON, 22),
    ("100.64.7.9", FRANKFURT, 28),
    ("100.64.7.16", LONDON, 28),  # the /16's remainder next to the /28 is a /28 too
]


@pytest.mark.parametrize(("address", "location", "prefix"), LOCATE_ROWS)
def test_locate(geo, address, location, prefix):
    assert geo.locate(address) == (location, prefix)


@pytest.mark.parametrize("address", ["192.0.2.1", "8.8.8.8", "2001:db8:2::1", "2a00::1"])
def test_unknown_address_has_no_location_and_the_prefix_of_the_unknown_range(geo, address):
    location, prefix = geo.locate(address)
    assert location is None
    bits = 128 if ":" in address else 32
    assert 0 < prefix < bits


def test_unknown_range_prefix_does_not_cover_a_known_network(geo):
    # 2001:db8:2::/48 is empty, but its neighbour 2001:db8:1::/48 is not: the empty
    # range around it must stop short of the known network.
    _, prefix = geo.locate("2001:db8:2::1")
    assert prefix == 47


def test_cache_answers_the_rest_of_a_slash_24_and_slash_48(geo):
    assert geo.locate("198.51.100.1") == (FRANKFURT, 24)
    assert (geo.hits, geo.misses) == (0, 1)
    assert geo.locate("198.51.100.200") == (FRANKFURT, 24)
    assert geo.locate("2001:db8:1::1") == (VIRGINIA, 48)
    assert geo.locate("2001:db8:1:42::1") == (VIRGINIA, 48)
    assert (geo.hits, geo.misses) == (2, 2)


def test_results_from_networks_longer_than_the_cache_key_are_not_cached(geo):
    assert geo.locate("100.64.7.1") == (FRANKFURT, 28)
    assert geo.locate("100.64.7.200") == (LONDON, 25)
    assert geo.locate("100.64.7.2") == (FRANKFURT, 28)  # its /24 holds two answers
    assert geo.hits == 0


def test_cache_is_bounded_lru(db_path):
    with GeoDatabase(db_path, cache_size=2) as geo:
        geo.locate("198.51.100.1")
        geo.locate("203.0.113.1")
        geo.locate("198.51.100.2")  # hit: 198.51.100.0/24 becomes the most recent
        geo.locate("8.8.8.8")  # evicts 203.0.113.0/24
        assert (geo.hits, geo.misses) == (1, 3)
        geo.locate("198.51.100.3")
        assert (geo.hits, geo.misses) == (2, 3)
        geo.locate("203.0.113.2")
        assert (geo.hits, geo.misses) == (2, 4)
        assert "cached=2/2" in repr(geo)


def test_record_without_coordinates_is_not_a_location(tmp_path):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "DE"}})
    writer.to_db_file(str(tmp_path / "country.mmdb"))
    with GeoDatabase(tmp_path / "country.mmdb") as geo:
        assert geo.locate("198.51.100.1") == (None, 24)


def test_ipv6_in_an_ipv4_only_database(tmp_path):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-City")
    record = {"location": {"latitude": 1.5, "longitude": 2.5}}
    writer.insert_network(IPSet(["198.51.100.0/24"]), record)
    writer.to_db_file(str(tmp_path / "v4.mmdb"))
    with GeoDatabase(tmp_path / "v4.mmdb") as geo:
        assert geo.locate("198.51.100.1") == ((1.5, 2.5), 24)
        assert geo.locate("2001:db8:1::1") == (None, 0)


def test_not_an_address_is_an_error(geo):
    with pytest.raises(ValueError):
        geo.locate("not-an-ip")
