"""Small GeoLite2-City-like ``.mmdb`` files for tests, written with mmdb-writer."""

from __future__ import annotations

import os

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def write_test_db(path: str | os.PathLike[str], networks: dict[str, tuple[float, float]]) -> None:
    """Write an IPv6 database (IPv4 networks under ::/96) mapping each network to
    ``{"location": {"latitude": lat, "longitude": lon}}``.

    ``networks`` maps CIDR strings to (lat, lon), e.g.
    ``{"198.51.100.0/24": (50.11, 8.68), "2001:db8:1::/48": (38.95, -77.45)}``.
    A network inside another one overrides it (insert order: widest first).
    """
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-City",
        languages=["en"],
        description="owncdn test database",
    )
    by_width = sorted(networks.items(), key=lambda item: int(item[0].partition("/")[2] or 128))
    for cidr, (lat, lon) in by_width:
        record = {"location": {"latitude": float(lat), "longitude": float(lon)}}
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(os.fspath(path))
